"""Where sampled rows go: memory, a CSV or Parquet file as they arrive, and the frame.

A CSV is flushed at every batch, so a crash or a killed kernel loses nothing already
written; a Parquet file gets one row group per batch and is readable once closed.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Error

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RowSink", "Rows", "to_frame"]


class RowSink:
    """Appends rows to a CSV (or Parquet, with pyarrow) file as they arrive."""

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
        import pandas as pd
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


class Rows:
    """One sampling run's rows: numbered as they come, written to the sink, counted on a
    progress bar, passed to ``on_rows``; and why the run ended."""

    def __init__(self, names: list[str], count: int | None, path: str | Path | None,
                 progress: bool, on_rows: Callable[[int], object] | None, what: str) -> None:
        self.names = ["hit", "host_ns", *names]
        self.rows: list[list[Any]] = []
        self.sink = RowSink(path, self.names)
        self.on_rows = on_rows
        self.ended: str | None = None  # None: finished as asked
        self.interrupted = False
        self.errors: list[str] = []
        self.bar: Any = None
        if progress:
            from .._progress import tqdm

            self.bar = tqdm(total=count, desc=what, unit="hit", leave=False)

    def __len__(self) -> int:
        return len(self.rows)

    def end(self, why: str, interrupted: bool = True) -> None:
        """Note why the run ended (the first reason given wins)."""
        if self.ended is None:
            self.ended, self.interrupted = why, interrupted

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
        return to_frame(self.rows, self.names)


def to_frame(rows: list[list[Any]], names: list[str]) -> pd.DataFrame:
    """Rows as a frame of plain integers where the values are integers: int64, uint64 for
    values past 2^63, nullable Int64 where a read failed (None)."""
    import pandas as pd

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
