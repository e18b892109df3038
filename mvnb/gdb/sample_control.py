"""How a sampling run is bounded and ended: its arguments checked before anything is armed,
Ctrl-C turned into a flag, the limits (count, duration, timeout), and a guest that is
stopped for certain.

Why stopping needs more than one ``-exec-interrupt``: GDB 13 drops an interrupt that
arrives while a stop reply from the stub is already queued (``remote_interrupt_as`` in
gdb/remote.c returns early, expecting that stop to be reported). When that queued stop is
a breakpoint whose condition or Python ``stop()`` says "go on" (the in-GDB collector), or
the end of the step over a breakpoint, GDB resumes the target and the interrupt is gone.
Seen with GDB 13.1 and QEMU 7.2: 17 of 150 interrupts lost while a collector at
``_raw_spin_lock`` ran, some needing three more. ``halt`` therefore tells the collector to
stop at its next hit (``-mvnb-collect-control N halt``), then sends the interrupt again
until a stop arrives.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import GdbError, TargetTimeout

if TYPE_CHECKING:
    from .session import Session
    from .stop import Stop

__all__ = ["HALT_GRACE", "SLICE", "Limits", "StopFlag", "check_args", "halt"]

#: Seconds between looks at the stop event, the Ctrl-C flag and bulk fetches.
SLICE = 0.2
#: How long ``halt`` keeps interrupting before it gives up, and how often it re-sends.
HALT_GRACE = 10.0
_RESEND = 0.5


def check_args(*, location: str | None = None, count: Any = None, duration: Any = None,
               timeout: Any = None, hardware: Any = True, include_current: Any = None,
               after: Any = None, observer: Any = True, on_rows: Any = None) -> list[str]:
    """Refuse bad arguments before anything is armed; returns ``after`` as a list."""
    if location is not None and (not isinstance(location, str) or not location.strip()):
        raise ValueError(f"location is a function, file:line or *address, not {location!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                              or count < 1):
        raise ValueError(f"count is a whole number of at least 1 (or None), not {count!r}")
    for name, value in (("duration", duration), ("timeout", timeout)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} is a positive number of seconds (or None), not {value!r}")
    for name, value in (("hardware", hardware),):
        if not isinstance(value, bool):
            raise TypeError(f"{name} is True or False, not {value!r}")
    if include_current is not None and not isinstance(include_current, bool):
        raise TypeError(f"include_current is True, False or None, not {include_current!r}")
    if observer is not True and observer is not False and not callable(observer):
        raise TypeError("observer is True (measure when a column stops the guest), False, "
                        f"or a callable session -> dict, not {observer!r}")
    if on_rows is not None and not callable(on_rows):
        raise TypeError(f"on_rows is a callable taking the number of rows, not {on_rows!r}")
    return _after_list(after)


def _after_list(after: Any) -> list[str]:
    if after is None:
        return []
    if isinstance(after, str):
        raise TypeError(f"after is a list of expressions, not one string; write [{after!r}]")
    if not isinstance(after, Sequence) or not all(isinstance(e, str) and e.strip()
                                                  for e in after):
        raise TypeError(f"after is a list of C expressions (strings), not {after!r}")
    return list(after)


class StopFlag:
    """Ctrl-C during a run: SIGINT sets a flag the loop looks at, instead of raising in the
    middle of a probe or of the collector's removal. Only the main thread can take signals
    over; elsewhere there is no Ctrl-C to catch."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: Any = None

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, lambda *_: self.event.set())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    @property
    def set(self) -> bool:
        return self.event.is_set()


class Limits:
    """When a run must end: duration (a normal end), timeout, or Ctrl-C (the flag)."""

    def __init__(self, start: float, duration: float | None, timeout: float | None,
                 flag: StopFlag) -> None:
        self.end = None if duration is None else start + duration
        self.give_up = None if timeout is None else start + timeout
        self.flag = flag

    def next_wait(self) -> float:
        now = time.monotonic()
        marks = [m - now for m in (self.end, self.give_up) if m is not None]
        return max(0.0, min([SLICE, *marks]))

    def expired(self) -> str | None:
        now = time.monotonic()
        if self.flag.set:
            return "interrupt"
        if self.end is not None and now >= self.end:
            return "duration"
        if self.give_up is not None and now >= self.give_up:
            return "timeout"
        return None


def halt(session: Session, collector: int | None = None, *,
         grace: float = HALT_GRACE) -> Stop | None:
    """Stop a running target for certain (see the module doc); the Stop, or None if it was
    not running. Raises TargetTimeout when nothing stopped it within ``grace`` seconds."""
    if not session.running:
        return None
    if collector is not None:
        try:
            session.mi(f"-mvnb-collect-control {collector} halt", timeout=5.0)
        except (GdbError, TargetTimeout):
            pass  # the collector is gone already; the interrupt alone must do
    deadline = time.monotonic() + grace
    sent = 0
    while True:
        try:
            session.mi("-exec-interrupt", timeout=5.0)
            sent += 1
        except GdbError:
            pass  # "not running": the stop is on its way
        left = deadline - time.monotonic()
        stop = session.wait_for_stop(max(0.0, min(_RESEND, left)))
        if stop is not None:
            return stop
        if not session.running and not session.connected:
            return None
        if time.monotonic() >= deadline:
            raise TargetTimeout(
                f"the target did not stop within {grace} s although it was interrupted "
                f"{sent} times; the stub may be hung (look at vm.serial() and QEMU's log)")
