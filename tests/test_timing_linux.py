"""Linux 6.1 calibrate_APIC_clock (arch/x86/kernel/apic/apic.c) replayed on handler samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mvnb.timing import LinuxApicCalibration, linux_calibrate_apic

HZ = 250
L = HZ // 10


def _real_like(per_tick: int = 243_257, noise: int = 300, seed: int = 0, **extra) -> pd.DataFrame:
    """27 calls as seen on the Debian 6.1 cloud kernel under QEMU microvm TCG: loops -1 … 25
    at entry, current count ~243,257 apart at divide-by-16, jiffies standing still."""
    k = np.arange(27)
    rng = np.random.default_rng(seed)
    ccr = 268_435_455 - 261_724 - k * per_tick + rng.integers(-noise, noise + 1, 27)
    f = pd.DataFrame(
        {"hit": k, "ccr": ccr.astype(np.uint32), "loops": k - 1, "jiffies": 4294892296}
    )
    for name, values in extra.items():
        f[name] = values
    return f


def test_real_like_frame_gives_a_097_ghz_bus() -> None:
    f = _real_like()
    r = linux_calibrate_apic(f, HZ)
    assert isinstance(r, LinuxApicCalibration)
    assert r.lapic_cal_loops == 25
    assert r.rows == (1, 26)  # entry values 0 and 25: the 2nd and the 27th call
    assert r.delta == int(f.ccr[1]) - int(f.ccr[26])
    assert r.lapic_timer_period == r.delta * 16 // 25
    assert r.bus_hz == r.lapic_timer_period * HZ
    assert r.bus_hz == pytest.approx(0.973e9, rel=2e-3)
    assert r.pm.outcome == "skipped" and not r.pm_referenced
    assert r.too_slow.outcome == "passed"
    assert r.verification.outcome == "skipped"  # jiffies stood still: no global clockevent
    assert r.timer_enabled
    assert r.counts_per_tick.mean() == pytest.approx(243_257, rel=1e-3)
    assert any("paced by the TSC" in n for n in r.notes)
    assert f"..... calibration result: {r.lapic_timer_period}" in r.messages
    host = next(m for m in r.messages if "host bus clock" in m)
    assert host.startswith("..... host bus clock speed is 973.")
    assert "0.973 GHz" in r.explain()
    assert "lapic_timer_period" in r._repr_html_()
    assert list(r.checks.index) == [
        "PM-timer ±1%",
        "APIC frequency too slow",
        "jiffies ±2 verification",
    ]


def test_pm_timer_within_one_percent_is_trusted() -> None:
    pm = (1000 + np.arange(27) * 14_318).astype(np.int64)  # 357,950 over 25 ticks
    r = linux_calibrate_apic(_real_like(pm=pm), HZ)
    assert r.pm.outcome == "passed" and r.pm_referenced
    assert r.pm.value == 14_318 * 25
    assert "... PM-Timer result ok" in r.messages
    assert r.verification.outcome == "skipped"
    assert r.delta_used == r.delta


def test_pm_timer_disagreeing_rescales_the_delta() -> None:
    # The PM timer saw 110 ms where the tick said 100 ms; it also wraps at 24 bits.
    pm = ((0xFFFFFF - 200_000 + np.arange(27) * 15_750) & 0xFFFFFF).astype(np.int64)
    tsc = (10**12 + np.arange(27) * 12_000_000).astype(np.uint64)
    r = linux_calibrate_apic(_real_like(pm=pm, tsc=tsc), HZ)
    deltapm = 15_750 * 25
    assert r.pm.outcome == "failed" and r.pm.value == deltapm and r.pm_referenced
    assert r.delta_used == r.delta * 357_954 // deltapm
    assert r.lapic_timer_period == r.delta_used * 16 // 25
    assert "APIC calibration not consistent with PM-Timer: 110ms instead of 100ms" in r.messages
    assert r.deltatsc == 25 * 12_000_000 * 357_954 // deltapm
    assert any(m.startswith("TSC delta adjusted to PM-Timer: ") for m in r.messages)


def test_cpu_clock_from_the_tsc() -> None:
    tsc = (10**12 + np.arange(27) * 12_000_000).astype(np.uint64)  # 3 GHz at HZ=250
    r = linux_calibrate_apic(_real_like(tsc=tsc), HZ)
    assert r.cpu_hz == pytest.approx(3e9)
    assert "..... CPU clock speed is 3000.0000 MHz." in r.messages


def test_too_slow_disables_the_timer() -> None:
    r = linux_calibrate_apic(_real_like(per_tick=200, noise=0), HZ)
    assert r.lapic_timer_period == 25 * 200 * 16 // 25 == 3200 < 4000
    assert r.too_slow.outcome == "failed" and not r.timer_enabled
    assert "APIC frequency too slow, disabling apic timer" in r.messages
    assert r.verification.outcome == "skipped"


def _with_verification(jiffies_delta: int) -> pd.DataFrame:
    first = _real_like()
    first["jiffies"] = 4294892296 + np.arange(27)  # a tick device runs
    second = _real_like(seed=1)
    second["jiffies"] = 4294892400 + np.round(np.arange(27) * jiffies_delta / 25).astype(int)
    return pd.concat([first, second], ignore_index=True)


@pytest.mark.parametrize(("deltaj", "outcome"), [(25, "passed"), (27, "passed"), (28, "failed")])
def test_jiffies_verification(deltaj: int, outcome: str) -> None:
    r = linux_calibrate_apic(_with_verification(deltaj), HZ, global_clock_event=True)
    assert r.verification.outcome == outcome
    assert r.verification.value == deltaj
    assert r.timer_enabled == (outcome == "passed")
    if outcome == "failed":
        assert "APIC timer disabled due to verification failure" in r.messages


def test_verification_expected_but_not_sampled() -> None:
    f = _real_like()
    f["jiffies"] = 4294892296 + np.arange(27)
    r = linux_calibrate_apic(f, HZ)
    assert r.verification.outcome == "not sampled"


def test_without_a_loops_column_rows_are_consecutive_calls() -> None:
    f = _real_like().drop(columns=["loops"]).rename(columns={"ccr": "current_count"})
    r = linux_calibrate_apic(f, HZ)
    assert r.rows == (1, 26)
    assert any("consecutive" in n for n in r.notes)


def test_missing_the_loop_zero_sample() -> None:
    with pytest.raises(ValueError, match="lapic_cal_loops == 0"):
        linux_calibrate_apic(_real_like().iloc[2:], HZ)
    with pytest.raises(KeyError, match="ccr"):
        linux_calibrate_apic(pd.DataFrame({"loops": [0, 1]}), HZ)
