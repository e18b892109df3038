"""The rate of one clock against another: an ordinary least-squares line.

This is the measurement every calibration routine makes in some form: FreeBSD's
``clockcalib`` keeps the running covariance over variance of the two clocks
(sys/kern/subr_clockcalib.c), Linux and NetBSD take two points
(arch/x86/kernel/apic/apic.c ``calibrate_APIC_clock``, sys/arch/x86/x86/lapic.c
``lapic_calibrate_timer``).  Here the slope comes from all samples, with its standard error
and the residuals, so a drifting or stepping clock shows instead of averaging away.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mvnb.timing._reference import warn_host_reference

__all__ = ["RateFit", "fit_rate", "pair"]


@dataclass(frozen=True)
class RateFit:
    """A fitted line ``y = intercept + slope * x``; ``rate`` is y ticks per x tick, >= 0.

    ``counts_down`` is True when y fell as x rose (a down-counter such as the LAPIC
    current count against the TSC, SDM Vol. 3A Section 10.5.4): ``rate`` is then the
    number of ticks y counted down per x tick and ``slope`` is ``-rate``.
    """

    rate: float
    intercept: float
    r2: float
    stderr: float
    residuals: pd.Series = field(repr=False)
    n: int
    x: str = "x"
    y: str = "y"
    counts_down: bool = False

    @property
    def slope(self) -> float:
        """The signed slope of the line: ``-rate`` when ``counts_down``."""
        return -self.rate if self.counts_down else self.rate

    def ppm(self, expected_rate: float) -> float:
        """How far the fitted rate is from ``expected_rate``, in parts per million."""
        return (self.rate / expected_rate - 1.0) * 1e6

    def stderr_ppm(self) -> float:
        """The slope's standard error relative to the slope, in parts per million."""
        return abs(self.stderr / self.rate) * 1e6 if self.rate else float("inf")

    def predict(self, x: Any) -> Any:
        """The fitted y at ``x`` (array, Series or scalar)."""
        if isinstance(x, pd.Series):
            return self.intercept + self.slope * x.astype(np.float64)
        return self.intercept + self.slope * np.asarray(x, dtype=np.float64)

    def _summary_rows(self) -> list[tuple[str, str]]:
        return [
            ("rate", f"{self.rate:.9g} {self.y} per {self.x}"
                     + (f" ({self.y} counts down)" if self.counts_down else "")),
            ("± stderr", f"{self.stderr:.3g} ({self.stderr_ppm():.3g} ppm)"),
            ("intercept", f"{self.intercept:.9g}"),
            ("r²", f"{self.r2:.12f}"),
            ("samples", f"{self.n}"),
            ("residual rms", f"{float(np.sqrt(np.mean(np.square(self.residuals)))):.4g}"),
        ]

    def __str__(self) -> str:
        return "\n".join(f"{k:>13}  {v}" for k, v in self._summary_rows())

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._summary_rows()
        )
        caption = f"rate of {html.escape(self.y)} against {html.escape(self.x)}"
        return f"<table><caption>{caption}</caption>{rows}</table>"


def pair(data: Any, x: Any = None, y: Any = None) -> tuple[pd.Series, pd.Series, str, str]:
    """Resolve the calling conventions shared by the analysis functions to two Series.

    ``(frame, "x", "y")`` names two columns; ``(xs, ys)`` gives two Series or arrays.
    Rows where either is missing are dropped.
    """
    if isinstance(data, pd.DataFrame):
        if x is None or y is None:
            raise ValueError("with a DataFrame, name the x and y columns: fit_rate(df, 'x', 'y')")
        for col in (x, y):
            if col not in data.columns:
                raise KeyError(f"no column {col!r}; the frame has {list(data.columns)}")
        warn_host_reference(data, x, y)
        xs, ys, xn, yn = data[x], data[y], str(x), str(y)
    else:
        if x is None or y is not None:
            raise ValueError("give fit_rate(frame, 'x', 'y') or fit_rate(xs, ys)")
        xs = data if isinstance(data, pd.Series) else pd.Series(np.asarray(data))
        ys = x if isinstance(x, pd.Series) else pd.Series(np.asarray(x), index=xs.index)
        xn = str(xs.name) if xs.name is not None else "x"
        yn = str(ys.name) if ys.name is not None else "y"
        warn_host_reference(None, xn, yn)
    if len(xs) != len(ys):
        raise ValueError(f"x has {len(xs)} values and y has {len(ys)}")
    if xs.isna().any() or ys.isna().any():
        keep = ~(xs.isna().to_numpy() | ys.isna().to_numpy())
        xs, ys = xs[keep], ys[keep]
    return xs, ys, xn, yn


def centred(values: pd.Series) -> tuple[np.ndarray, float]:
    """Values minus the first one, as float64, plus that offset.

    Subtracting in the integer domain first keeps full precision for 64-bit counters
    (a TSC near 2**60 has no room left in a double's 53-bit mantissa).
    """
    raw = values.to_numpy()
    if raw.size == 0:
        return raw.astype(np.float64), 0.0
    if raw.dtype.kind in "iu":
        first = raw[0]
        return (raw - first).astype(np.int64).astype(np.float64), float(first)
    raw = raw.astype(np.float64)
    return raw - raw[0], float(raw[0])


def fit_rate(data: Any, x: Any = None, y: Any = None) -> RateFit:
    """Least-squares rate of clock ``y`` against clock ``x`` (y units per x unit).

    ``fit_rate(frame, "tsc", "ccr")`` or ``fit_rate(xs, ys)``.  A counter that counts
    down (the LAPIC current count) gives a positive ``rate`` with ``counts_down=True``.
    Unwrap wrapping or reloading counters first (``mvnb.timing.unwrap``,
    ``countdown_elapsed``).  The slope is what FreeBSD's ``clockcalib`` computes as
    ``cva / va_t`` (sys/kern/subr_clockcalib.c), here over all samples, with the standard
    error of the slope and the residuals in y units.
    """
    xs, ys, xn, yn = pair(data, x, y)
    n = len(xs)
    if n < 2:
        raise ValueError(f"a rate needs at least two samples, got {n}")
    xv, x0 = centred(xs)
    yv, y0 = centred(ys)
    xm, ym = xv.mean(), yv.mean()
    dx, dy = xv - xm, yv - ym
    sxx = float(dx @ dx)
    if sxx == 0.0:
        raise ValueError(f"{xn} never changes over {n} samples: a stuck clock has no rate")
    sxy = float(dx @ dy)
    syy = float(dy @ dy)
    rate = sxy / sxx
    resid = dy - rate * dx
    ssr = float(resid @ resid)
    r2 = 1.0 if syy == 0.0 else max(0.0, 1.0 - ssr / syy)
    stderr = float(np.sqrt(ssr / (n - 2) / sxx)) if n > 2 else float("nan")
    intercept = (y0 + ym) - rate * (x0 + xm)
    residuals = pd.Series(resid, index=ys.index, name=f"{yn} residual")
    return RateFit(abs(rate), intercept, r2, stderr, residuals, n, xn, yn, rate < 0)
