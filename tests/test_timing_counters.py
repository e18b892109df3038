"""Counter preparation: unwrapping up-counters of any width, down-counters, conversions."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mvnb.timing import (
    ACPI_PM_HZ,
    HPET_HZ,
    PIT_HZ,
    countdown_elapsed,
    dcr_divisor,
    elapsed,
    jiffies_seconds,
    lapic_timer_hz,
    to_seconds,
    unwrap,
)


@given(
    bits=st.sampled_from([16, 24, 32, 48]),
    start=st.integers(min_value=0, max_value=2**48),
    data=st.data(),
)
def test_unwrap_recovers_the_true_count(bits: int, start: int, data: st.DataObject) -> None:
    mask = (1 << bits) - 1
    steps = data.draw(st.lists(st.integers(0, mask), min_size=1, max_size=60))
    true = start + np.concatenate([[0], np.cumsum(steps, dtype=np.int64)])
    read = true & mask
    u = unwrap(read, bits=bits)
    assert u.dtype == np.int64
    assert (u - u[0] == true - true[0]).all()
    assert u[0] == read[0]


def test_unwrap_keeps_series_index_and_name() -> None:
    s = pd.Series([0xFFFFFFF0, 0xFFFFFFFF, 5, 40], index=[10, 11, 12, 13], name="tsc32")
    u = unwrap(s)
    assert list(u.index) == [10, 11, 12, 13]
    assert u.name == "tsc32"
    assert list(u - u.iloc[0]) == [0, 15, 21, 56]


def test_unwrap_accepts_signed_reads_of_unsigned_counters() -> None:
    # a u32 read back as a C long / int32 goes negative past 2**31
    signed = np.array([2**31 - 2, -(2**31), -(2**31) + 10], dtype=np.int64)
    assert list(elapsed(signed)) == [0, 2, 12]


def test_pit_and_acpi_pm_widths() -> None:
    assert list(elapsed(np.array([65530, 65535, 3, 10], dtype=np.uint16), bits=16)) == [0, 5, 9, 16]
    pm = np.array([0xFFFFF0, 0x000010, 0x000020])
    assert list(elapsed(pm, bits=24)) == [0, 0x20, 0x30]


def test_unwrap_rejects_nan_and_bad_width() -> None:
    with pytest.raises(ValueError, match="NaN"):
        unwrap(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="bits"):
        unwrap([1, 2], bits=0)


@given(
    initial=st.integers(min_value=1, max_value=0xFFFFFFFF),
    offset=st.integers(min_value=0, max_value=0xFFFFFFFF),
    data=st.data(),
)
def test_countdown_elapsed_periodic_lapic(initial: int, offset: int, data: st.DataObject) -> None:
    period = initial + 1
    steps = data.draw(st.lists(st.integers(0, initial), min_size=1, max_size=40))
    true = np.concatenate([[0], np.cumsum(steps, dtype=np.int64)])
    current = initial - (offset + true) % period  # QEMU: initial - d % (initial + 1)
    assert (countdown_elapsed(current, initial=initial) == true).all()


def test_countdown_elapsed_one_shot_and_pit() -> None:
    assert list(countdown_elapsed([268435455, 268192198, 267948941])) == [0, 243257, 486514]
    with pytest.raises(ValueError, match="went up at sample 2"):
        countdown_elapsed([100, 50, 80])
    assert list(countdown_elapsed([10, 65530, 65500], modulus=65536)) == [0, 16, 46]
    with pytest.raises(ValueError, match="outside"):
        countdown_elapsed([10, 200], initial=100)


def test_conversions() -> None:
    assert PIT_HZ == 1_193_182 and HPET_HZ == 100_000_000 and ACPI_PM_HZ == 3_579_545
    assert to_seconds(np.array([ACPI_PM_HZ]), ACPI_PM_HZ)[0] == 1.0
    assert to_seconds(pd.Series([0, HPET_HZ // 2]), HPET_HZ).tolist() == [0.0, 0.5]
    assert list(jiffies_seconds(pd.Series([4294892296, 4294892546]), 250)) == [0.0, 1.0]
    assert [dcr_divisor(v) for v in (0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB)] == [
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        1,
    ]
    assert lapic_timer_hz(16) == 62_500_000
    with pytest.raises(ValueError):
        lapic_timer_hz(3)


def test_unwrap_million_rows_is_fast() -> None:
    true = np.arange(10**6, dtype=np.int64) * 7919 + 2**32 - 5000
    read = (true & 0xFFFFFFFF).astype(np.uint32)
    t0 = time.perf_counter()
    u = unwrap(read)
    assert time.perf_counter() - t0 < 1.0  # a guard against a Python loop, not a benchmark
    assert (u - u[0] == true - true[0]).all()
