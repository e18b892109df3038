"""Plots of sampled clocks: counts with their fit, residuals, drift, per-interval rates.

Each function returns a :class:`PlotFigure`, a matplotlib ``Figure`` built without pyplot
(no global state, safe under the Agg backend and in CI) that shows itself as a PNG
(``_repr_png_``): a notebook displays it inline without ``%matplotlib inline``, also under
``jupyter nbconvert --execute``, and a published post keeps the PNG.  Large frames are
decimated for drawing only; fits and statistics use every sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mvnb.timing.drift import jitter, windowed_drift
from mvnb.timing.fit import RateFit, fit_rate, pair

__all__ = [
    "MAX_POINTS",
    "PlotFigure",
    "decimate",
    "plot_clockcalib",
    "plot_counts",
    "plot_drift",
    "plot_intervals",
    "plot_rate_histogram",
    "plot_residuals",
]

#: Points drawn per series at most; more would only slow the figure and bloat the post.
MAX_POINTS = 4000


def decimate(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Row positions to draw out of ``n``: every k-th, always the first and the last."""
    if n <= max_points:
        return np.arange(n)
    idx = np.linspace(0, n - 1, max_points).round().astype(np.int64)
    return np.unique(idx)


def _envelope(values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bucket positions with each bucket's min and max, so spikes survive decimation."""
    n = values.size
    buckets = max(1, min(n, max_points // 2))
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    mins = np.minimum.reduceat(values, edges[:-1])
    maxs = np.maximum.reduceat(values, edges[:-1])
    return edges[:-1], mins, maxs


class PlotFigure(Figure):
    """A ``Figure`` that IPython shows as a PNG without pyplot or ``%matplotlib inline``.

    Figures made without pyplot have no display formatter unless pyplot's inline backend
    was loaded; then they print as ``<Figure size 700x360 with 1 Axes>``. A formatter that
    is registered (``%matplotlib inline``) still takes precedence over this method.
    """

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def _figure(width: float = 7.0, height: float = 3.6) -> tuple[Figure, Any]:
    fig = PlotFigure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def plot_counts(
    data: Any,
    x: Any = None,
    y: Any = None,
    *,
    fit: RateFit | None = None,
    max_points: int = MAX_POINTS,
) -> Figure:
    """``y`` against ``x`` as sampled, with the least-squares line and its rate."""
    xs, ys, xn, yn = pair(data, x, y)
    fit = fit or fit_rate(xs.rename(xn), ys.rename(yn))
    idx = decimate(len(xs), max_points)
    xv, yv = xs.to_numpy()[idx], ys.to_numpy()[idx]
    fig, ax = _figure()
    ax.plot(xv, yv, ".", ms=3, label=f"samples ({len(xs):,})")
    ends = np.array([xv[0], xv[-1]], dtype=np.float64)
    down = " down" if fit.counts_down else ""
    ax.plot(ends, fit.predict(ends), "-", lw=1, label=f"fit: {fit.rate:.9g} {yn}{down} per {xn}")
    ax.set_xlabel(xn)
    ax.set_ylabel(yn)
    ax.set_title(f"{yn} against {xn}")
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_residuals(
    data: Any,
    x: Any = None,
    y: Any = None,
    *,
    fit: RateFit | None = None,
    max_points: int = MAX_POINTS,
) -> Figure:
    """What the straight line leaves over, in ``y`` units: drift bends it, steps jump."""
    xs, ys, xn, yn = pair(data, x, y)
    fit = fit or fit_rate(xs.rename(xn), ys.rename(yn))
    xv = xs.to_numpy().astype(np.float64)
    r = fit.residuals.to_numpy()
    fig, ax = _figure()
    if r.size > max_points:
        pos, lo, hi = _envelope(r, max_points)
        ax.fill_between(
            xv[pos], lo, hi, step="post", alpha=0.6, lw=0, label=f"min–max of {r.size:,} residuals"
        )
    else:
        ax.plot(xv, r, ".-", ms=3, lw=0.5, label="residual")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel(xn)
    ax.set_ylabel(f"{yn} − fit")
    ax.set_title(
        f"residuals of {yn} against {xn} (rate {fit.rate:.9g}"
        f"{' down' if fit.counts_down else ''}, ±{fit.stderr_ppm():.2g} ppm)"
    )
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_drift(
    data: Any,
    x: Any = None,
    y: Any = None,
    *,
    window: int | None = None,
    step: int | None = None,
    expected_rate: float | None = None,
) -> Figure:
    """Windowed rate in ppm against the whole run (or ``expected_rate``).

    Takes a frame from :func:`windowed_drift` as it is, or the arguments to compute one.
    """
    if isinstance(data, pd.DataFrame) and {"ppm", "x_mid"} <= set(data.columns) and x is None:
        drift = data
    else:
        drift = windowed_drift(data, x, y, window=window, step=step, expected_rate=expected_rate)
    fig, ax = _figure()
    ax.plot(drift["x_mid"], drift["ppm"], ".-", ms=4, lw=1)
    ax.axhline(0, color="0.5", lw=0.8)
    attrs = drift.attrs
    ax.set_xlabel(f"{attrs.get('x', 'x')} (window centre)")
    ax.set_ylabel("ppm")
    ref = attrs.get("reference", "whole run")
    down = " (counting down)" if attrs.get("counts_down") else ""
    title = (f"drift of {attrs.get('y', 'y')}{down}: windows of "
             f"{int(drift['n'].iloc[0]):,} samples")
    ax.set_title(f"{title}, against the {ref} rate")
    if attrs.get("host_reference"):
        ax.text(
            0.01,
            0.02,
            "host time across GDB stops: this measures the stops",
            transform=ax.transAxes,
            color="#b00020",
            fontsize="small",
        )
    return fig


def plot_intervals(
    frames: Mapping[str, pd.DataFrame] | pd.DataFrame,
    column: str,
    *,
    x: str | None = None,
    reference: float | None = None,
    reference_label: str | None = None,
    logy: bool = False,
    title: str | None = None,
) -> Figure:
    """How far ``column`` moved between successive rows, one series per frame.

    For comparing runs of the same experiment: the LAPIC counts between successive
    ``lapic_cal_handler`` hits of a free-running and an ``icount`` boot, say
    (``{"TCG": a, "icount": b}``). A counter that runs down over the frame (the LAPIC
    current count) is drawn as the positive counts it ran down. Each interval is placed at
    the later row's ``x`` (default: the row's position). ``reference`` draws a horizontal
    line, e.g. what an undisturbed interval would be.
    """
    if isinstance(frames, pd.DataFrame):
        frames = {column: frames}
    if not frames:
        raise ValueError("plot_intervals needs at least one frame")
    fig, ax = _figure()
    down_any = False
    for name, frame in frames.items():
        if column not in frame.columns:
            raise KeyError(f"frame {name!r} has no column {column!r}; it has "
                           f"{list(frame.columns)}")
        if x is not None and x not in frame.columns:
            raise KeyError(f"frame {name!r} has no column {x!r} for x; it has "
                           f"{list(frame.columns)}")
        values = frame[column].to_numpy(dtype=np.float64)
        steps = np.diff(values)
        down = values.size > 1 and values[-1] < values[0]
        down_any |= down
        where = (frame[x].to_numpy()[1:] if x is not None
                 else np.arange(1, values.size))
        ax.plot(where, -steps if down else steps, ".-", ms=5, lw=1,
                label=f"{name} ({steps.size} intervals)")
    if reference is not None:
        ax.axhline(reference, color="0.4", lw=1, ls="--",
                   label=reference_label or f"reference {reference:,.0f}")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x or "row")
    ax.set_ylabel(f"{column}{' counted down' if down_any else ''} since the previous row")
    ax.set_title(title or f"{column} between successive rows")
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_rate_histogram(
    data: Any,
    x: Any = None,
    y: Any = None,
    *,
    bins: int = 60,
    ppm: bool = True,
) -> Figure:
    """Histogram of the per-interval rates (jitter), in ppm from the overall rate."""
    j = jitter(data, x, y)
    r = j.rates.to_numpy()
    values = (r / j.rate - 1.0) * 1e6 if ppm and j.rate else r
    fig, ax = _figure()
    ax.hist(values, bins=bins)
    ax.set_xlabel("ppm from the overall rate" if ppm
                  else f"{'-' if j.counts_down else ''}d{j.y}/d{j.x}")
    ax.set_ylabel("intervals")
    ax.set_title(
        f"per-interval rate of {j.y} per {j.x}: σ = {j.std_ppm:.3g} ppm ({len(r):,} intervals)"
    )
    return fig


def plot_clockcalib(result: Any, *, max_points: int = MAX_POINTS) -> Figure:
    """FreeBSD ``clockcalib``'s uncertainty per iteration against its 1 ppm target.

    ``result`` is a :class:`mvnb.timing.freebsd.ClockCalibration`.
    """
    steps = result.steps
    idx = decimate(len(steps), max_points)
    n = steps.index.to_numpy()[idx]
    u = steps["uncertainty_ppm"].to_numpy()[idx]
    fig, ax = _figure()
    ax.semilogy(n, u, "-", lw=1, label="relative slope uncertainty (+quantisation)")
    ax.axhline(1.0, color="#b00020", lw=0.8, ls="--", label="1 ppm pass threshold")
    ax.set_xlabel("iteration n")
    ax.set_ylabel("ppm")
    ax.set_title(f"clockcalib({result.name}): {result.outcome} at n = {result.n:,}")
    ax.legend(loc="best", fontsize="small")
    return fig
