"""Least-squares rates between clocks."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mvnb.timing import HostTimeWarning, RateFit, fit_rate


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
