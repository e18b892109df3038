"""The first steps a new user takes: the plain path into the TSC trap, and boot_to's errors."""

from __future__ import annotations

import time
import warnings

import pytest

import mvnb

pytestmark = pytest.mark.live


def test_the_plain_path_stops_at_once_in_the_tsc_trap(guest):
    with mvnb.Qemu(guest) as vm:  # Debian's 6.1 on microvm: the VM arms the TSC guard
        s = vm.session()
        assert [bp.location for bp in s.breakpoints() if bp.guard] == ["calibrate_delay_converge"]
        s.hbreak("start_kernel")
        s.cont(timeout=60)
        # Fail the TSC measurement as a busy host does, every time: the CPU frequency
        # calibration answers 0 (native_calibrate_tsc does under TCG: no CPUID leaf 0x15),
        # so tsc_init() marks the TSC unstable and calibrate_delay() converges on jiffies.
        s.set("x86_platform.calibrate_cpu", "native_calibrate_tsc")
        s.hbreak("lapic_cal_handler")  # the README's first breakpoint
        started = time.monotonic()
        with pytest.raises(mvnb.TargetStuck) as info:
            s.cont(timeout=30)
        assert time.monotonic() - started < 15  # at once, not at the 30 s timeout
        text = str(info.value)
        assert "calibrate_delay_converge" in text and "tsc_early_khz=" in text
        assert "mvnb.boot_to" in text
        assert "Unable to calibrate against PIT" in vm.serial()
        assert info.value.stop.frame.function == "calibrate_delay_converge"
        assert not s.running and isinstance(int(s.eval("jiffies")), int)  # still usable


def test_a_timeout_inside_boot_to_does_not_call_the_closed_session_usable(guest):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a retry past the TSC trap
        with pytest.raises(mvnb.TargetTimeout) as info:
            # a breakpoint the booting guest never reaches
            mvnb.boot_to(guest, "__x64_sys_reboot", timeout=3, attempts=2)
    text = str(info.value)
    assert "usable" not in text and "closed the VM" in text
    assert info.value.__cause__ is None and info.value.__suppress_context__
