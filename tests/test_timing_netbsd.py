"""NetBSD's TSC-based lapic_calibrate_timer (sys/arch/x86/x86/lapic.c) on sampled values."""

from __future__ import annotations

import pandas as pd
import pytest

from mvnb.timing import NetbsdLapicCalibration, netbsd_calibrate_lapic


def test_rounds_to_the_nearest_thousand_hz() -> None:
    # 50 ms of a 3 GHz TSC; single TSC reads count twice, as t0 = read + read.
    tsc = [10**9, 10**9 + 150_000_000]
    r = netbsd_calibrate_lapic([0x80000000, 0x80000000 - 49_999_975], tsc, 3_000_000_000)
    assert isinstance(r, NetbsdLapicCalibration)
    assert r.raw == 999_999_500
    assert r.lapic_per_second == 1_000_000_000
    r = netbsd_calibrate_lapic([0x80000000, 0x80000000 - 49_999_974], tsc, 3_000_000_000)
    assert r.raw == 999_999_480 and r.lapic_per_second == 999_999_000


def test_pairs_of_tsc_reads_and_tval() -> None:
    # (read before, read after) around each LAPIC read, as the kernel sums them
    tsc = [(1000, 1100), (1000 + 120_000_000, 1100 + 120_000_000)]
    r = netbsd_calibrate_lapic([0x80000000, 0x80000000 - 50_000_000], tsc, 2_400_000_000, hz=100)
    assert r.tsc_delta == (240_000_000 + 1) // 2
    assert r.lapic_per_second == 1_000_000_000
    assert r.lapic_tval == 10_000_000
    assert "lapic_per_second = 1,000,000,000" in r.explain()
    assert "lapic_tval" in r._repr_html_()


def test_series_use_first_and_last() -> None:
    lapic = pd.Series([0x80000000, 0x7F000000, 0x80000000 - 500_000_000 // 20])
    tsc = pd.Series([0, 10**6, 150_000_000])
    r = netbsd_calibrate_lapic(lapic, tsc, 3_000_000_000, hz=1000)
    assert r.lapic_per_second == 500_000_000
    assert r.lapic_tval == 500_000


def test_tval_rounds_half_up() -> None:
    r = netbsd_calibrate_lapic([3_000_000, 0], [0, 10**9], 10**9, hz=7)
    # lapic_per_second 3,000,000; 6,000,000 / 7 = 857142 → 428571
    assert r.lapic_tval == 428_571


def test_rejects_a_standing_tsc() -> None:
    with pytest.raises(ValueError, match="did not advance"):
        netbsd_calibrate_lapic([10, 5], [7, 7], 10**9)
