"""FreeBSD's clockcalib (sys/kern/subr_clockcalib.c) replayed on sampled pairs."""

from __future__ import annotations

import numpy as np
import pytest

from mvnb.timing import DUMMY_TC_FREQUENCY, ClockCalibration, clockcalib, dummy_timecounter


def _clean_pairs(n: int, clk_hz: float, tc_hz: float, tc_bits: int = 32, seed: int = 1):
    """Two ideal counters read at irregular instants 1–3 µs apart."""
    rng = np.random.default_rng(seed)
    t = 0.25 + np.cumsum(rng.uniform(1e-6, 3e-6, n))
    tc = np.floor(t * tc_hz).astype(np.uint64) & np.uint64((1 << tc_bits) - 1)
    clk = np.floor(1e9 + t * clk_hz).astype(np.uint64)
    return clk, tc


def _jittery_clock(n: int, seed: int = 3) -> np.ndarray:
    """A target clock whose increments per loop iteration vary a lot (std 2× mean)."""
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.gamma(0.25, 4000.0, n)) + 12345).astype(np.uint64)


def test_dummy_timecounter_reads() -> None:
    assert list(dummy_timecounter(3)) == [1, 2, 3]
    assert list(dummy_timecounter(3, start=0xFFFFFFFE)) == [0xFFFFFFFF, 0, 1]


def test_dummy_reference_fails_at_t1_one_million_and_one() -> None:
    n = DUMMY_TC_FREQUENCY + 2  # clk0/t0, then iterations 1 … 1,000,001
    r = clockcalib(
        _jittery_clock(n), dummy_timecounter(n, start=5000), DUMMY_TC_FREQUENCY, name="lapic"
    )
    assert isinstance(r, ClockCalibration)
    assert r.failed and r.outcome == "fell back"
    assert r.t1 == 1_000_001 == r.n
    assert r.dummy_reference
    assert r.frequency == int(1_000_000.0 * r.clk1 / r.t1)
    assert r.messages == (
        "Statistical lapic calibration failed!  Clocks might be ticking at variable rates.",
        "Falling back to slow lapic calibration.",
    )
    assert "dummy timecounter" in r.explain()
    assert "tc_init" in r.explain()
    assert "fell back" in r._repr_html_()
    assert len(r.steps) == 1_000_000  # statistics updated on every iteration before the bail


def test_clean_clocks_converge_within_one_ppm() -> None:
    clk, tc = _clean_pairs(200_000, 2.5e9, 3_579_545.0, tc_bits=24)
    r = clockcalib(clk, tc, 3_579_545, 0xFFFFFF, name="tsc")
    assert r.outcome == "converged" and not r.failed
    assert abs(r.frequency / 2.5e9 - 1) < 1e-6
    assert not r.dummy_reference
    assert r.messages[0].startswith("Statistical tsc calibration took ")
    assert r.messages[0].endswith(f" us and {r.n} data points")
    steps = r.steps
    assert steps.index[-1] == r.n
    assert steps["passes"].iloc[-1] * 2 > r.n
    assert not (steps["passes"].iloc[:-1] * 2 > steps.index[:-1]).any()
    assert steps["uncertainty_ppm"].iloc[-1] < 1.0


def test_lapic_against_hpet_as_cb_lapic_getcount_sees_it() -> None:
    rng = np.random.default_rng(5)
    t = np.cumsum(rng.uniform(2e-6, 4e-6, 100_000))
    ccr = (0xFFFFFFFF - np.floor(t * 500e6)).astype(np.uint64)  # divide-by-2 at 1 GHz
    hpet = np.floor(7.0 + t * 1e8).astype(np.uint64)
    r = clockcalib(np.uint64(0xFFFFFFFF) - ccr, hpet, 100_000_000, name="lapic")
    assert r.outcome == "converged"
    assert abs(r.frequency / 500e6 - 1) < 1e-6


def test_reference_wrap_is_undone_like_the_kernel() -> None:
    clk, tc24 = _clean_pairs(50_000, 1e9, 3_579_545.0, tc_bits=24, seed=7)
    _, tc64 = _clean_pairs(50_000, 1e9, 3_579_545.0, tc_bits=64, seed=7)
    a = clockcalib(clk, tc24, 3_579_545, 0xFFFFFF)
    b = clockcalib(clk, tc64, 3_579_545, 2**64 - 1)
    assert (a.n, a.frequency, a.t1) == (b.n, b.frequency, b.t1)


@pytest.mark.parametrize("case", ["clean", "noisy", "dummy"])
def test_vectorised_agrees_with_the_kernels_own_update(case: str) -> None:
    if case == "clean":
        clk, tc = _clean_pairs(60_000, 2.5e9, 1.0e8)
        freq = 100_000_000
    elif case == "noisy":
        clk, tc = _clean_pairs(60_000, 1e9, 1_193_182.0, tc_bits=16)
        clk = clk + np.random.default_rng(0).integers(0, 4000, clk.size).astype(np.uint64)
        freq = 1_193_182
    else:
        clk, tc, freq = _jittery_clock(20_000), dummy_timecounter(20_000), 1_000_000
    mask = 0xFFFF if case == "noisy" else 0xFFFFFFFF
    fast = clockcalib(clk, tc, freq, mask)
    slow = clockcalib(clk, tc, freq, mask, exact=True)
    assert (fast.outcome, fast.n, fast.t1) == (slow.outcome, slow.n, slow.t1)
    if fast.frequency is not None:
        assert abs(fast.frequency - slow.frequency) <= 1 + fast.frequency * 1e-12
    assert np.allclose(fast.steps["cva"], slow.steps["cva"], rtol=1e-9)


def test_running_out_of_samples_is_incomplete() -> None:
    clk, tc = _clean_pairs(100, 2.5e9, 1e8)
    r = clockcalib(clk, tc, 100_000_000)
    assert r.outcome == "incomplete" and r.frequency is None and not r.failed
    assert r.n == 99
    assert r.estimate == pytest.approx(2.5e9, rel=1e-3)
    assert "ran out" in r.explain()


def test_a_million_pairs_complete() -> None:
    tc = dummy_timecounter(10**6)  # never converges, never bails: 999,999 iterations
    r = clockcalib(_jittery_clock(10**6), tc, DUMMY_TC_FREQUENCY)
    assert r.outcome == "incomplete" and r.n == 10**6 - 1
    assert r.dummy_reference


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2\\*\\*k - 1"):
        clockcalib([1, 2], [1, 2], 10, tc_mask=0x1234)
    with pytest.raises(ValueError, match="pairs"):
        clockcalib([1, 2, 3], [1, 2], 10)
    with pytest.raises(ValueError, match="at least one iteration"):
        clockcalib([1], [1], 10)


def test_a_down_counter_passed_as_is_is_called_out() -> None:
    ccr = (0x0FFFFFFF - np.arange(1000) * 1000).astype(np.uint64)
    r = clockcalib(ccr, np.arange(1000) * 100, 100_000_000)
    assert any("went backwards" in n for n in r.notes)
    assert any("incremental update was replayed" in n for n in r.notes)
    fixed = clockcalib(np.uint64(0xFFFFFFFF) - ccr, np.arange(1000) * 100, 100_000_000)
    assert not fixed.notes
    assert fixed.estimate == pytest.approx(1e9)


def test_a_dummy_reference_can_even_converge_and_is_still_called_out() -> None:
    # A target that advances exactly 1000 per loop is a perfect line against ++now:
    # the 1 ppm test passes (n ≈ 72,687) and the "frequency" is cycles per read × 10**6.
    n = 300_000
    clk = (np.arange(n) * 1000 + 5).astype(np.uint64)
    r = clockcalib(clk, dummy_timecounter(n), DUMMY_TC_FREQUENCY)
    assert r.outcome == "converged" and r.frequency == 1_000_000_000
    assert r.dummy_reference
    assert "meaningless" in r.explain()
    exact = clockcalib(clk, dummy_timecounter(n), DUMMY_TC_FREQUENCY, exact=True)
    assert (exact.n, exact.frequency) == (r.n, r.frequency)
