"""Least-squares rates between clocks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mvnb.timing import HostTimeWarning, RateFit, fit_rate

DATA = Path(__file__).parents[1] / "data"


def test_exact_line() -> None:
    f = pd.DataFrame({"hpet": np.arange(0, 1000) * 1000, "tsc": 5 + np.arange(0, 1000) * 24000})
    fit = fit_rate(f, "hpet", "tsc")
    assert isinstance(fit, RateFit)
    assert fit.rate == pytest.approx(24.0, rel=1e-15)
    assert fit.intercept == pytest.approx(5.0, abs=1e-6)
    assert fit.r2 == 1.0
    assert fit.n == 1000
    assert fit.ppm(24.0) == pytest.approx(0.0, abs=1e-9)
    assert (fit.x, fit.y) == ("hpet", "tsc")
    assert "24" in fit._repr_html_()


def test_noisy_clock_within_its_standard_error() -> None:
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0, 2.0, 5000))  # seconds
    hpet = np.floor(t * 100e6).astype(np.int64)
    true_rate = 24.000012  # TSC ticks per HPET tick: 2.4 GHz + 0.5 ppm
    tsc = np.floor(1e12 + hpet * true_rate + rng.normal(0, 300, t.size)).astype(np.int64)
    fit = fit_rate(pd.Series(hpet, name="hpet"), pd.Series(tsc, name="tsc"))
    assert abs(fit.rate - true_rate) < 4 * fit.stderr
    assert fit.ppm(24.0) == pytest.approx(0.5, abs=0.1)
    assert fit.residuals.std() == pytest.approx(300, rel=0.1)
    assert fit.residuals.index.equals(pd.RangeIndex(5000))


def test_arrays_and_64_bit_counters_keep_precision() -> None:
    x = np.arange(100, dtype=np.uint64) * 1000 + np.uint64(2**62)
    y = np.arange(100, dtype=np.uint64) * 3000 + np.uint64(2**61)
    fit = fit_rate(x, y)
    assert fit.rate == 3.0
    assert (fit.x, fit.y) == ("x", "y")


def test_missing_rows_are_dropped_and_stuck_x_refused() -> None:
    f = pd.DataFrame({"x": [0.0, 1.0, np.nan, 3.0], "y": [0.0, 2.0, 4.0, np.nan]})
    assert fit_rate(f, "x", "y").n == 2
    with pytest.raises(ValueError, match="never changes"):
        fit_rate(pd.DataFrame({"x": [7, 7, 7], "y": [1, 2, 3]}), "x", "y")
    with pytest.raises(ValueError, match="two samples"):
        fit_rate([1], [2])
    with pytest.raises(KeyError, match="nope"):
        fit_rate(f, "x", "nope")


def test_host_time_as_reference_warns() -> None:
    f = pd.DataFrame({"host_ns": [0, 10**9, 3 * 10**9], "hpet": [0, 1000, 2000]})
    with pytest.warns(HostTimeWarning, match="stand still while GDB holds the guest"):
        fit_rate(f, "host_ns", "hpet")
    f.attrs["stops"] = False  # rows logged while the guest ran
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_rate(f, "host_ns", "hpet")


@given(
    rate=st.floats(min_value=1e-3, max_value=1e4),
    offset=st.integers(min_value=-(2**40), max_value=2**40),
    n=st.integers(min_value=3, max_value=300),
)
def test_recovers_any_rate(rate: float, offset: int, n: int) -> None:
    x = np.arange(n, dtype=np.float64) * 1000.0
    y = offset + rate * x
    fit = fit_rate(x, y)
    # y itself is rounded to a double near |offset|: the slope can be off by that much
    ulp = float(np.spacing(abs(offset) + rate * x[-1]))
    assert abs(fit.rate - rate) <= 4 * ulp / x[-1] + 1e-12 * rate
    assert fit.intercept == pytest.approx(offset, abs=8 * ulp + 1e-6 * rate * x[-1])


def test_down_counter_has_a_positive_rate_and_says_so() -> None:
    # Before: fit_rate(frame, "tsc", "ccr") on a LAPIC current count gave rate < 0.
    tsc = np.arange(0, 27, dtype=np.int64) * 9_600_000 + 10**10
    ccr = 268_435_455 - (tsc - tsc[0]) // 40  # 1/40 of a count per TSC tick, downwards
    f = pd.DataFrame({"tsc": tsc, "ccr": ccr})
    fit = fit_rate(f, "tsc", "ccr")
    assert fit.rate == pytest.approx(1 / 40, rel=1e-9) and fit.counts_down
    assert fit.slope == -fit.rate
    assert fit.predict(tsc[[0, -1]]) == pytest.approx(ccr[[0, -1]], abs=1)
    assert fit.ppm(1 / 40) == pytest.approx(0, abs=1e-3)
    assert "counts_down=True" in repr(fit)
    assert "ccr counts down" in str(fit) and "ccr counts down" in fit._repr_html_()
    up = fit_rate(f.assign(ccr=-f.ccr), "tsc", "ccr")
    assert not up.counts_down and up.rate == pytest.approx(fit.rate)
    assert "counts down" not in str(up)


def test_recorded_lapic_current_count_counts_down() -> None:
    frame = pd.read_csv(DATA / "lapic_cal_tcg.csv")
    fit = fit_rate(frame, "tsc", "ccr")
    # QEMU's LAPIC at 1 GHz / 16 (DCR=3) against the host TSC of about 2.6 GHz
    assert fit.counts_down and 0.02 < fit.rate < 0.03 and fit.r2 > 0.999
