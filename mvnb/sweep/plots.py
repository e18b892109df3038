"""A sweep's rates by condition as a figure: one row per condition, the rate and its interval.

``plot_rates(rates(frame, by=[...], column=..., value=...))`` draws each condition's rate
as a point with its Wilson interval (:func:`mvnb.sweep.rates`) as a bar and the count
beside it ("8/8"), so 0 of 8 and 0 of 80 look as different as they are. It returns a
:class:`mvnb.timing.plots.PlotFigure`, which a notebook shows as a PNG and a published post keeps.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["plot_rates"]

_COUNTS = ("runs", "count", "rate", "low", "high")


def _label(row: pd.Series, keys: list[str]) -> str:
    """``qemu 7.2, icount none, host_load 0``: a condition's values, None/NaN as "none"."""
    parts = []
    for key in keys:
        value = row[key]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            value = "none"
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def plot_rates(table: pd.DataFrame, *, title: str | None = None) -> Any:
    """Each condition's rate with its interval, from a :func:`mvnb.sweep.rates` table.

    The condition columns are those before ``runs``; ``title`` defaults to what was
    counted (``table.attrs``: ``column == value``) and the interval's name.
    """
    missing = [c for c in _COUNTS if c not in table.columns]
    if missing:
        raise ValueError(f"plot_rates takes the table mvnb.sweep.rates() returns; this one "
                         f"lacks {missing}")
    if table.empty:
        raise ValueError("plot_rates: the table has no conditions (no finished runs?)")
    from mvnb.timing.plots import PlotFigure

    keys = list(table.columns[: list(table.columns).index("runs")])
    rows = table.reset_index(drop=True)
    labels = [_label(row, keys) for _, row in rows.iterrows()]
    height = 1.0 + 0.38 * len(rows)
    fig = PlotFigure(figsize=(7.0, height), layout="constrained")
    ax = fig.add_subplot()
    y = list(range(len(rows)))[::-1]  # the table's first row on top
    rate = rows["rate"].to_numpy(dtype=float)
    below = rate - rows["low"].to_numpy(dtype=float)
    above = rows["high"].to_numpy(dtype=float) - rate
    ax.errorbar(rate, y, xerr=[below, above], fmt="o", ms=5, capsize=3, lw=1.2)
    for yi, (_, row) in zip(y, rows.iterrows(), strict=True):
        # the count beside the interval, on the side with room: "3/8"
        right = row["rate"] < 0.5
        ax.annotate(f"{int(row['count'])}/{int(row['runs'])}",
                    (row["high"] if right else row["low"], yi),
                    xytext=(6 if right else -6, 0), textcoords="offset points",
                    ha="left" if right else "right", va="center", fontsize="small")
    ax.set_yticks(y, labels)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("rate")
    ax.grid(axis="x", color="0.9")
    attrs = table.attrs
    if title is None:
        what = (f"{attrs['column']} = {attrs['value']}" if "column" in attrs else "rate")
        confidence = attrs.get("confidence", 0.95)
        title = (f"{what}: rate by condition, {attrs.get('interval', 'Wilson score')} "
                 f"{confidence:.0%} interval")
    ax.set_title(title, fontsize="medium")
    return fig
