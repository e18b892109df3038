"""The parts of a sampling run: column sources, the row sink, limits and provenance.

Used by :mod:`mvnb.sampling` (``Session.sample``): which reader each column needs, where
rows go as they arrive (a CSV or Parquet file, so a crash loses nothing), when a run must
end, and Ctrl-C taken as a flag so it never lands in the middle of a register probe.
"""

from __future__ import annotations

import csv
import functools
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import Error
from .regs.spec import RegisterSpec
from .timing.tsc import TscReader

__all__ = ["LAPIC_TIMER_REGISTERS", "Column", "RowSink", "normalize_columns"]

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
