"""Replays that agree with the kernel, on the real guest: Linux 6.1's calibrate_APIC_clock
(arch/x86/kernel/apic/apic.c) sampled at lapic_cal_handler, its own lapic_cal_* values read
once it returned, and its apic=verbose printout, on QEMU 7.2 microvm (free-running TCG and
icount) and -M pc. What a stop costs the clocks is measured on the running guest
(mvnb.x86.observer) and bounds how far the replay from mvnb's own readings may be off.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest

import mvnb
from mvnb.timing import LINUX_APIC_CAL_VARIABLES, linux_apic_verbose, linux_calibrate_apic
from mvnb.x86 import PM_TIMER, TIMER_CCR, TSC

pytestmark = pytest.mark.live

HZ = 250
OBSERVER_KEYS = ("lapic_per_stop", "tsc_per_stop", "lapic_per_read", "tsc_per_read")


def _calibrate(guest: mvnb.Guest, **qemu_args):
    """Sample the 27 handler calls with the kernel's values read after, then let the kernel
    print its result; the frame and the parsed printout."""
    verbose = dataclasses.replace(guest, cmdline=f"{guest.cmdline} apic=verbose")
    with warnings.catch_warnings():  # boot_to says when it boots again past the TSC trap
        warnings.simplefilter("ignore", RuntimeWarning)
        vm, s, _ = mvnb.boot_to(verbose, "lapic_cal_handler", **qemu_args)
    with vm:
        columns = {"loops": "lapic_cal_loops", "ccr": TIMER_CCR, "tsc": TSC,
                   "jiffies": "jiffies"}
        if qemu_args.get("machine") == "pc":
            columns["pm"] = PM_TIMER
        frame = s.sample("lapic_cal_handler", columns, count=27, timeout=120, progress=False,
                         after=LINUX_APIC_CAL_VARIABLES)
        assert frame["loops"].tolist() == list(range(-1, 26)), (frame.to_string(), frame.attrs)
        assert frame.attrs["after_at"].startswith("returned to"), frame.attrs["after_at"]
        for bp in s.breakpoints():
            bp.delete()
        s.cont(wait=False)
        try:
            vm.wait_serial(r"host bus clock speed is", timeout=120)
        finally:
            s.interrupt()
        return frame, linux_apic_verbose(vm.serial())


def _exact(frame, record) -> None:
    """With the kernel's own values the replay is the kernel's printout, to the count."""
    r = linux_calibrate_apic(frame, HZ, kernel_values=frame.attrs["after"])
    side = r.compare(record)
    assert r.lapic_timer_period == record.calibration_result
    assert side["diff"].notna().all() and side["diff"].eq(0).all(), side


def _within_the_observer_effect(frame, record):
    """mvnb's own readings: off by no more than the measured observer effect predicts."""
    r = linux_calibrate_apic(frame, HZ)
    side = r.compare(record)
    expected = side.attrs["expected"]
    diff = side.loc["calibration result", "diff"]
    assert abs(diff) <= expected["calibration result"], (side, expected, dict(
        linux_calibrate_apic(frame, HZ, kernel_values=frame.attrs["after"]).gaps))
    note = next(n for n in r.notes if n.startswith("Observer effect"))
    assert f"±{expected['calibration result']:,} in the calibration result" in note
    return r, side


def test_tcg_microvm(guest):
    frame, record = _calibrate(guest)
    observer = frame.attrs["observer"]
    assert all(observer[k] is not None for k in OBSERVER_KEYS), observer
    assert observer["lapic_per_read"] == 0  # QEMU freezes the LAPIC timer during a stop
    assert observer["lapic_per_stop"] > 0 and observer["tsc_per_stop"] > 0  # not for free
    assert observer["at"] == "the end of the run (after= was read)"
    _exact(frame, record)
    r, _ = _within_the_observer_effect(frame, record)
    assert r.pm.outcome == "skipped" and "microvm" in r.pm.explanation
    assert "... PM-Timer delta = 0" in r.messages and record.pm_delta == 0


def test_icount_agrees_to_one_count(guest):
    frame, record = _calibrate(guest, icount=0)
    assert frame.attrs["observer"]["lapic_per_stop"] <= 1  # time follows instructions
    _exact(frame, record)
    _, side = _within_the_observer_effect(frame, record)
    assert abs(side.loc["calibration result", "diff"]) <= 1
    assert abs(side.loc["lapic delta", "diff"]) <= 1


def test_pc_pm_timer(guest):
    frame, record = _calibrate(guest, machine="pc")
    assert record.pm_delta is not None and record.pm_delta != 0  # -M pc has a PM timer
    assert frame["pm"].between(0, 0xFFFFFF).all()
    _exact(frame, record)
    r, side = _within_the_observer_effect(frame, record)
    assert r.sources["pm"] == "sampled" and r.deltapm != 0
    assert r.pm.outcome in ("passed", "failed") and r.pm_referenced
    assert abs(side.loc["PM-Timer delta", "diff"]) <= side.attrs["expected"]["PM-Timer delta"]
    # Without the PM column the replay says it did not observe the PM timer; never 0.
    blind = linux_calibrate_apic(frame.drop(columns=["pm"]), HZ)
    assert blind.pm.outcome == "not observed"
    assert not any(m.startswith("... PM-Timer delta = 0") for m in blind.messages)
    # From the kernel's own lapic_cal_pm1/pm2 alone, the PM path is replayed exactly.
    pm_only = {k: frame.attrs["after"][k] for k in ("lapic_cal_pm1", "lapic_cal_pm2")}
    assert linux_calibrate_apic(frame.drop(columns=["pm"]), HZ,
                                kernel_values=pm_only).deltapm == record.pm_delta


def test_pm_timer_column_where_there_is_none(boot):
    """microvm has no ACPI PM timer: the column refuses before anything is armed."""
    _vm, s, _ = boot("lapic_cal_handler")
    before = s.console("info breakpoints")
    with pytest.raises(mvnb.Unsupported, match="no ACPI PM timer"):
        s.sample("lapic_cal_handler", {"pm": PM_TIMER}, count=2, progress=False)
    assert s.console("info breakpoints") == before


def test_pm_timer_by_the_kernels_own_in_instruction(guest):
    """For a stub without QEMU's monitor: the kernel's `in` run through the probe engine
    reads the same clock as QEMU's monitor (both frozen at the stop, the probe's step
    moves it a little)."""
    vm, s, _ = mvnb.boot_to(guest, "lapic_cal_handler", machine="pc")
    with vm:
        by_monitor = mvnb.x86.PmTimerColumn(via="monitor")
        by_in = mvnb.x86.PmTimerColumn(via="in")
        for source in (by_monitor, by_in):
            source.prepare(s)
        a = by_monitor.read(s, {})
        b = by_in.read(s, {})
        c = by_monitor.read(s, {})
        assert a <= b <= c and 0 < c - a < 3_579_545 // 100  # well under 10 ms apart
        assert by_in.steps == 1 and by_monitor.steps == 0


def test_probes_record_how_far_they_moved_the_clocks(boot):
    _vm, s, _ = boot("lapic_cal_handler")
    prober = s.x86.prober
    s.x86.cpuid(1)
    s.x86.rdmsr(0x1B)
    s.x86.tsc()
    moved = list(prober.moved)[-3:]
    assert [m["insn"] for m in moved] == ["cpuid", "rdmsr", "rdtsc"]
    assert all(m["lapic"] > 0 for m in moved), moved  # free-running TCG: a step costs counts
    ccr = mvnb.x86.TIMER_CCR
    assert ccr.read(s, {}) == ccr.read(s, {})  # reading through the monitor costs nothing
