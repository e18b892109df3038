"""Windowed drift, per-interval jitter, and the diagnosis of clocks that are no clocks."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

from mvnb.timing import (
    Diagnosis,
    HostTimeWarning,
    countdown_elapsed,
    diagnose,
    dummy_timecounter,
    fit_rate,
    jitter,
    unwrap,
    windowed_drift,
)


def _two_rate_frame(n: int = 2000, ppm: float = 50.0) -> pd.DataFrame:
    """HPET ticks against a TSC that runs 50 ppm fast in the second half."""
    hpet = np.arange(n, dtype=np.int64) * 100_000
    rate = np.where(np.arange(n) < n // 2, 24.0, 24.0 * (1 + ppm * 1e-6))
    tsc = np.concatenate([[0], np.cumsum(np.diff(hpet) * rate[1:])]).round().astype(np.int64)
    return pd.DataFrame({"hpet": hpet, "tsc": tsc})


def test_constant_rate_has_no_drift() -> None:
    f = pd.DataFrame({"hpet": np.arange(1000) * 1000, "tsc": 7 + np.arange(1000) * 24000})
    d = windowed_drift(f, "hpet", "tsc", window=100, step=50)
    assert list(d.columns) == ["start", "stop", "x_mid", "n", "rate", "ppm"]
    assert len(d) == 19
    assert d["ppm"].abs().max() < 1e-6
    assert d.attrs["whole_run_rate"] == pytest.approx(24.0)
    assert (d["stop"] - d["start"] == 99).all()


def test_a_rate_change_shows_in_the_windows() -> None:
    d = windowed_drift(_two_rate_frame(), "hpet", "tsc", window=200, step=200, expected_rate=24.0)
    first, last = d.iloc[:4], d.iloc[-4:]
    assert first["ppm"].abs().max() < 0.05
    assert (last["ppm"] - 50).abs().max() < 0.05
    assert d.attrs["reference"] == "expected"


def test_windowed_drift_defaults_and_errors() -> None:
    d = windowed_drift(np.arange(100.0), np.arange(100.0) * 2)
    assert d["n"].iloc[0] == 10 and len(d) == 19
    with pytest.raises(ValueError, match="window"):
        windowed_drift(np.arange(10.0), np.arange(10.0), window=11)


def test_jitter_spread_and_zero_intervals() -> None:
    rng = np.random.default_rng(2)
    x = np.cumsum(rng.integers(90, 110, 5001))
    y = np.cumsum(np.concatenate([[0], np.diff(x) * (1 + rng.normal(0, 20e-6, 5000))]))
    j = jitter(x, y)
    assert j.std_ppm == pytest.approx(20, rel=0.1)
    assert j.rate == pytest.approx(1.0, abs=5e-6)
    assert j.zero_intervals == 0
    assert len(j.rates) == 5000
    coarse = jitter(pd.Series([0, 0, 1, 1, 2]), pd.Series([0, 10, 20, 30, 40]))
    assert coarse.zero_intervals == 2
    assert "std (ppm)" in coarse.describe().index
    assert "jitter" in coarse._repr_html_()


def test_diagnose_a_clean_pair_is_ok() -> None:
    d = diagnose(_two_rate_frame(ppm=0.0), "hpet", "tsc")
    assert isinstance(d, Diagnosis)
    assert d.ok and len(d) == 0
    assert "No findings" in d._repr_html_()


def test_diagnose_stuck_and_one_per_sample() -> None:
    f = pd.DataFrame(
        {
            "hit": np.arange(30),
            "jiffies": np.full(30, 4294892296),
            "dummy": dummy_timecounter(30),
            "hpet": np.arange(30) * 1000,
        }
    )
    d = diagnose(f)
    kinds = {(x.kind, x.column) for x in d}
    assert ("stuck", "jiffies") in kinds
    assert ("one-per-sample", "dummy") in kinds
    assert not any(x.column == "hpet" for x in d)
    assert not d.ok
    assert d[0].severity == "error"
    assert "dummy timecounter" in str(d)
    assert set(d.to_frame().columns) == {"severity", "kind", "column", "message", "rows"}


def test_diagnose_finds_a_step_and_a_wrap_left_in() -> None:
    f = _two_rate_frame(ppm=0.0)
    f.loc[1200:, "tsc"] += 5_000_000  # a step of ~2 ms worth of TSC
    d = diagnose(f, "hpet", "tsc")
    steps = [x for x in d if x.kind == "step"]
    assert len(steps) == 1 and steps[0].rows == (1200,)

    wrapped = pd.DataFrame({"hpet": np.arange(50) * 1000, "c32": (np.arange(50) * 2**27) % 2**32})
    d = diagnose(wrapped, "hpet", "c32")
    assert "backwards" in d.kinds()
    assert (
        "backwards"
        not in diagnose(wrapped.assign(c32=unwrap(wrapped["c32"])), "hpet", "c32").kinds()
    )


def test_diagnose_recognises_a_down_counter() -> None:
    f = pd.DataFrame({"ccr": 268435455 - np.arange(27) * 243257})
    d = diagnose(f)
    assert d.kinds() == {"counts-down"} and d.ok
    assert countdown_elapsed(f["ccr"]).iloc[-1] == 26 * 243257


def test_host_time_across_stops_is_reported_not_measured() -> None:
    # The guest's HPET stands still during each stop; host time runs on.
    hpet = np.arange(100) * 1_000_000
    host = np.cumsum(np.full(100, 10_000_000) + 50_000_000)  # 10 ms running + 50 ms stopped
    f = pd.DataFrame({"host_ns": host, "hpet": hpet})
    f.attrs.update(method="gdb-python", stops=True)
    d = diagnose(f, "host_ns", "hpet")
    assert "host-reference" in d.kinds()
    msg = next(x for x in d if x.kind == "host-reference").message
    assert "not drift" in msg
    with pytest.warns(HostTimeWarning):
        drift = windowed_drift(f, "host_ns", "hpet", window=10)
    assert drift.attrs["host_reference"] == ["host_ns"]


def test_million_rows_unwrap_fit_and_drift() -> None:
    n = 10**6
    rng = np.random.default_rng(9)
    hpet = np.cumsum(rng.integers(900, 1100, n)).astype(np.int64)
    tsc32 = ((hpet * 24 + rng.integers(0, 50, n)) & 0xFFFFFFFF).astype(np.uint32)
    f = pd.DataFrame({"hpet": hpet, "tsc32": tsc32})
    t0 = time.perf_counter()
    f["tsc"] = unwrap(f["tsc32"])
    fit = fit_rate(f, "hpet", "tsc")
    drift = windowed_drift(f, "hpet", "tsc", window=50_000)
    took = time.perf_counter() - t0
    assert fit.rate == pytest.approx(24.0, rel=1e-6)
    assert drift["ppm"].abs().max() < 1.0
    assert took < 3.0  # bench/analysis.py records the real figure; this guards against loops


def test_no_warning_for_guest_clocks() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        windowed_drift(_two_rate_frame(), "hpet", "tsc")


def test_down_counter_drift_and_jitter_are_positive_rates() -> None:
    # Before: windowed_drift against a positive expected rate showed -2,000,000 ppm for a
    # LAPIC current count, and jitter's rates were negative.
    tsc = np.arange(2000, dtype=np.int64) * 9_600_000
    ccr = 268_435_455 - tsc // 40
    f = pd.DataFrame({"tsc": tsc, "ccr": ccr})
    d = windowed_drift(f, "tsc", "ccr", window=200, step=200, expected_rate=1 / 40)
    assert d.attrs["counts_down"] and d.attrs["whole_run_rate"] == pytest.approx(1 / 40)
    assert (d["rate"] > 0).all() and d["ppm"].abs().max() < 1
    assert not windowed_drift(f.assign(ccr=-ccr), "tsc", "ccr").attrs["counts_down"]
    j = jitter(f, "tsc", "ccr")
    assert j.counts_down and j.rate == pytest.approx(1 / 40) and j.median > 0 and j.min > 0
    assert "counts down" in j._repr_html_()
    assert diagnose(f, "tsc", "ccr").kinds() == {"counts-down"}
