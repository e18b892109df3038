"""Session.sample and sample_periodic on the real Debian guest under QEMU (TCG, icount).

Linux 6.1's calibrate_APIC_clock (arch/x86/kernel/apic/apic.c) calls lapic_cal_handler
HZ/10 + 2 = 27 times with lapic_cal_loops -1 … 25 at entry (HZ=250); QEMU's LAPIC timer
counts 1 GHz bus ticks before the divide-by-16 (shared/facts/x86-apic.md).
"""

from __future__ import annotations

import os
import signal
import threading

import pandas as pd
import pytest

import mvnb
from mvnb.timing import linux_calibrate_apic
from mvnb.x86 import TSC

pytestmark = pytest.mark.live

HZ = 250
COLUMNS = {"loops": "lapic_cal_loops", "ccr": mvnb.x86.TIMER_CCR, "tsc": TSC,
           "jiffies": "jiffies"}


def _collectors(s: mvnb.Session, location: str) -> list[str]:
    return [line for line in s.console("info breakpoints").splitlines()
            if f"in {location} " in line]


def test_lapic_cal_handler_rows_and_bus_frequency(boot, tmp_path, qemu_build):
    _vm, s, _ = boot("lapic_cal_handler")
    path = tmp_path / "lapic.csv"
    frame = s.sample("lapic_cal_handler", COLUMNS, count=27, timeout=120, path=path,
                     progress=False)
    assert len(frame) == 27
    assert frame["loops"].tolist() == list(range(-1, 26))
    assert frame["hit"].tolist() == list(range(27))
    assert frame["ccr"].between(0, 0xFFFFFFFF).all() and frame["ccr"].is_monotonic_decreasing
    assert frame["tsc"].is_monotonic_increasing
    assert frame.attrs["method"] == "mi" and not frame.attrs["interrupted"]
    assert frame.attrs["provenance"]["qemu"] == qemu_build.version
    t1, t2 = (int(frame.loc[frame["loops"] == n, "ccr"].iloc[0]) for n in (0, 25))
    bus_hz = (t1 - t2) / 25 * 16 * HZ
    assert abs(bus_hz - 1e9) < 0.1e9, bus_hz
    assert abs(linux_calibrate_apic(frame, HZ).bus_hz - 1e9) < 0.1e9
    pd.testing.assert_frame_equal(pd.read_csv(path), frame, check_dtype=False)
    # The collector is gone (boot_to's own hbreak stays); the guest sits at the last hit,
    # and GDB knows it: the next continue steps over, no re-report of the same hit.
    assert len(_collectors(s, "lapic_cal_handler")) == 1
    assert s.eval_many(["lapic_cal_loops"]) == [25]
    assert s.frame().function == "lapic_cal_handler"


def test_icount_runs_are_identical(boot):
    frames = []
    for _ in range(2):
        vm, s, _ = boot("lapic_cal_handler", icount=0)
        frames.append(s.sample("lapic_cal_handler", COLUMNS, count=27, timeout=120,
                               progress=False))
        vm.close()
    guest = list(COLUMNS)
    pd.testing.assert_frame_equal(frames[0][guest], frames[1][guest])
    assert frames[0].attrs["provenance"]["icount"] == 0


def test_ctrl_c_returns_partial_rows_fast_path(boot, tmp_path):
    _vm, s, _ = boot("lapic_cal_handler")
    for bp in s.breakpoints():  # boot_to's hbreak would end the run as a stop elsewhere
        bp.delete()
    path = tmp_path / "spin.csv"
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        frame = s.sample("_raw_spin_lock", {"jiffies": "jiffies", "rdi": "$rdi"},
                         count=10**9, timeout=60, path=path, progress=False)
    finally:
        timer.cancel()
    assert frame.attrs["interrupted"] and frame.attrs["ended"] == "interrupt"
    assert frame.attrs["method"] == "gdb-python"
    assert 0 < len(frame) < 10**9
    on_disk = pd.read_csv(path)
    assert len(on_disk) == len(frame)
    assert on_disk["jiffies"].tolist() == frame["jiffies"].tolist()
    assert not s.running and _collectors(s, "_raw_spin_lock") == []


def test_keyboard_interrupt_from_callback_mi_path(boot, tmp_path):
    _vm, s, _ = boot("lapic_cal_handler")
    path = tmp_path / "mi.csv"

    def stop_after_five(n: int) -> None:
        if n >= 5:
            raise KeyboardInterrupt

    frame = s.sample("lapic_cal_handler", COLUMNS, count=27, timeout=60, path=path,
                     progress=False, on_rows=stop_after_five)
    assert frame.attrs["interrupted"] and len(frame) == 5
    assert frame["loops"].tolist() == [-1, 0, 1, 2, 3]
    assert len(pd.read_csv(path)) == 5
    assert len(_collectors(s, "lapic_cal_handler")) == 1  # only boot_to's


def test_sample_periodic(boot):
    _vm, s, _ = boot("lapic_cal_handler")
    for bp in s.breakpoints():
        bp.delete()
    frame = s.sample_periodic({"jiffies": "jiffies", "ccr": mvnb.x86.TIMER_CCR},
                              interval=0.05, count=10, progress=False)
    assert len(frame) == 10 and frame.attrs["method"] == "periodic"
    # The schedule is absolute: row k is due at start + k x interval, never earlier (a
    # loaded machine makes rows late, not early; no upper bound is asserted).
    span = (int(frame["host_ns"].iloc[-1]) - int(frame["host_ns"].iloc[0])) / 1e9
    assert span >= 9 * 0.05 - 0.05
    assert not s.running


def test_back_to_back_mi_runs_and_duration(boot):
    """A run that starts where the last one stopped (its first row is that stop), with an
    rdtsc probe right after a collector was armed there; then a run bounded by duration."""
    _vm, s, _ = boot("lapic_cal_handler")
    for bp in s.breakpoints():
        bp.delete()
    columns = {"lock": "$rdi", "tsc": TSC}
    first = s.sample("_raw_spin_lock", columns, count=20, timeout=60, progress=False)
    second = s.sample("_raw_spin_lock", columns, count=20, timeout=60, progress=False)
    assert len(first) == len(second) == 20
    assert second["tsc"].iloc[0] >= first["tsc"].iloc[-1]
    assert second["lock"].iloc[0] == first["lock"].iloc[-1]  # the same stop, read again
    timed = s.sample("_raw_spin_lock", ["jiffies"], duration=0.5, progress=False)
    assert timed.attrs["ended"] == "duration" and not timed.attrs["interrupted"]
    assert len(timed) > 0 and not s.running
