"""Session.sample and sample_periodic on the real Debian guest under QEMU (TCG, icount).

Linux 6.1's calibrate_APIC_clock (arch/x86/kernel/apic/apic.c) calls lapic_cal_handler
HZ/10 + 2 = 27 times with lapic_cal_loops -1 … 25 at entry (HZ=250); QEMU's LAPIC timer
counts 1 GHz bus ticks before the divide-by-16 (shared/facts/x86-apic.md).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import numpy as np
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
    # The LAPIC timer against the TSC, row to row: under TCG both follow host time while
    # the guest runs, so counts per TSC tick × the host's TSC rate × 16 is QEMU's 1 GHz
    # bus, whatever TSC rate the guest itself measured (a loaded host upsets that, and
    # with it the length of the kernel's own ticks).
    khz = mvnb.vm.boot.host_tsc_khz()
    if khz is not None:
        per_tsc = -np.diff(frame["ccr"].to_numpy(dtype=float)) / np.diff(
            frame["tsc"].to_numpy(dtype=float))
        bus_hz = float(np.median(per_tsc)) * khz * 1000 * 16
        assert abs(bus_hz - 1e9) < 0.01e9, (bus_hz, frame.to_string())
    # What a stop costs was measured at the end, at the last hit, moving nothing but time.
    observer = frame.attrs["observer"]
    assert observer["at"] == "the end of the run, at hit 26", observer
    assert observer["lapic_per_read"] == 0 and observer["moved_lapic"] > 0
    r = linux_calibrate_apic(frame, HZ)
    t1, t2 = (int(frame.loc[frame["loops"] == n, "ccr"].iloc[0]) for n in (0, 25))
    assert r.delta == t1 - t2 and r.sources["t"] == "sampled"
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
    before = time.monotonic_ns()
    frame = s.sample_periodic({"jiffies": "jiffies", "ccr": mvnb.x86.TIMER_CCR},
                              interval=0.05, count=10, progress=False)
    assert len(frame) == 10 and frame.attrs["method"] == "periodic"
    # The schedule is absolute: row k (from 1) is not taken before start + k × interval;
    # a busy host makes rows late, never early.
    since_start = (frame["host_ns"] - before) / 1e9
    assert (since_start >= (np.arange(10) + 1) * 0.05).all(), since_start.tolist()
    assert frame["jiffies"].is_monotonic_increasing and not s.running


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


# -- issue 8: checked before arming, removed on every way out, Ctrl-C always ends a run ---


def test_bad_arguments_leave_nothing_armed(boot, tmp_path):
    _vm, s, _ = boot("lapic_cal_handler")
    before = s.console("info breakpoints")
    full = tmp_path / "full.csv"
    full.write_text("hit,host_ns,loops\n0,1,-1\n")
    missing = tmp_path / "no" / "rows.csv"
    cases = [
        ({"location": "no_such_function_mvnb"}, mvnb.GdbError),
        ({"columns": {"x": "no_such_variable_mvnb"}}, mvnb.GdbError),
        ({"columns": {"x": "jiffies +"}}, mvnb.GdbError),
        ({"path": full}, mvnb.Error),
        ({"path": missing}, ValueError),
        ({"count": 0}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"after": "lapic_cal_t1"}, TypeError),
        ({"columns": {"hit": "jiffies"}}, ValueError),
    ]
    for change, error in cases:
        kwargs = {"location": "lapic_cal_handler", "columns": {"loops": "lapic_cal_loops"},
                  "count": 3, "progress": False, **change}
        with pytest.raises(error):
            s.sample(**kwargs)
        assert s.console("info breakpoints") == before, change
    assert full.read_text() == "hit,host_ns,loops\n0,1,-1\n" and not missing.parent.exists()
    # A parameter of the function at the location is in scope there, though not here.
    s.finish(timeout=30)
    frame = s.sample("lapic_cal_handler", {"dev": "(long)dev", "loops": "lapic_cal_loops"},
                     count=2, progress=False)
    assert frame["dev"].tolist() == [0, 0] and frame["loops"].tolist() == [0, 1]
    assert frame.attrs["errors"] == []


class _FailsOnThirdRead:
    """A stop-time column source whose third read fails, as a probe or a monitor can."""

    name = "fails"
    expression = None
    cost = "test source"

    def __init__(self) -> None:
        self.reads = 0

    def prepare(self, session: mvnb.Session) -> None:
        pass

    def read(self, session: mvnb.Session, cache: dict) -> int:
        self.reads += 1
        if self.reads == 3:
            raise mvnb.Error("the source failed on its third read")
        return self.reads


def test_an_error_mid_run_removes_the_collector_and_keeps_the_rows(boot, tmp_path):
    _vm, s, _ = boot("lapic_cal_handler")
    (user,) = [bp for bp in s.breakpoints() if not bp.guard]  # boot_to's hbreak there
    path = tmp_path / "failing.csv"
    with pytest.raises(mvnb.Error, match="third read") as info:
        s.sample("lapic_cal_handler", {"loops": "lapic_cal_loops", "n": _FailsOnThirdRead()},
                 count=10, timeout=60, path=path, progress=False)
    assert any("after 2 rows" in note and str(path) in note for note in info.value.__notes__)
    assert pd.read_csv(path)["n"].tolist() == [1, 2]
    assert info.value.partial_frame["n"].tolist() == [1, 2]
    assert len(_collectors(s, "lapic_cal_handler")) == 1 and user.enabled
    stop = s.cont(timeout=30)  # stops where the user asked, and only there
    assert stop.breakpoint is user


def test_gdb_dying_mid_run_leaves_the_rows_in_path(boot, tmp_path):
    vm, s, _ = boot("lapic_cal_handler")
    for bp in s.breakpoints():
        bp.delete()
    path = tmp_path / "dying.csv"
    gdb_pid = s._transport.process.pid

    def kill_gdb(n: int) -> None:
        if n >= 20:
            os.kill(gdb_pid, signal.SIGKILL)

    with pytest.raises((mvnb.SessionClosed, mvnb.TargetExited)) as info:
        s.sample("_raw_spin_lock", {"jiffies": "jiffies"}, count=10**9, timeout=60,
                 path=path, progress=False, on_rows=kill_gdb)
    kept = pd.read_csv(path)
    assert len(kept) >= 20 and kept["hit"].tolist() == list(range(len(kept)))
    assert len(info.value.partial_frame) == len(kept)
    assert any(f"after {len(kept)} rows; they are in {path}" in note
               for note in info.value.__notes__)
    assert vm.poll() is None  # QEMU lives on; the fixture closes it


def test_a_second_ctrl_c_during_the_final_fetch_returns_the_rows(boot):
    _vm, s, _ = boot("lapic_cal_handler")
    for bp in s.breakpoints():
        bp.delete()
    first = threading.Event()
    seconds: list[int] = []

    def ctrl_c() -> None:
        first.set()
        os.kill(os.getpid(), signal.SIGINT)

    def on_rows(n: int) -> None:
        if first.is_set() and not s.running and not seconds:  # the final fetch: halted
            seconds.append(n)
            os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(1.0, ctrl_c)
    timer.start()
    try:
        frame = s.sample("_raw_spin_lock", {"jiffies": "jiffies"}, count=10**9, timeout=60,
                         progress=False, on_rows=on_rows)
    finally:
        timer.cancel()
    assert seconds, "the final fetch passed no rows to on_rows"
    assert frame.attrs["interrupted"] and len(frame) >= seconds[0]
    assert _collectors(s, "_raw_spin_lock") == [] and not s.running


def test_ctrl_c_always_ends_a_run_even_when_it_meets_a_hit(boot):
    """GDB drops an -exec-interrupt that meets a queued stop reply, then resumes past a
    collector hit that does not stop (mvnb/gdb/sample_control.py): seen 17 times in 150.
    Every one of these runs must end at Ctrl-C, and leave no collector behind."""
    _vm, s, _ = boot("lapic_cal_handler")
    for bp in s.breakpoints():
        bp.delete()
    rng = random.Random(8)
    for run in range(15):
        timer = threading.Timer(rng.uniform(0.05, 0.4), os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        started = time.monotonic()
        try:
            frame = s.sample("_raw_spin_lock", {"jiffies": "jiffies"}, count=10**9,
                             timeout=60, progress=False)
        finally:
            timer.cancel()
        assert frame.attrs["ended"] == "interrupt", (run, frame.attrs["ended"])
        assert time.monotonic() - started < 20, run
    user = s.hbreak("_raw_spin_lock")
    stop = s.cont(timeout=30)
    assert stop.breakpoint is user  # no halted collector is left to stop first
    assert _collectors(s, "_raw_spin_lock") == [line for line in _collectors(s, "_raw_spin_lock")
                                                if line.split()[0] == str(user.number)]


def test_append_continues_the_hit_numbers(boot, tmp_path):
    _vm, s, _ = boot("lapic_cal_handler")
    for bp in s.breakpoints():
        bp.delete()
    path = tmp_path / "twice.csv"
    s.sample("_raw_spin_lock", {"lock": "$rdi"}, count=5, path=path, progress=False)
    with pytest.raises(mvnb.Error, match="append=True"):
        s.sample("_raw_spin_lock", {"lock": "$rdi"}, count=5, path=path, progress=False)
    with pytest.raises(mvnb.Error, match="columns"):
        s.sample("_raw_spin_lock", {"rdi": "$rdi"}, count=5, path=path, append=True,
                 progress=False)
    second = s.sample("_raw_spin_lock", {"lock": "$rdi"}, count=5, path=path, append=True,
                      progress=False)
    assert second["hit"].tolist() == [5, 6, 7, 8, 9]
    assert pd.read_csv(path)["hit"].tolist() == list(range(10))
