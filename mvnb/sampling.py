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
import csv
import functools
import json
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import Error
from .mi import quote
from .regs.lapic import parse_info_lapic
from .regs.spec import RegisterSpec
from .timing.frame import sample_attrs
from .timing.tsc import TscReader

if TYPE_CHECKING:
    from .session import Session
    from .stop import Stop

__all__ = ["Column", "RowSink", "SamplingMixin", "normalize_columns"]

#: LAPIC timer registers ``info lapic`` shows; values are 32-bit (Intel SDM Vol. 3A, 10.5.4).
LAPIC_TIMER_REGISTERS = frozenset({"TIMER_CCR", "TIMER_ICR", "TIMER_DCR"})
_U32 = 0xFFFFFFFF
_SLICE = 0.2  # seconds between looks at the stop event, Ctrl-C flag and bulk fetches


@dataclass(frozen=True)
class Column:
    """One sampled column: ``kind`` is "expr" (C expression or ``$register``), "lapic"
    (``source`` is the register name in ``info lapic``) or "tsc"."""

    name: str
    kind: str
    source: Any


def normalize_columns(columns: Mapping[str, Any] | Sequence[Any]) -> list[Column]:
    """Columns as given to ``sample``: a dict name → source, or a list named by themselves.

    Sources: a C expression or ``$register`` (str), ``mvnb.regs.TIMER_CCR``/``TIMER_ICR``/
    ``TIMER_DCR``, a register spec GDB shows as a register, or ``mvnb.timing.TSC``.
    """
    if isinstance(columns, str):
        raise TypeError("columns is a dict name → source or a list, not one string; "
                        f"write [{columns!r}]")
    if isinstance(columns, Mapping):
        pairs = [(str(name), source) for name, source in columns.items()]
    else:
        pairs = [(_default_name(source), source) for source in columns]
    out: list[Column] = []
    for name, source in pairs:
        if name in ("hit", "host_ns"):
            raise ValueError(f"column name {name!r} is taken by the sampler; choose another")
        out.append(Column(name, *_classify(source)))
    names = [c.name for c in out]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"duplicate column names {duplicated}; pass a dict to name them")
    if not out:
        raise ValueError("no columns to sample")
    return out


def _default_name(source: Any) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, RegisterSpec | TscReader):
        return source.name
    raise TypeError(f"cannot name column source {source!r}; pass a dict name → source")


def _classify(source: Any) -> tuple[str, Any]:
    if isinstance(source, str):
        if not source.strip():
            raise ValueError("an empty expression is not a column source")
        return "expr", source
    if isinstance(source, TscReader):
        return "tsc", source
    if isinstance(source, RegisterSpec):
        if source.name in LAPIC_TIMER_REGISTERS:
            return "lapic", source.name
        if source.gdb_register:
            return "expr", f"${source.gdb_register}"
        raise TypeError(f"{source!r} has no live reader for sampling; sampled registers are "
                        f"{', '.join(sorted(LAPIC_TIMER_REGISTERS))} and GDB's registers")
    raise TypeError(f"a column source is a C expression, '$register', a LAPIC timer register "
                    f"spec or mvnb.timing.TSC, not {type(source).__name__}")


class RowSink:
    """Appends rows to a CSV (or Parquet, with pyarrow) file as they arrive.

    CSV is flushed at every batch, so a crash loses nothing already written. Parquet is
    written one row group per batch and becomes readable when the sink closes.
    """

    def __init__(self, path: str | Path | None, names: Sequence[str]) -> None:
        self.path = Path(path) if path is not None else None
        self.names = list(names)
        self.rows = 0
        self._file: Any = None
        self._writer: Any = None
        if self.path is None:
            return
        if self.path.suffix in (".parquet", ".pq"):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise Error("writing Parquet needs pyarrow: pip install pyarrow "
                            "(or sample to a .csv path)") from None
        elif self.path.suffix not in (".csv", ".txt", ""):
            raise ValueError(f"path= is a .csv or .parquet file, not {self.path.name}")

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if self.path is None or not rows:
            return
        if self.path.suffix in (".parquet", ".pq"):
            self._write_parquet(rows)
        else:
            if self._file is None:
                fresh = not self.path.exists() or self.path.stat().st_size == 0
                self._file = open(self.path, "a", newline="")
                self._writer = csv.writer(self._file)
                if fresh:
                    self._writer.writerow(self.names)
            self._writer.writerows(["" if v is None else v for v in row] for row in rows)
            self._file.flush()
        self.rows += len(rows)

    def _write_parquet(self, rows: Sequence[Sequence[Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(pd.DataFrame(list(rows), columns=self.names),
                                     preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.path), table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._writer is not None:
            self._writer.close()
        self._writer = None


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


class _Run:
    """One sampling run's state: rows, progress, file, and why it ended."""

    def __init__(self, names: list[str], count: int | None, path: str | Path | None,
                 progress: bool, on_rows: Callable[[int], object] | None, what: str) -> None:
        self.names = names
        self.rows: list[list[Any]] = []
        self.sink = RowSink(path, ["hit", "host_ns", *names])
        self.on_rows = on_rows
        self.ended: str | None = None  # None: finished as asked
        self.interrupted = False
        self.errors: list[str] = []
        self.bar: Any = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=count, desc=what, unit="hit", leave=False)

    def add(self, rows: list[list[Any]]) -> None:
        if not rows:
            return
        first = len(self.rows)
        numbered = [[first + i, *row] for i, row in enumerate(rows)]
        self.rows.extend(numbered)
        self.sink.write(numbered)
        if self.bar is not None:
            self.bar.update(len(rows))
        if self.on_rows is not None:
            self.on_rows(len(self.rows))

    def close(self) -> None:
        self.sink.close()
        if self.bar is not None:
            self.bar.close()

    def frame(self) -> pd.DataFrame:
        return _frame(self.rows, ["hit", "host_ns", *self.names])


def _frame(rows: list[list[Any]], names: list[str]) -> pd.DataFrame:
    """Rows as a frame of plain integers where the values are integers: int64, uint64 for
    values past 2^63, nullable Int64 where a read failed (None)."""
    data: dict[str, Any] = {}
    for i, name in enumerate(names):
        values = [row[i] for row in rows]
        if all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
            if any(v is None for v in values):
                data[name] = pd.array(values, dtype="Int64")
            elif any(v >= 1 << 63 for v in values):
                data[name] = pd.Series(values, dtype="uint64")
            else:
                data[name] = pd.Series(values, dtype="int64")
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, columns=names)


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


class _Limits:
    """When a sampling run must end: duration (a normal end), timeout, or Ctrl-C."""

    def __init__(self, start: float, duration: float | None, timeout: float | None,
                 flag: _StopFlag) -> None:
        self.end = None if duration is None else start + duration
        self.give_up = None if timeout is None else start + timeout
        self.flag = flag
        self.reason: str | None = None

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
    out = {}
    for c in cols:
        name = getattr(c.source, "name", c.source)
        out[c.name] = c.source if c.kind == "expr" else f"{c.kind}:{name}"
    return out


@functools.lru_cache(maxsize=8)
def _qemu_version(binary: str) -> str | None:
    """The first line of ``qemu-system-x86_64 --version``."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    line = out.stdout.splitlines()[0] if out.stdout else ""
    return line.removeprefix("QEMU emulator version ").strip() or None


def _kernel_release(guest: Any) -> str:
    from .guests import bzimage_version

    try:
        return bzimage_version(guest.kernel)
    except (Error, OSError):
        return guest.version or guest.name
