"""Where sampled rows go: memory, a CSV or Parquet file as they arrive, and the frame.

A CSV is flushed at every batch, so a crash, a killed kernel or a GDB that died loses
nothing already fetched; a Parquet file gets one row group per batch and is readable once
closed. ``append=True`` continues a CSV of an earlier run (same columns; ``hit`` numbers
go on from its last row).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Error

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RowSink", "Rows", "to_frame"]


class RowSink:
    """Appends rows to a CSV (or Parquet, with pyarrow) file as they arrive.

    Everything is checked here, before a sampler arms anything: the suffix, the folder, and
    a file that already holds data. Such a file is refused unless ``append=True``; then its
    header must be ``names`` and ``first_hit`` continues from its last ``hit`` + 1.
    """

    def __init__(self, path: str | Path | None, names: Sequence[str], *,
                 append: bool = False) -> None:
        self.path = Path(path).expanduser() if path is not None else None
        self.names = list(names)
        self.rows = 0
        self.first_hit = 0
        self._file: Any = None
        self._writer: Any = None
        self._fresh = True
        if self.path is None:
            return
        if not isinstance(append, bool):
            raise TypeError(f"append is True or False, not {append!r}")
        if self.path.suffix not in (".csv", ".txt", "", ".parquet", ".pq"):
            raise ValueError(f"path= is a .csv or .parquet file, not {self.path.name}")
        if self.path.is_dir():
            raise ValueError(f"path= {self.path} is a folder; give a file name in it")
        if not self.path.parent.is_dir():
            raise ValueError(f"path= {self.path}: the folder {self.path.parent} does not "
                             "exist; create it first")
        has_data = self.path.exists() and self.path.stat().st_size > 0
        if has_data and not append:
            raise Error(f"path= {self.path} already holds data; pass append=True to add "
                        "these rows to it, or choose a new file")
        if has_data and self.path.suffix in (".parquet", ".pq"):
            raise Error(f"path= {self.path}: a Parquet file cannot be appended to; sample "
                        "to a new file (or to a .csv file with append=True)")
        if self.path.suffix in (".parquet", ".pq"):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise Error("writing Parquet needs pyarrow: pip install pyarrow "
                            "(or sample to a .csv path)") from None
        if has_data:
            self.first_hit = self._check_existing()
            self._fresh = False
        target = self.path if self.path.exists() else self.path.parent
        if not os.access(target, os.W_OK):
            raise Error(f"path= {self.path} cannot be written (no write permission on "
                        f"{target}); choose another file")

    def _check_existing(self) -> int:
        """The existing CSV's header must be ours; the next hit number follows its last."""
        assert self.path is not None
        with open(self.path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            last = None
            for row in reader:
                if row:
                    last = row
        if header != self.names:
            raise Error(f"path= {self.path} has the columns {header}, but this run writes "
                        f"{self.names}; append only runs with the same columns, or choose "
                        "a new file")
        if last is None:
            return 0
        try:
            return int(last[0]) + 1
        except (ValueError, IndexError):
            raise Error(f"path= {self.path}: its last row {last} has no hit number in the "
                        "first column; it was not written by mvnb's sampler") from None

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if self.path is None or not rows:
            return
        if self.path.suffix in (".parquet", ".pq"):
            self._write_parquet(rows)
        else:
            if self._file is None:  # opened at the first rows: a run that fails to arm
                self._file = open(self.path, "a", newline="")  # leaves no file behind
                self._writer = csv.writer(self._file)
                if self._fresh:
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
                 progress: bool, on_rows: Callable[[int], object] | None, what: str, *,
                 append: bool = False) -> None:
        self.names = ["hit", "host_ns", *names]
        self.rows: list[list[Any]] = []
        self.sink = RowSink(path, self.names, append=append)
        self.first_hit = self.sink.first_hit
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
        first = self.first_hit + len(self.rows)
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
