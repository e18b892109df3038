"""Drift, jitter and the findings that make a clock no clock.

Drift is the change of one clock's rate against another over the run (what Linux's
clocksource watchdog checks every 0.5 s, kernel/time/clocksource.c); jitter is the spread
of the rate from one sample interval to the next.  The findings name the failure modes
the kernels trip over: a stuck counter, a "clock" that advances by exactly one per read
(FreeBSD's dummy timecounter, sys/kern/kern_tc.c ``dummy_get_timecount`` returns ``++now``,
which is what sinks ``clockcalib`` in sys/kern/subr_clockcalib.c), steps, a counter that
runs backwards, and host time used as a reference across GDB stops.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from mvnb.timing._reference import (
    HostTimeWarning,
    host_reference_columns,
    host_reference_message,
)
from mvnb.timing.fit import centred, pair

__all__ = ["Diagnosis", "Finding", "Jitter", "diagnose", "jitter", "windowed_drift"]

Severity = Literal["error", "warning", "info"]
_ORDER = {"error": 0, "warning": 1, "info": 2}


def windowed_drift(
    data: Any,
    x: Any = None,
    y: Any = None,
    *,
    window: int | None = None,
    step: int | None = None,
    expected_rate: float | None = None,
) -> pd.DataFrame:
    """Rate of ``y`` against ``x`` over sliding windows, in ppm against the whole run.

    ``window`` and ``step`` count samples (defaults: a tenth of the run, half a window).
    Each row gives the window's first and last row position, the mean x, the fitted rate
    and its offset in ppm from ``expected_rate`` (default: the least-squares rate of the
    whole run, so a constant but wrong rate shows 0 ppm).  Windows are least-squares fits
    of their own samples, computed together as one numpy array operation.  As in
    :func:`~mvnb.timing.fit_rate`, rates are ticks per x tick in the direction ``y``
    counts: a down-counter has positive rates and ``attrs["counts_down"]`` True, and
    ``expected_rate`` is compared as a magnitude.
    """
    xs, ys, xn, yn = pair(data, x, y)
    n = len(xs)
    if n < 3:
        raise ValueError(f"windowed drift needs at least three samples, got {n}")
    window = max(3, n // 10) if window is None else int(window)
    if not 2 <= window <= n:
        raise ValueError(f"window must be between 2 and {n} samples, not {window}")
    step = max(1, window // 2) if step is None else int(step)
    if step < 1:
        raise ValueError(f"step must be at least one sample, not {step}")
    xv, x0 = centred(xs)
    yv, _ = centred(ys)
    dx = xv - xv.mean()
    dy = yv - yv.mean()
    sxx = float(dx @ dx)
    whole = float(dx @ dy) / sxx if sxx else float("nan")
    sign = -1.0 if whole < 0 else 1.0  # a down-counter: report rates as positive ticks
    whole *= sign
    reference = whole if expected_rate is None else abs(float(expected_rate))

    wx = sliding_window_view(xv, window)[::step]
    wy = sliding_window_view(yv, window)[::step]
    cx = wx - wx.mean(axis=1, keepdims=True)
    cy = wy - wy.mean(axis=1, keepdims=True)
    wxx = np.einsum("ij,ij->i", cx, cx)
    wxy = np.einsum("ij,ij->i", cx, cy)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = sign * np.where(wxx > 0, wxy / wxx, np.nan)
    starts = np.arange(wx.shape[0]) * step
    out = pd.DataFrame(
        {
            "start": starts,
            "stop": starts + window - 1,
            "x_mid": wx.mean(axis=1) + x0,
            "n": np.full(starts.size, window),
            "rate": rate,
            "ppm": (rate / reference - 1.0) * 1e6,
        }
    )
    out.attrs.update(
        x=xn,
        y=yn,
        whole_run_rate=whole,
        counts_down=sign < 0,
        reference_rate=reference,
        reference="whole run" if expected_rate is None else "expected",
        host_reference=host_reference_columns(
            data if isinstance(data, pd.DataFrame) else None, xn, yn
        ),
    )
    return out


@dataclass(frozen=True)
class Jitter:
    """Per-interval rates of ``y`` against ``x`` and their spread.

    Rates are ticks per x tick in the direction ``y`` counts overall: positive for a
    down-counter, with ``counts_down`` True (as in :class:`~mvnb.timing.RateFit`).
    """

    rates: pd.Series = field(repr=False)
    rate: float
    median: float
    std: float
    std_ppm: float
    mad_ppm: float
    min: float
    max: float
    zero_intervals: int
    x: str = "x"
    y: str = "y"
    counts_down: bool = False

    def describe(self) -> pd.DataFrame:
        """The summary as a one-column frame (what the HTML view shows)."""
        return pd.DataFrame(
            {
                "value": [
                    self.rate,
                    self.median,
                    self.std,
                    self.std_ppm,
                    self.mad_ppm,
                    self.min,
                    self.max,
                    len(self.rates),
                    self.zero_intervals,
                ]
            },
            index=[
                "overall rate",
                "median rate",
                "std",
                "std (ppm)",
                "MAD (ppm)",
                "min",
                "max",
                "intervals",
                f"intervals where {self.x} did not move",
            ],
        )

    def _repr_html_(self) -> str:
        caption = f"jitter of {html.escape(self.y)} per {html.escape(self.x)}"
        if self.counts_down:
            caption += f" ({html.escape(self.y)} counts down)"
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{v:.9g}</td></tr>"
            for k, v in self.describe()["value"].items()
        )
        return f"<table><caption>{caption}</caption>{rows}</table>"


def jitter(data: Any, x: Any = None, y: Any = None) -> Jitter:
    """The rate over each sample interval (Δy / Δx) and how much it spreads.

    Intervals where ``x`` did not advance have no rate; they are counted in
    ``zero_intervals`` (many of them mean the reference is stuck or too coarse, as a
    jiffies reference is between ticks).
    """
    xs, ys, xn, yn = pair(data, x, y)
    if len(xs) < 2:
        raise ValueError("jitter needs at least two samples")
    xv, _ = centred(xs)
    yv, _ = centred(ys)
    ddx, ddy = np.diff(xv), np.diff(yv)
    moving = ddx != 0
    span = xv[-1] - xv[0]
    overall = (yv[-1] - yv[0]) / span if span else float("nan")
    sign = -1.0 if overall < 0 else 1.0  # a down-counter: rates as positive ticks
    overall *= sign
    rates = pd.Series(sign * ddy[moving] / ddx[moving], index=ys.index[1:][moving],
                      name=f"{'-' if sign < 0 else ''}d{yn}/d{xn}")
    if rates.empty:
        nan = float("nan")
        return Jitter(rates, overall, nan, nan, nan, nan, nan, nan, int((~moving).sum()), xn, yn,
                      sign < 0)
    r = rates.to_numpy()
    median = float(np.median(r))
    std = float(r.std(ddof=1)) if r.size > 1 else 0.0
    scale = abs(overall) if overall else float("nan")
    return Jitter(
        rates=rates,
        rate=float(overall),
        median=median,
        std=std,
        std_ppm=std / scale * 1e6,
        mad_ppm=float(np.median(np.abs(r - median))) / scale * 1e6,
        min=float(r.min()),
        max=float(r.max()),
        zero_intervals=int((~moving).sum()),
        x=xn,
        y=yn,
        counts_down=sign < 0,
    )


@dataclass(frozen=True)
class Finding:
    """One thing ``diagnose`` noticed: what, how bad, where, and what it means."""

    kind: str
    severity: Severity
    column: str
    message: str
    rows: tuple[Any, ...] = ()

    def __str__(self) -> str:
        where = f" (rows {', '.join(map(str, self.rows[:8]))}{' …' if len(self.rows) > 8 else ''})"
        return f"[{self.severity}] {self.column}: {self.message}{where if self.rows else ''}"


@dataclass(frozen=True)
class Diagnosis(Sequence[Finding]):
    """The findings of :func:`diagnose`, worst first."""

    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when nothing worse than an informational note was found."""
        return all(f.severity == "info" for f in self.findings)

    def kinds(self) -> set[str]:
        """The kinds found (``"stuck"``, ``"one-per-sample"``, ``"step"``, …)."""
        return {f.kind for f in self.findings}

    def __getitem__(self, i: Any) -> Any:
        return self.findings[i]

    def __len__(self) -> int:
        return len(self.findings)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def to_frame(self) -> pd.DataFrame:
        """The findings as a table."""
        return pd.DataFrame(
            [(f.severity, f.kind, f.column, f.message, list(f.rows)) for f in self.findings],
            columns=["severity", "kind", "column", "message", "rows"],
        )

    def __str__(self) -> str:
        return "\n".join(map(str, self.findings)) or "no findings"

    def _repr_html_(self) -> str:
        if not self.findings:
            return "<p>No findings: every clock advanced, none by one per sample, no steps.</p>"
        colour = {"error": "#b00020", "warning": "#a05a00", "info": "#555"}
        rows = "".join(
            f"<tr><td style='color:{colour[f.severity]}'>{f.severity}</td>"
            f"<td>{html.escape(f.kind)}</td><td><code>{html.escape(f.column)}</code></td>"
            f"<td style='text-align:left'>{html.escape(f.message)}</td></tr>"
            for f in self.findings
        )
        head = "<tr><th>severity</th><th>kind</th><th>column</th><th>meaning</th></tr>"
        return f"<table>{head}{rows}</table>"


def _column_findings(name: str, values: pd.Series) -> list[Finding]:
    raw = values.dropna().to_numpy()
    if raw.size < 2:
        return []
    v = raw.astype(np.float64) if raw.dtype.kind == "f" else raw.astype(np.int64)
    d = np.diff(v)
    labels = values.dropna().index[1:]
    if (d == 0).all():
        return [
            Finding(
                "stuck",
                "error",
                name,
                f"never changes over {raw.size} samples ({raw[0]}): a stuck clock, or "
                "one that stands still while GDB holds the guest and was read only "
                "at one stop",
            )
        ]
    if raw.size >= 3 and (d == 1).all():
        return [
            Finding(
                "one-per-sample",
                "error",
                name,
                "advances by exactly one per sample: it counts reads, not time. "
                "FreeBSD's dummy timecounter (sys/kern/kern_tc.c) returns ++now on "
                "every read; calibrating against it fails with t1 == tc_frequency + 1 "
                "(sys/kern/subr_clockcalib.c)",
            )
        ]
    out = []
    down = d < 0
    if down.sum() > 0.5 * (d != 0).sum():
        out.append(
            Finding(
                "counts-down",
                "info",
                name,
                "counts down (a LAPIC current count or PIT): fit_rate, windowed_drift "
                "and jitter report its rate as positive ticks with counts_down=True; "
                "across reloads turn it into elapsed ticks with "
                "countdown_elapsed(..., initial=...)",
            )
        )
        back = d > 0
        what = "counted up"
    else:
        back = down
        what = "went backwards"
    if back.any():
        out.append(
            Finding(
                "backwards",
                "warning",
                name,
                f"{what} {int(back.sum())} times: a wrap (unwrap(..., bits=)), a "
                "reload of a periodic timer, or a reset",
                tuple(labels[back][:20]),
            )
        )
    zero = d == 0
    if zero.any():
        out.append(
            Finding(
                "stall",
                "warning",
                name,
                f"did not advance over {int(zero.sum())} of {d.size} intervals",
                tuple(labels[zero][:20]),
            )
        )
    return out


def _step_findings(
    xn: str, yn: str, xs: pd.Series, ys: pd.Series, threshold: float
) -> list[Finding]:
    j = jitter(xs, ys)
    r = j.rates.to_numpy()
    if r.size < 4:
        return []
    median = np.median(r)
    mad = np.median(np.abs(r - median)) * 1.4826
    tol = max(threshold * mad, 1e-6 * abs(median))
    bad = np.abs(r - median) > tol
    if not bad.any():
        return []
    return [
        Finding(
            "step",
            "warning",
            f"{yn}/{xn}",
            f"{int(bad.sum())} of {r.size} intervals have a rate far from the median "
            f"{median:.9g} (beyond {threshold:g} robust standard deviations): steps, "
            "lost ticks, a wrap not undone, or an interval that spans a reload",
            tuple(j.rates.index[bad][:20]),
        )
    ]


def diagnose(
    data: pd.DataFrame,
    x: str | None = None,
    y: str | None = None,
    *,
    columns: Sequence[str] | None = None,
    step_threshold: float = 8.0,
) -> Diagnosis:
    """Look for the failure modes kernels trip over, per column and for the (x, y) pair.

    Per column: stuck, advances by exactly one per sample (FreeBSD's dummy timecounter),
    counts down, goes backwards, stalls.  For ``x`` and ``y``: intervals whose rate is
    more than ``step_threshold`` robust standard deviations from the median (steps), and
    host time used as a reference for rows sampled at GDB stops.  ``columns`` defaults to
    ``x`` and ``y`` when given, else every numeric column but ``hit``.
    """
    if columns is None:
        if x is not None or y is not None:
            columns = [c for c in (x, y) if c is not None]
        else:
            columns = [
                c for c in data.columns if c != "hit" and pd.api.types.is_numeric_dtype(data[c])
            ]
    findings: list[Finding] = []
    for c in columns:
        findings += _column_findings(str(c), data[c])
    for c in host_reference_columns(data, *(columns if x is None else (x, y))):
        findings.append(Finding("host-reference", "warning", c, host_reference_message(c)))
    if x is not None and y is not None:
        pair_ok = not any(f.kind in ("stuck", "one-per-sample") for f in findings)
        if pair_ok:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", HostTimeWarning)  # reported as a finding
                xs, ys, _, _ = pair(data[x], data[y])
                findings += _step_findings(str(x), str(y), xs, ys, step_threshold)
    findings.sort(key=lambda f: _ORDER[f.severity])
    return Diagnosis(tuple(findings))
