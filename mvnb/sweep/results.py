"""A sweep's results: one DataFrame, and the file it is appended to as runs finish.

Columns: ``run``, ``repeat``, ``seed``, the grid's parameters (``guest`` by name),
``outcome`` (``ok``, ``timeout``, ``error``, ``worker-died``), ``attempts``, ``duration_s``
(the run as the worker saw it, its process's start included), ``experiment_s`` (the
experiment's own time in that process), ``error``, ``worker``,
``load_before`` (the worker machine's 1-minute load average as the run started),
``warnings``, ``reproducible`` (icount set: the guest's side repeats), then the
experiment's own columns. An experiment that returned several rows gives several rows with
the same run columns; one that returned none (or failed) gives one row.

``path=`` (``.csv`` or ``.parquet``) gets each finished run at once: CSV rows are appended
(the file is rewritten when a run brings new columns), a Parquet file is rewritten
atomically (a file is never half-written), and ``<stem>.attrs.json`` holds the attrs.
Rows already in the file are kept: a second sweep to the same path adds to it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .grid import RESERVED, Run, SweepError

__all__ = ["OUTCOMES", "ResultFile", "jsonable", "rows_of"]

#: What can become of a run.
OUTCOMES = ("ok", "timeout", "error", "worker-died")


def jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold turned into plain data or text."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _param(value: Any) -> Any:
    """A parameter as a results column holds it (a guest by its name)."""
    if value is None or isinstance(value, bool | int | float | str | np.generic):
        return value
    return str(value)


def rows_of(run: Run, record: Mapping[str, Any], attempts: int) -> pd.DataFrame:
    """The result rows of one run from the runner's ``record``."""
    head: dict[str, Any] = {"run": run.run, "repeat": run.repeat, "seed": run.seed}
    head.update({k: _param(v) for k, v in run.params.items()})
    head.update({
        "outcome": record["outcome"], "attempts": attempts,
        "duration_s": record.get("duration_s"), "experiment_s": record.get("experiment_s"),
        "error": record.get("error") or "",
        "worker": record.get("worker", ""), "load_before": record.get("load_before"),
        "warnings": "\n".join(record.get("warnings") or []),
        "reproducible": run.reproducible,
    })
    frame = record.get("frame")
    if frame is None or len(frame) == 0:
        extra = [] if frame is None else list(frame.columns)
        return pd.DataFrame([{**head, **dict.fromkeys(extra)}])
    frame = frame.reset_index(drop=True)
    taken = set(head)
    frame = frame.rename(columns={c: f"experiment_{c}" for c in frame.columns if c in taken})
    left = pd.DataFrame([head] * len(frame))
    return pd.concat([left, frame], axis=1)


def order(frame: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Columns in the documented order: run columns, parameters, sweep columns, the rest."""
    first = ["run", "repeat", "seed", *params, *[c for c in RESERVED if c not in
                                                 ("run", "repeat", "seed")]]
    cols = [c for c in first if c in frame.columns]
    return frame[cols + [c for c in frame.columns if c not in cols]]


class ResultFile:
    """Where finished runs go as they finish: a CSV or Parquet file and its attrs JSON."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.kind = {".csv": "csv", ".parquet": "parquet"}.get(self.path.suffix.lower())
        if self.kind is None:
            raise SweepError(f"path={self.path}: give a .csv or .parquet file")
        if self.kind == "parquet":
            try:
                pd.io.parquet.get_engine("auto")
            except ImportError:
                raise SweepError("path=*.parquet needs pyarrow (`pip install pyarrow`); "
                                 "or give a .csv path") from None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.attrs_path = self.path.with_name(f"{self.path.stem}.attrs.json")
        self.frame = (self._read() if self.path.exists() and self.path.stat().st_size
                      else pd.DataFrame())
        self.previous = len(self.frame)

    def _read(self) -> pd.DataFrame:
        return (pd.read_csv(self.path) if self.kind == "csv" else pd.read_parquet(self.path))

    def append(self, rows: pd.DataFrame) -> None:
        """Add ``rows`` to the file now."""
        same = list(rows.columns) == list(self.frame.columns)
        self.frame = pd.concat([self.frame, rows], ignore_index=True) if len(self.frame) \
            else rows.reset_index(drop=True)
        if self.kind == "csv" and same and self.path.exists():
            text = rows.to_csv(header=False, index=False)  # one write: Ctrl-C cannot split it
            with open(self.path, "a", newline="") as f:
                f.write(text)
            return
        partial = self.path.with_name(f".{self.path.name}.partial")
        if self.kind == "csv":
            self.frame.to_csv(partial, index=False)
        else:
            _for_parquet(self.frame).to_parquet(partial, index=False)
        os.replace(partial, self.path)

    def write_attrs(self, attrs: Mapping[str, Any]) -> None:
        partial = self.attrs_path.with_name(f".{self.attrs_path.name}.partial")
        partial.write_text(json.dumps(jsonable(attrs), indent=2) + "\n")
        os.replace(partial, self.attrs_path)


def _for_parquet(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns of mixed types as text (Parquet wants one type per column)."""
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object:
            kinds = {type(v) for v in out[name] if v is not None and v == v}
            if len(kinds) > 1:
                out[name] = [None if v is None or v != v else str(v) for v in out[name]]
    return out
