"""A sweep summarised by condition: how often an outcome happened, with its uncertainty.

``rates(frame, by=["qemu", "icount"], column="status", value="stuck")`` counts, for each
condition, the runs and those whose ``column`` is ``value``, and gives the rate with a
Wilson score interval (Wilson, "Probable inference, the law of succession, and statistical
inference", JASA 22(158), 1927): unlike the normal approximation it stays inside [0, 1]
and is useful at 0 of 8 or 8 of 8, which a few dozen boots per condition give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import pandas as pd

__all__ = ["rates", "wilson"]


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` out of ``trials`` (NaNs for none)."""
    if trials <= 0:
        return (math.nan, math.nan)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def rates(frame: pd.DataFrame, by: Sequence[str], column: str, value: Any, *,
          confidence: float = 0.95, outcome: str | None = "ok") -> pd.DataFrame:
    """Per condition (the ``by`` columns): ``runs``, ``count`` of ``column == value``,
    ``rate``, and its Wilson interval ``low``/``high``, plus the count of every value of
    ``column``. Only runs whose ``outcome`` is ``outcome`` count (None: all), one row per
    run (an experiment with several rows per run counts once)."""
    runs = frame.drop_duplicates("run") if "run" in frame.columns else frame
    if outcome is not None and "outcome" in runs.columns:
        runs = runs[runs["outcome"] == outcome]
    keys = list(by)
    rows = []
    for condition, group in runs.groupby(keys, dropna=False, sort=True):
        condition = condition if isinstance(condition, tuple) else (condition,)
        hits = int((group[column] == value).sum())
        low, high = wilson(hits, len(group), confidence)
        row = dict(zip(keys, condition, strict=True))
        row.update(runs=len(group), count=hits, rate=hits / len(group), low=low, high=high)
        row.update({f"{column}={v}": int(n) for v, n in group[column].value_counts().items()})
        rows.append(row)
    out = pd.DataFrame(rows)
    counts = sorted(c for c in out.columns if c.startswith(f"{column}="))
    out = out[[*keys, "runs", "count", "rate", "low", "high", *counts]]
    out[counts] = out[counts].fillna(0).astype(int)
    out.attrs = {"column": column, "value": value, "confidence": confidence,
                 "interval": "Wilson score"}
    return out
