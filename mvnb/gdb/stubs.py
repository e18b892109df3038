"""Which gdb stubs a session of this process is attached to: a stub takes one client.

QEMU's stub serves one debugger at a time and leaves a second connection unanswered (GDB
then waits out its timeouts, about 15 s and more). ``Session.connect`` asks here first and
refuses at once, naming the session that holds the stub, as a re-run notebook cell would
otherwise hang. Sessions are held weakly: a dropped session frees its stub.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING

from ..errors import Error

if TYPE_CHECKING:
    from .session import Session

__all__ = ["check_free", "hold", "release"]

_attached: dict[str, weakref.ref[Session]] = {}


def _key(address: str) -> str:
    """One spelling per stub: a socket path resolved, host:port as given."""
    return os.path.realpath(address) if "/" in address else address


def check_free(address: str, me: Session | None = None) -> None:
    """Raise ``Error`` if another open session of this process is attached to ``address``."""
    holder = _attached.get(_key(address))
    other = holder() if holder is not None else None
    if other is not None and other is not me and other.connected:
        raise Error(
            f"the stub at {address} already has a debugger: {other!r}, opened in this "
            "process (a stub takes one client at a time). Close or detach that session "
            "first (s.close() or s.detach()); a re-run cell that connects needs the "
            "previous session closed."
        )


def hold(address: str, session: Session) -> None:
    """Note that ``session`` is attached to the stub at ``address``."""
    _attached[_key(address)] = weakref.ref(session)


def release(address: str, session: Session) -> None:
    """Forget ``session``'s hold on the stub at ``address`` (closed or detached)."""
    key = _key(address)
    holder = _attached.get(key)
    if holder is not None and holder() in (session, None):
        del _attached[key]
