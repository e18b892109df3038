"""Sampling at breakpoints into pandas frames: ``Session.sample`` and
``Session.sample_periodic``.

Two ways to take rows; ``frame.attrs["method"]`` says which was used:

- "gdb-python": every column is an expression GDB can read (:mod:`mvnb.gdb.columns`). A
  collector breakpoint inside GDB (``mvnb/gdb/helper/mvnb_gdb.py``) records them in
  ``stop()`` and lets the guest run on; rows are fetched in bulk while it runs. As fast as
  a hand-written GDB script.
- "mi": a column must be read at a stop (a LAPIC register through QEMU's monitor, the TSC
  by an ``rdtsc`` executed in the guest). The collector stops at every hit, each column
  source reads itself, and the guest is continued.

The sampler uses the session's public methods only. Guest clocks under TCG do not stand
entirely still while GDB holds the guest (a stop costs the guest some LAPIC counts; see
the README), and host time is no reference across rows (:class:`mvnb.timing.HostTimeWarning`).
"""

from __future__ import annotations

import json
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Error
from .columns import Column, normalize_columns
from .mi import quote
from .rows import Rows
from .stop import Stop

if TYPE_CHECKING:
    import pandas as pd

    from .session import Session

__all__ = ["sample", "sample_periodic"]

_SLICE = 0.2  # seconds between looks at the stop event, the Ctrl-C flag and bulk fetches


def sample(
    session: Session,
    location: str,
    columns: Mapping[str, Any] | Sequence[Any],
    count: int | None = None,
    duration: float | None = None,
    timeout: float | None = None,
    hardware: bool = True,
    path: str | Path | None = None,
    *,
    progress: bool = True,
    on_rows: Callable[[int], object] | None = None,
    include_current: bool | None = None,
) -> pd.DataFrame:
    """Record ``columns`` at every hit of a breakpoint at ``location``: one row per hit.

    Columns: ``hit`` (0-based), ``host_ns`` (host monotonic), then each of ``columns``
    (see :func:`mvnb.gdb.columns.normalize_columns`), as plain integers.
    Stops after ``count`` hits (the guest stays at the last one), after ``duration``
    host seconds, or at ``timeout`` (a warning; the rows so far are returned). Ctrl-C,
    or a ``KeyboardInterrupt`` raised by ``on_rows(n_rows)``, ends it the same way
    with ``attrs["interrupted"] = True``. ``path=`` appends rows to a CSV (or Parquet)
    file as they arrive. When the guest already sits at ``location``
    (``include_current=None``), that stop is the first row: after ``boot_to(guest,
    "lapic_cal_handler")``, ``count=27`` gives Linux's 27 calibration calls. The
    collector breakpoint is deleted afterwards; the session's own breakpoints at the
    same address are disabled meanwhile and enabled again.
    """
    cols = normalize_columns(columns)
    if count is not None and int(count) < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    if session.running:
        raise Error("the target is running; call interrupt() before sample()")
    for column in cols:  # e.g. find the rdtsc before a breakpoint is in place
        column.source.prepare(session)
    rows = Rows([c.name for c in cols], count, path, progress, on_rows, f"sample {location}")
    sampler = _Sampler(session, cols, rows)
    started_at = time.monotonic()
    try:
        sampler.run(location, count, duration, timeout, hardware, include_current)
    finally:
        rows.close()
    from ..timing.frame import sample_attrs

    frame = rows.frame()
    frame.attrs = sample_attrs(
        sampler.method, location, interrupted=rows.interrupted,
        provenance=session.provenance(),
        ended=rows.ended or ("count" if count is not None else "stopped"),
        seconds=round(time.monotonic() - started_at, 3), columns=_sources(cols),
        errors=rows.errors[:10], path=str(path) if path is not None else None,
    )
    return frame


class _Sampler:
    """One ``sample`` run: the collector breakpoint in GDB and the loop that drives it."""

    def __init__(self, session: Session, cols: list[Column], rows: Rows) -> None:
        self.s = session
        self.cols = cols
        self.rows = rows
        self.method = "gdb-python" if all(c.in_gdb for c in cols) else "mi"
        self.number = 0
        self.last: Stop | None = None  # the last stop seen, to know where the guest sits

    def run(self, location: str, count: int | None, duration: float | None,
            timeout: float | None, hardware: bool, include_current: bool | None) -> None:
        exprs = [c.source.expression for c in self.cols if c.in_gdb]
        spec = {"location": location, "exprs": exprs, "hardware": bool(hardware),
                "count": int(count) if count is not None and self.method == "gdb-python"
                else None, "stop_every": self.method == "mi"}
        started = self.s.mi(f"-mvnb-collect-start {quote(json.dumps(spec))}").payload
        self.number, address = int(started["number"]), int(started["address"])
        paused = [bp for bp in self.s.breakpoints()
                  if bp.enabled and address and bp.address == address]
        limits = _Limits(time.monotonic(), duration, timeout)
        try:
            for bp in paused:
                bp.disable()
            with limits.flag:
                try:
                    here = self.s.eval_many(["$pc"])[0] == address if address else False
                    if include_current or (include_current is None and here):
                        self.s.mi(f"-mvnb-collect-control {self.number} record")
                        self.rows.add(self._fetch(live=True))
                    if count is None or len(self.rows) < count:
                        if self.method == "gdb-python":
                            self._fast(limits)
                        else:
                            self._stop_every(count, limits)
                except KeyboardInterrupt:
                    self.rows.end("interrupt")
                if limits.flag.set:
                    self.rows.end("interrupt")
        finally:
            try:
                self._finish()
            finally:
                for bp in paused:
                    if not bp.deleted:
                        bp.enable()

    def _fast(self, limits: _Limits) -> None:
        """The collector records inside GDB; rows are fetched every slice while it runs."""
        self.s.cont(wait=False)
        stop = self._wait(limits, lambda: self.rows.add(self._fetch()))
        if stop is not None:
            self._is_hit(stop)

    def _stop_every(self, count: int | None, limits: _Limits) -> None:
        """The collector stops at every hit; the stop-time sources read themselves."""
        while count is None or len(self.rows) < count:
            self.s.cont(wait=False)
            stop = self._wait(limits, None)
            if stop is None or not self._is_hit(stop):
                return
            self.rows.add(self._fetch(live=True))
            if self.rows.ended is not None:
                return

    def _wait(self, limits: _Limits, each: Callable[[], None] | None) -> Stop | None:
        """The next stop, waited for in slices; the guest is stopped on Ctrl-C, at the
        duration or at the timeout (then None)."""
        while True:
            stop = self.s.wait_for_stop(limits.next_wait())
            if each is not None:
                each()
            if stop is not None:
                self.last = stop
                return stop
            why = limits.expired()
            if why is not None:
                self.rows.end(why, interrupted=why != "duration")
                if why == "timeout":
                    warnings.warn(f"sampling timed out after {len(self.rows)} rows; returning "
                                  "them (attrs['interrupted'] is True)", RuntimeWarning,
                                  stacklevel=5)
                self.last = self.s.interrupt()
                return None

    def _is_hit(self, stop: Stop) -> bool:
        """True when the stop is the collector's hit; else note why sampling ended."""
        if stop.reason == "breakpoint-hit" and str(stop.raw.get("bkptno")) == str(self.number):
            return True
        self.rows.end(f"stopped elsewhere: {stop}")
        warnings.warn(f"sampling ended early: the guest stopped elsewhere ({stop})",
                      RuntimeWarning, stacklevel=5)
        return False

    def _fetch(self, *, live: bool = False, delete: bool = False) -> list[list[Any]]:
        """The collector's rows since the last fetch; with ``live``, the guest sits at the
        (single) hit and the stop-time sources are read now."""
        command = f"-mvnb-collect-fetch {self.number}{' delete' if delete else ''}"
        answer = json.loads(self.s.mi(command).payload["json"])
        self.rows.errors.extend(answer.get("errors", []))
        out = []
        for raw in answer["rows"]:
            values = iter(raw[1:])
            cache: dict[str, Any] = {}
            row = [raw[0]]
            for c in self.cols:
                if c.in_gdb:
                    row.append(next(values))
                else:
                    row.append(c.source.read(self.s, cache) if live else None)
            out.append(row)
        return out

    def _finish(self) -> None:
        """Stop the guest if it runs, take the last rows, delete the collector."""
        if not self.s.connected:
            return
        if self.s.running:
            self.last = self.s.interrupt()
            self.rows.interrupted = self.rows.interrupted or self.rows.ended is not None
        at_hit = (self.last is not None
                  and str(self.last.raw.get("bkptno")) == str(self.number))
        live = self.method == "mi" and at_hit
        rows = self._fetch(live=live, delete=True)
        if self.method == "mi" and not live:
            rows = []  # a hit whose stop-time columns can no longer be read
        self.rows.add(rows)


def sample_periodic(
    session: Session,
    columns: Mapping[str, Any] | Sequence[Any],
    interval: float,
    count: int,
    *,
    timeout: float | None = None,
    path: str | Path | None = None,
    progress: bool = True,
    on_rows: Callable[[int], object] | None = None,
) -> pd.DataFrame:
    """Let the guest run and interrupt it every ``interval`` host seconds, ``count`` times.

    For clocks no breakpoint reaches (jiffies while the guest idles). The schedule is
    absolute (row k is due at start + k × interval), kept by a timed wait on the stop
    event; the guest runs between rows and is left stopped after the last. A breakpoint
    hit in between ends the run early (``attrs["ended"]``).
    """
    cols = normalize_columns(columns)
    if interval <= 0 or int(count) < 1:
        raise ValueError("interval must be positive and count at least 1")
    if session.running:
        raise Error("the target is running; call interrupt() before sample_periodic()")
    for column in cols:
        column.source.prepare(session)
    exprs = [c.source.expression for c in cols if c.in_gdb]
    rows = Rows([c.name for c in cols], int(count), path, progress, on_rows,
                f"sample every {interval:g} s")
    started_at = time.monotonic()
    give_up = None if timeout is None else started_at + timeout
    flag = _StopFlag()
    try:
        with flag:
            try:
                for k in range(1, int(count) + 1):
                    due = started_at + k * interval
                    if give_up is not None and due > give_up:
                        rows.end("timeout")
                        break
                    session.cont(wait=False)
                    stop = None
                    while stop is None and not flag.set:
                        left = due - time.monotonic()
                        if left <= 0:
                            break
                        stop = session.wait_for_stop(min(left, _SLICE))
                    if stop is None:
                        session.interrupt()
                    if flag.set:
                        rows.end("interrupt")
                        break
                    if stop is not None:
                        rows.end(f"stopped: {stop}")
                        break
                    host_ns = time.monotonic_ns()
                    values = iter(session.eval_many(exprs)) if exprs else iter(())
                    cache: dict[str, Any] = {}
                    rows.add([[host_ns, *(next(values) if c.in_gdb
                                          else c.source.read(session, cache) for c in cols)]])
            except KeyboardInterrupt:
                rows.end("interrupt")
                if session.running:
                    session.interrupt()
    finally:
        rows.close()
    from ..timing.frame import sample_attrs

    frame = rows.frame()
    frame.attrs = sample_attrs(
        "periodic", None, interrupted=rows.interrupted, provenance=session.provenance(),
        ended=rows.ended or "count", interval=float(interval),
        seconds=round(time.monotonic() - started_at, 3), columns=_sources(cols),
        path=str(path) if path is not None else None,
    )
    return frame


class _StopFlag:
    """Ctrl-C during sampling: SIGINT sets a flag the loop looks at, instead of raising
    in the middle of a register probe. Only the main thread can take signals over."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: Any = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, lambda *_: self.event.set())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    @property
    def set(self) -> bool:
        return self.event.is_set()


class _Limits:
    """When a sampling run must end: duration (a normal end), timeout, or Ctrl-C."""

    def __init__(self, start: float, duration: float | None, timeout: float | None) -> None:
        self.end = None if duration is None else start + duration
        self.give_up = None if timeout is None else start + timeout
        self.flag = _StopFlag()

    def next_wait(self) -> float:
        now = time.monotonic()
        marks = [m - now for m in (self.end, self.give_up) if m is not None]
        return max(0.0, min([_SLICE, *marks]))

    def expired(self) -> str | None:
        now = time.monotonic()
        if self.flag.set:
            return "interrupt"
        if self.end is not None and now >= self.end:
            return "duration"
        if self.give_up is not None and now >= self.give_up:
            return "timeout"
        return None


def _sources(cols: list[Column]) -> dict[str, str]:
    return {c.name: str(c.source) for c in cols}
