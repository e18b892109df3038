"""Plots return Figures, draw under Agg, and decimate large frames."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mvnb.timing import (
    clockcalib,
    plot_clockcalib,
    plot_counts,
    plot_drift,
    plot_rate_histogram,
    plot_residuals,
    windowed_drift,
)
from mvnb.timing.plots import decimate

matplotlib.use("Agg")


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    hpet = np.cumsum(rng.integers(900, 1100, n)).astype(np.int64)
    return pd.DataFrame({"hpet": hpet, "tsc": hpet * 24 + rng.integers(0, 500, n)})


def _draws(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_every_plot_returns_a_figure_that_draws() -> None:
    f = _frame(300_000)
    figs = [
        plot_counts(f, "hpet", "tsc"),
        plot_residuals(f, "hpet", "tsc"),
        plot_drift(f, "hpet", "tsc", window=10_000),
        plot_drift(windowed_drift(f, "hpet", "tsc", window=10_000)),
        plot_rate_histogram(f, "hpet", "tsc"),
    ]
    for fig in figs:
        assert isinstance(fig, Figure)
        assert _draws(fig).startswith(b"\x89PNG")
    line = figs[0].axes[0].lines[0]
    assert len(line.get_xdata()) <= 4000  # decimated for drawing


def test_clockcalib_plot() -> None:
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(1e-6, 3e-6, 50_000))
    r = clockcalib(
        np.floor(t * 2.5e9).astype(np.uint64), np.floor(t * 1e8).astype(np.uint64), 100_000_000
    )
    assert _draws(plot_clockcalib(r)).startswith(b"\x89PNG")


def test_decimate_keeps_both_ends() -> None:
    idx = decimate(10**6, 1000)
    assert idx[0] == 0 and idx[-1] == 10**6 - 1 and len(idx) <= 1000
    assert list(decimate(5, 1000)) == [0, 1, 2, 3, 4]


def test_down_counter_plots_say_so() -> None:
    tsc = np.arange(1000, dtype=np.int64) * 9_600_000
    f = pd.DataFrame({"tsc": tsc, "ccr": 268_435_455 - tsc // 40})
    label = plot_counts(f, "tsc", "ccr").axes[0].lines[1].get_label()
    assert label == "fit: 0.025 ccr down per tsc"
    assert "rate 0.025 down" in plot_residuals(f, "tsc", "ccr").axes[0].get_title()
    drift = plot_drift(f, "tsc", "ccr", window=100, expected_rate=0.025)
    assert "counting down" in drift.axes[0].get_title()
    assert abs(drift.axes[0].lines[0].get_ydata()).max() < 1  # ppm, not -2e6
