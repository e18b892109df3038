"""Replays beside the kernels' own numbers (mvnb.timing.compare): the shared frame, and the
FreeBSD and NetBSD replays' compare() with the variables those kernels keep
(sys/x86/x86/local_apic.c count_freq, lapic_timer_divisor; sys/arch/x86/x86/lapic.c
lapic_per_second, lapic_tval)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mvnb.timing import clockcalib, netbsd_calibrate_lapic
from mvnb.timing.compare import side_by_side


def test_side_by_side_keeps_what_was_not_observed_missing():
    f = side_by_side([("a", 1_000_010, 1_000_000), ("b", None, 7), ("c", 3, 3)],
                     expected={"a": 5, "c": 0})
    assert list(f.columns) == ["replay", "kernel", "diff", "ppm"]
    assert f.loc["a", "diff"] == 10 and f.loc["a", "ppm"] == pytest.approx(10.0)
    assert pd.isna(f.loc["b", "replay"]) and pd.isna(f.loc["b", "diff"])
    assert f.attrs["within_expected"] == {"a": False, "b": None, "c": True}


def test_netbsd_beside_its_globals():
    tsc = [(1000, 1100), (1000 + 120_000_000, 1100 + 120_000_000)]
    r = netbsd_calibrate_lapic([0x80000000, 0x80000000 - 50_000_000], tsc, 2_400_000_000)
    f = r.compare({"lapic_per_second": 1_000_001_000, "lapic_tval": 10_000_000})
    assert f["diff"].tolist() == [-1000, 0]
    assert f.loc["lapic_per_second", "ppm"] == pytest.approx(-1.0, abs=1e-3)
    with pytest.raises(KeyError, match="lapic_per_second"):
        r.compare({"count_freq": 3})


def test_freebsd_lapic_beside_count_freq_and_the_divisor():
    rng = np.random.default_rng(5)
    t = np.cumsum(rng.uniform(2e-6, 4e-6, 100_000))
    ccr = (0xFFFFFFFF - np.floor(t * 500e6)).astype(np.uint64)
    hpet = np.floor(7.0 + t * 1e8).astype(np.uint64)
    r = clockcalib(np.uint64(0xFFFFFFFF) - ccr, hpet, 100_000_000, name="lapic")
    # The kernel kept count_freq = freq * 2 / divisor with divisor 2: freq itself.
    f = r.compare({"count_freq": r.frequency, "lapic_timer_divisor": 2})
    assert f.loc["freq", "diff"] == 0
    with pytest.raises(KeyError, match="lapic_timer_divisor"):
        r.compare({"count_freq": r.frequency})
    assert r.compare({"tsc_freq": r.frequency + 5}).loc["tsc_freq", "diff"] == -5
