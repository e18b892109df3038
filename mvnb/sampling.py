"""Sampling guest clocks at breakpoints into pandas frames: ``Session.sample``.

``SamplingMixin`` is mixed into ``Session``; see issue "Timer counts as frames". Two ways
to take rows, and ``frame.attrs["method"]`` says which was used:

- "gdb-python": every column is a C expression or a register. A collector breakpoint
  inside GDB (mvnb/gdb/mvnb_gdb.py) records them in ``stop()`` and lets the guest run on;
  rows are fetched in bulk while it runs. This is as fast as a hand-written GDB script.
- "mi": a column needs a live reader: the LAPIC timer registers, read through QEMU's
  ``info lapic`` (QEMU target/i386/cpu-dump.c), or the TSC, read by executing an ``rdtsc``
  (:mod:`mvnb.timing.tsc`). The collector stops at every hit and the reads follow over MI.

Guest clocks stand still while GDB holds the guest (shared/facts/x86-apic.md), so every
row is a consistent snapshot of the guest clocks, and ``host_ns`` is no reference across
rows (:class:`mvnb.timing.HostTimeWarning`).
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._sample_run import (
    _SLICE,
    _U32,
    Column,
    RowSink,
    _kernel_release,
    _Limits,
    _qemu_version,
    _Run,
    _sources,
    _StopFlag,
    normalize_columns,
)
from .errors import Error
from .mi import quote
from .regs.lapic import parse_info_lapic
from .timing.frame import sample_attrs

if TYPE_CHECKING:
    from .session import Session
    from .stop import Stop

__all__ = ["Column", "RowSink", "SamplingMixin", "normalize_columns"]

class SamplingMixin:
    """Methods of ``Session`` that collect samples."""

    def sample(
        self: Session,  # type: ignore[misc]
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
        (see :func:`normalize_columns`), as plain integers (LAPIC counts as uint32).
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
        if self.running:
            raise Error("the target is running; call interrupt() before sample()")
        method = "gdb-python" if all(c.kind == "expr" for c in cols) else "mi"
        for column in cols:  # find the rdtsc before a breakpoint is in place
            if column.kind == "tsc":
                column.source.locate(self)
        exprs = [c.source for c in cols if c.kind == "expr"]
        spec = {"location": location, "exprs": exprs, "hardware": bool(hardware),
                "count": int(count) if count is not None and method == "gdb-python" else None,
                "stop_every": method == "mi"}
        started = self._mi(f"-mvnb-collect-start {quote(json.dumps(spec))}").payload
        number, address = int(started["number"]), int(started["address"])
        run = _Run([c.name for c in cols], count, path, progress, on_rows,
                   f"sample {location}")
        paused = [bp for bp in self.breakpoints()
                  if bp.enabled and address and bp.address == address and bp.number != number]
        started_at = time.monotonic()
        try:
            for bp in paused:
                bp.disable()
            with _StopFlag() as flag:
                try:
                    here = self.eval_many(["$pc"])[0] == address if address else False
                    if include_current or (include_current is None and here):
                        self._mi(f"-mvnb-collect-control {number} record")
                        run.add(self._sample_rows(number, cols, live=True))
                    limits = _Limits(started_at, duration, timeout, flag)
                    if count is None or len(run.rows) < count:
                        if method == "gdb-python":
                            self._sample_fast(number, run, limits)
                        else:
                            self._sample_mi(number, cols, run, count, limits)
                except KeyboardInterrupt:
                    run.ended, run.interrupted = "interrupt", True
                if flag.set and run.ended is None:
                    run.ended, run.interrupted = "interrupt", True
        finally:
            try:
                self._sample_finish(number, cols, run, method)
            finally:
                for bp in paused:
                    if not bp.deleted:
                        bp.enable()
                run.close()
        frame = run.frame()
        frame.attrs = sample_attrs(
            method, location, interrupted=run.interrupted, provenance=self._provenance(),
            ended=run.ended or ("count" if count is not None else "stopped"),
            seconds=round(time.monotonic() - started_at, 3), columns=_sources(cols),
            errors=run.errors[:10], path=str(path) if path is not None else None,
        )
        return frame

    # -- the two loops --------------------------------------------------------------------

    def _sample_fast(self: Session, number: int, run: _Run,  # type: ignore[misc]
                     limits: _Limits) -> None:
        """Collector records inside GDB; the host fetches rows every slice while it runs."""
        seq = self._transport.stop_seq
        self._mi("-exec-continue")
        record = self._sample_wait(seq, limits, run,
                                   lambda: run.add(self._sample_rows(number)))
        if record is not None:
            self._sample_check_stop(number, record, run)

    def _sample_mi(self: Session, number: int, cols: list[Column],  # type: ignore[misc]
                   run: _Run, count: int | None, limits: _Limits) -> None:
        """Collector stops at every hit; the live readers run over MI; continue."""
        while count is None or len(run.rows) < count:
            seq = self._transport.stop_seq
            self._mi("-exec-continue")
            record = self._sample_wait(seq, limits, run, None)
            if record is None or not self._sample_check_stop(number, record, run):
                return
            run.add(self._sample_rows(number, cols, live=True))
            if run.ended is not None:
                return

    def _sample_wait(self: Session, seq: int, limits: _Limits, run: _Run,  # type: ignore[misc]
                     each: Callable[[], None] | None) -> Any:
        """Wait for the next stop in slices; stop the guest on Ctrl-C, duration or timeout
        (then None)."""
        while True:
            record = self._transport.wait_stopped(seq, limits.next_wait())
            if each is not None:
                each()
            if record is not None:
                return record
            if self._transport.state in ("exited", "closed"):
                raise self._gone_error()
            why = limits.expired()
            if why is not None:
                run.ended = why
                run.interrupted = why != "duration"
                if why == "timeout":
                    warnings.warn(f"sampling timed out after {len(run.rows)} rows; returning "
                                  "them (attrs['interrupted'] is True)", RuntimeWarning,
                                  stacklevel=4)
                self.interrupt()
                return None

    def _sample_check_stop(self: Session, number: int, record: Any,  # type: ignore[misc]
                           run: _Run) -> bool:
        """True when the stop is the collector's hit; else note why sampling ended."""
        stop: Stop = self._make_stop(record)
        if stop.reason == "breakpoint-hit" and str(stop.raw.get("bkptno")) == str(number):
            return True
        if stop.reason in ("exited", "exited-normally", "exited-signalled"):
            raise self._gone_error()
        run.ended, run.interrupted = f"stopped elsewhere: {stop}", True
        warnings.warn(f"sampling ended early: the guest stopped elsewhere ({stop})",
                      RuntimeWarning, stacklevel=4)
        return False

    def _sample_rows(self: Session, number: int, cols: list[Column] | None = None,  # type: ignore[misc]
                     *, live: bool = False, delete: bool = False) -> list[list[Any]]:
        """Fetch the collector's rows; with ``live``, add the live readers' columns."""
        answer = self._json(f"-mvnb-collect-fetch {number}{' delete' if delete else ''}", 30)
        rows: list[list[Any]] = answer["rows"]
        if cols is None or not rows:
            return rows
        out = []
        for raw in rows:
            host_ns, values = raw[0], iter(raw[1:])
            extra = self._sample_live(number, cols) if live else {}
            row = [host_ns]
            for c in cols:
                row.append(next(values) if c.kind == "expr" else extra.get(c.name))
            out.append(row)
        return out

    def _sample_live(self: Session, number: int | None,  # type: ignore[misc]
                     cols: list[Column]) -> dict[str, int]:
        """Read the LAPIC and TSC columns now (the guest is stopped)."""
        out: dict[str, int] = {}
        if any(c.kind == "lapic" for c in cols):
            registers = parse_info_lapic(self.monitor("info lapic"))
            for c in cols:
                if c.kind == "lapic":
                    out[c.name] = registers[c.source] & _U32
        for c in cols:
            if c.kind == "tsc":
                out[c.name] = c.source.read(self, quiet=() if number is None else (number,))
        return out

    def _sample_finish(self: Session, number: int, cols: list[Column],  # type: ignore[misc]
                       run: _Run, method: str) -> None:
        """Stop the guest if it runs, take the last rows, delete the collector."""
        if self._transport.state in ("exited", "closed"):
            return
        if self.running:
            self.interrupt()
            run.interrupted = run.interrupted or run.ended is not None
        live = method == "mi" and self._sample_at(number)
        rows = self._sample_rows(number, cols, live=live, delete=True)
        if method == "mi" and not live:
            rows = []  # a hit whose live columns can no longer be read
        run.add(rows)

    def _sample_at(self: Session, number: int) -> bool:  # type: ignore[misc]
        last = self._transport.last_stop
        return last is not None and str(last.payload.get("bkptno")) == str(number)

    # -- periodic -------------------------------------------------------------------------

    def sample_periodic(
        self: Session,  # type: ignore[misc]
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
        if self.running:
            raise Error("the target is running; call interrupt() before sample_periodic()")
        exprs = [c.source for c in cols if c.kind == "expr"]
        for column in cols:
            if column.kind == "tsc":
                column.source.locate(self)
        run = _Run([c.name for c in cols], int(count), path, progress, on_rows,
                   f"sample every {interval:g} s")
        started_at = time.monotonic()
        give_up = None if timeout is None else started_at + timeout
        try:
            with _StopFlag() as flag:
                try:
                    for k in range(1, int(count) + 1):
                        due = started_at + k * interval
                        if give_up is not None and due > give_up:
                            run.ended, run.interrupted = "timeout", True
                            break
                        seq = self._transport.stop_seq
                        self._mi("-exec-continue")
                        record = None
                        while record is None and not flag.set:
                            left = due - time.monotonic()
                            if left <= 0:
                                break
                            record = self._transport.wait_stopped(seq, min(left, _SLICE))
                            if self._transport.state in ("exited", "closed"):
                                raise self._gone_error()
                        if record is None:
                            self.interrupt()
                        if flag.set:
                            run.ended, run.interrupted = "interrupt", True
                            break
                        if record is not None:
                            run.ended = f"stopped: {self._make_stop(record)}"
                            run.interrupted = True
                            break
                        host_ns = time.monotonic_ns()
                        values = iter(self.eval_many(exprs)) if exprs else iter(())
                        extra = self._sample_live(None, cols)
                        run.add([[host_ns, *(next(values) if c.kind == "expr" else extra[c.name]
                                             for c in cols)]])
                except KeyboardInterrupt:
                    run.ended, run.interrupted = "interrupt", True
                    if self.running:
                        self.interrupt()
        finally:
            run.close()
        frame = run.frame()
        frame.attrs = sample_attrs(
            "periodic", None, interrupted=run.interrupted, provenance=self._provenance(),
            ended=run.ended or "count", interval=float(interval),
            seconds=round(time.monotonic() - started_at, 3), columns=_sources(cols),
            path=str(path) if path is not None else None,
        )
        return frame

    # -- provenance -----------------------------------------------------------------------

    def _provenance(self: Session) -> dict[str, Any]:  # type: ignore[misc]
        """QEMU version, guest kernel and command line (when the session owns a Qemu), GDB."""
        out: dict[str, Any] = {}
        vm = self._owner
        if vm is not None:
            out["qemu"] = _qemu_version(vm.qemu)
            out["machine"] = vm.machine
            out["icount"] = vm.icount
            out["guest"] = vm.guest.name
            out["kernel"] = _kernel_release(vm.guest)
            out["cmdline"] = vm.guest.full_cmdline
        with contextlib.suppress(Error):
            out["gdb"] = self.console("show version", timeout=10).splitlines()[0].strip()
        return out
