"""Plots return Figures, draw under Agg, and decimate large frames."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mvnb.timing import (
    clockcalib,
    plot_clockcalib,
    plot_counts,
    plot_drift,
    plot_intervals,
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


def test_intervals_plot_one_series_per_frame_down_counters_positive() -> None:
    loops = np.arange(-1, 26)
    steady = pd.DataFrame({"loops": loops, "ccr": 268_000_000 - (loops + 1) * 1_716_419})
    uneven = pd.DataFrame({"loops": loops,
                           "ccr": 268_000_000 - np.cumsum(np.r_[0, [240_000, 260_000] * 13])})
    fig = plot_intervals({"icount": steady, "TCG": uneven}, "ccr", x="loops",
                         reference=250_000, reference_label="4 ms", logy=True)
    ax = fig.axes[0]
    first, second, ref = ax.lines
    assert list(first.get_xdata()) == list(range(0, 26))  # each interval at its later row
    assert set(first.get_ydata()) == {1_716_419}
    assert list(second.get_ydata()[:2]) == [240_000, 260_000]
    assert first.get_label() == "icount (26 intervals)" and ref.get_label() == "4 ms"
    assert list(ref.get_ydata()) == [250_000, 250_000]
    assert ax.get_yscale() == "log" and "counted down" in ax.get_ylabel()
    assert _draws(fig).startswith(b"\x89PNG")


def test_intervals_plot_up_counter_and_bad_columns() -> None:
    f = pd.DataFrame({"tsc": [0, 10, 25, 45]})
    ax = plot_intervals(f, "tsc").axes[0]
    assert list(ax.lines[0].get_ydata()) == [10, 15, 20]
    assert "counted down" not in ax.get_ylabel()
    with pytest.raises(KeyError, match="no column 'ccr'"):
        plot_intervals({"a": f}, "ccr")
    with pytest.raises(KeyError, match="for x"):
        plot_intervals({"a": f}, "tsc", x="loops")
    with pytest.raises(ValueError, match="at least one frame"):
        plot_intervals({}, "tsc")
