"""Linux 6.1 calibrate_APIC_clock (arch/x86/kernel/apic/apic.c) replayed on handler samples
and on the kernel's own lapic_cal_* values, beside the kernel's apic=verbose printout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mvnb.timing import (
    LINUX_APIC_CAL_VARIABLES,
    LinuxApicCalibration,
    linux_apic_verbose,
    linux_calibrate_apic,
)

HZ = 250
L = HZ // 10
DATA = Path(__file__).parent.parent / "data"
MICROVM = {"provenance": {"machine": "microvm"}}


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
    f.attrs = MICROVM
    r = linux_calibrate_apic(f, HZ)
    assert isinstance(r, LinuxApicCalibration)
    assert r.lapic_cal_loops == 25
    assert r.rows == (1, 26)  # entry values 0 and 25: the 2nd and the 27th call
    assert r.delta == int(f.ccr[1]) - int(f.ccr[26])
    assert r.lapic_timer_period == r.delta * 16 // 25
    assert r.bus_hz == r.lapic_timer_period * HZ
    assert r.bus_hz == pytest.approx(0.973e9, rel=2e-3)
    assert r.pm.outcome == "skipped" and r.pm_referenced is False  # microvm: no PM timer
    assert "microvm has no ACPI PM timer" in r.pm.explanation
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
    first = _real_like(pm=0)  # a PM timer that does not move: none, as the kernel reads it
    first["jiffies"] = 4294892296 + np.arange(27)  # a tick device runs
    second = _real_like(seed=1, pm=0)
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


def test_verification_expected_but_not_observed() -> None:
    f = _real_like(pm=0)
    f["jiffies"] = 4294892296 + np.arange(27)
    r = linux_calibrate_apic(f, HZ)
    assert r.verification.outcome == "not observed" and r.timer_enabled is None
    assert "sample 'jiffies'" in r.verification.explanation


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


def _recorded(name: str) -> tuple[pd.DataFrame, object]:
    frame = pd.read_csv(DATA / f"{name}.csv")
    frame.attrs = json.loads((DATA / f"{name}.attrs.json").read_text())
    return frame, linux_apic_verbose((DATA / f"{name}.serial.txt").read_text())


@pytest.mark.parametrize("name", ["lapic_cal_verbose_tcg", "lapic_cal_verbose_icount",
                                  "lapic_cal_verbose_pc"])
def test_kernel_values_reproduce_the_kernels_printout(name: str) -> None:
    frame, record = _recorded(name)
    kernel = frame.attrs["after"]
    assert set(kernel) == set(LINUX_APIC_CAL_VARIABLES)
    r = linux_calibrate_apic(frame, HZ, kernel_values=kernel)
    side = r.compare(record)
    assert list(side.columns) == ["replay", "kernel", "diff", "ppm"]
    assert side["diff"].dropna().eq(0).all() and side["diff"].notna().all()
    assert r.lapic_timer_period == record.calibration_result
    assert f"..... calibration result: {record.calibration_result}" in r.messages
    assert set(side.attrs["expected"].values()) == {0}
    assert r.sources["t"] == "kernel" and r.gaps["lapic t1"] >= 0  # the kernel read later
    assert any("exactly" in n for n in r.notes)


@pytest.mark.parametrize("name", ["lapic_cal_verbose_tcg", "lapic_cal_verbose_icount",
                                  "lapic_cal_verbose_pc"])
def test_replay_from_readings_is_within_what_the_observer_predicts(name: str) -> None:
    frame, record = _recorded(name)
    r = linux_calibrate_apic(frame, HZ)
    side = r.compare(record)
    assert r.sources["t"] == "sampled"
    expected = side.attrs["expected"]
    for quantity, diff in side["diff"].dropna().items():
        assert abs(diff) <= expected[quantity], (quantity, diff, expected[quantity])
    assert all(side.attrs["within_expected"].values())
    note = next(n for n in r.notes if n.startswith("Observer effect"))
    assert f"±{expected['calibration result']:,} in the calibration result" in note
    assert any("kernel_values=frame.attrs['after']" in n for n in r.notes)


def test_icount_readings_agree_to_one_count() -> None:
    frame, record = _recorded("lapic_cal_verbose_icount")
    side = linux_calibrate_apic(frame, HZ).compare(record)
    assert side["diff"].abs().max() <= 1


def test_pm_timer_not_observed_is_never_printed_as_zero() -> None:
    """-M pc without a PM column: the kernel printed 432319, the replay cannot know."""
    frame, record = _recorded("lapic_cal_verbose_pc")
    r = linux_calibrate_apic(frame.drop(columns=["pm"]), HZ)
    assert r.pm.outcome == "not observed" and r.deltapm is None and r.pm_referenced is None
    assert "... PM-Timer delta = 0" not in r.messages
    assert "... PM-Timer delta = (not observed)" in r.messages
    assert "mvnb.x86.PM_TIMER" in r.pm.explanation and "lapic_cal_pm1" in r.pm.explanation
    assert r.verification.outcome == "not observed" and r.timer_enabled is None
    side = r.compare(record)
    assert side.loc["PM-Timer delta", "kernel"] == 432_319
    assert pd.isna(side.loc["PM-Timer delta", "replay"])
    assert pd.isna(side.loc["calibration result", "replay"])  # it depends on the PM check
    assert side.loc["lapic delta", "replay"] == r.delta
    assert "not observed" in r.explain()


def test_pm_timer_from_the_kernel_values_alone() -> None:
    frame, record = _recorded("lapic_cal_verbose_pc")
    pm_only = {k: frame.attrs["after"][k] for k in ("lapic_cal_pm1", "lapic_cal_pm2")}
    r = linux_calibrate_apic(frame.drop(columns=["pm"]), HZ, kernel_values=pm_only)
    assert r.deltapm == record.pm_delta and r.sources == {
        "t": "sampled", "tsc": "sampled", "pm": "kernel", "jiffies": "sampled"}
    assert r.pm.outcome == "failed" and r.pm_referenced


def test_kernel_values_without_rows() -> None:
    frame, record = _recorded("lapic_cal_verbose_tcg")
    r = linux_calibrate_apic(frame.iloc[:0], HZ, kernel_values=frame.attrs["after"])
    assert r.lapic_timer_period == record.calibration_result and r.rows == (None, None)


def test_kernel_values_with_unknown_names() -> None:
    with pytest.raises(KeyError, match="lapic_cal_t1"):
        linux_calibrate_apic(_real_like(), HZ, kernel_values={"lapic_t1": 3})


def test_observer_bound_from_the_measurement() -> None:
    f = _real_like(pm=0)
    f.attrs["observer"] = {"samples": {"lapic_per_stop": [6000, 9000, 7000],
                                       "lapic_per_probe": [5000, 6000]},
                           "probe_steps_per_row": 2, "at": "hit 0"}
    r = linux_calibrate_apic(f, HZ)
    assert r.expected["lapic delta"] == 9000 + 2 * 6000
    assert r.expected["calibration result"] == 21000 * 16 // L + 1
    note = next(n for n in r.notes if n.startswith("Observer effect"))
    assert "~7,000 counts" in note and "at most ±21,000" in note and "at hit 0" in note


def test_without_an_observer_measurement_it_says_so() -> None:
    r = linux_calibrate_apic(_real_like(pm=0), HZ)
    assert r.expected["lapic delta"] is None
    assert any("observer effect was not measured" in n for n in r.notes)


def test_a_measurement_at_the_last_stop_widens_the_bound() -> None:
    """Measured at the run's last hit, the measurement itself delays the kernel's next
    read (its t2 when the run ended at loop 25): the bound includes what it moved."""
    f = _real_like(pm=0)
    f.attrs["observer"] = {"samples": {"lapic_per_stop": [6000, 9000],
                                       "lapic_per_probe": [5000, 6000]},
                           "probe_steps_per_row": 1, "moved_lapic": 40_000,
                           "at": "the end of the run, at hit 26"}
    r = linux_calibrate_apic(f, HZ)
    assert r.expected["lapic delta"] == 9000 + 6000 + 40_000
    assert any("moved the LAPIC by 40,000 counts" in n for n in r.notes)


def test_the_rows_own_tick_jitter_widens_the_bound_when_larger() -> None:
    """A stop that froze the clocks late shows in the rows: one tick long, the next short.
    The same host can delay the kernel's read after a resume as much."""
    f = _real_like(pm=0, noise=0)
    f.loc[10:, "ccr"] = f.loc[10:, "ccr"].astype(np.int64) - 90_000  # hit 10 stopped late
    f.attrs["observer"] = {"samples": {"lapic_per_stop": [6000, 9000],
                                       "lapic_per_probe": [5000, 6000]},
                           "probe_steps_per_row": 1, "at": "hit 0"}
    r = linux_calibrate_apic(f, HZ)
    assert r.expected["lapic delta"] == 90_000
    assert any("strayed up to 90,000 counts" in n for n in r.notes)
