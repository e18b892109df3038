"""Breakpoints and watchpoints as objects that keep themselves up to date.

The session's ``BreakpointTable`` updates ``hits`` from GDB's ``=breakpoint-modified``
records as they arrive, so reading it costs no round trip. A breakpoint holds its session
weakly: the table is reached from the MI reader thread, and a strong reference there would
keep every session (and its VM) alive for ever.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import SessionClosed

if TYPE_CHECKING:
    from .mi import AsyncRecord
    from .session import Session

__all__ = ["Breakpoint", "BreakpointTable"]


class Breakpoint:
    """A GDB breakpoint or watchpoint: ``number``, ``location``, ``address``, ``hits``."""

    def __init__(self, session: Session, info: dict[str, Any], location: str) -> None:
        self._session_ref = weakref.ref(session)
        self.number = int(info["number"])
        self.location = location
        self.kind = info.get("type", "breakpoint")
        self.hardware = self.kind.startswith("hw") or info.get("type") == "hw breakpoint"
        self.temporary = info.get("disp") == "del"
        self.deleted = False
        self.guard: str | None = None  # set by Session.guard: the TargetStuck message
        self._info: dict[str, Any] = {}
        self._update(info)

    @property
    def _session(self) -> Session:
        session = self._session_ref()
        if session is None:
            raise SessionClosed(f"breakpoint {self.number}'s session is gone")
        return session

    def _update(self, info: dict[str, Any]) -> None:
        self._info.update(info)

    @property
    def address(self) -> int | None:
        """The code address (None for watchpoints and breakpoints with several locations)."""
        addr = self._info.get("addr", "")
        return int(addr, 16) if isinstance(addr, str) and addr.startswith("0x") else None

    @property
    def hits(self) -> int:
        return int(self._info.get("times", 0))

    @property
    def enabled(self) -> bool:
        return self._info.get("enabled", "y") == "y"

    @property
    def condition(self) -> str | None:
        return self._info.get("cond")

    @property
    def function(self) -> str | None:
        return self._info.get("func")

    def enable(self) -> None:
        self._session.mi(f"-break-enable {self.number}")
        self._info["enabled"] = "y"

    def disable(self) -> None:
        self._session.mi(f"-break-disable {self.number}")
        self._info["enabled"] = "n"

    def delete(self) -> None:
        if not self.deleted:
            self._session.mi(f"-break-delete {self.number}")
            self._session._table.forget(self.number)
            self.deleted = True

    def __repr__(self) -> str:
        where = f" at {self.address:#x}" if self.address is not None else ""
        state = "" if self.enabled else ", disabled"
        gone = ", deleted" if self.deleted else ""
        kind = "guard" if self.guard else self.kind
        return (f"<Breakpoint {self.number} {kind} {self.location!r}{where}, "
                f"hits={self.hits}{state}{gone}>")


class BreakpointTable:
    """The session's breakpoints by number, kept current from GDB's async records.

    ``known`` also holds deleted ones, so the stop of a temporary breakpoint (GDB deletes it
    as it reports the hit) still names it.
    """

    def __init__(self) -> None:
        self._live: dict[int, Breakpoint] = {}
        self._known: dict[int, Breakpoint] = {}
        self._lock = threading.Lock()

    def add(self, bp: Breakpoint) -> Breakpoint:
        with self._lock:
            self._live[bp.number] = bp
            self._known[bp.number] = bp
        return bp

    def forget(self, number: int) -> None:
        with self._lock:
            self._live.pop(number, None)

    def live(self) -> list[Breakpoint]:
        with self._lock:
            return list(self._live.values())

    def known(self, number: int | str | None) -> Breakpoint | None:
        if number is None:
            return None
        with self._lock:
            return self._known.get(int(number))

    def on_async(self, record: AsyncRecord) -> None:
        """Apply ``=breakpoint-created/modified/deleted`` (called on the MI reader thread)."""
        if record.kind != "notify":
            return
        if record.cls in ("breakpoint-modified", "breakpoint-created"):
            info = record.payload.get("bkpt", {})
            with self._lock:
                bp = self._live.get(int(info.get("number", -1)))
            if bp is not None:
                bp._update(info)
        elif record.cls == "breakpoint-deleted":
            with self._lock:
                bp = self._live.pop(int(record.payload.get("id", -1)), None)
            if bp is not None:
                bp.deleted = True
