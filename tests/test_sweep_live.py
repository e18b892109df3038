"""mvnb.sweep on the real guest: boots on a LocalCluster and on a `dask scheduler` /
`dask worker` deployment, a run that hangs, a worker that dies, Ctrl-C; and afterwards no
process of the sweep (QEMU, GDB, the runs' own processes, the workers' children) is left.

Every process a run starts carries ``MVNB_SWEEP_RUN=<sweep>-<run>`` in its environment
(:mod:`mvnb.sweep._procs`), which still finds it after its parent died; processes the
tests start themselves carry a mark of their own.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import mvnb
import mvnb.sweep
from mvnb.sweep import _procs

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[1]
NEVER = "__do_sys_reboot"  # nothing reboots during a boot without user space
#: With no disk the kernel waits for its root device for ever (init/do_mounts.c), instead
#: of panicking: a boot that never reaches NEVER and never ends.
ROOTWAIT = "root=/dev/vda rootwait"
GUEST_SIDE = ["loops", "ccr", "tsc", "jiffies"]


def _gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    """Wait for ``pids`` to exit (pidfd); those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                alive.append(pid)
        finally:
            os.close(fd)
    return alive


def _with_env(name: str, value: str) -> list[int]:
    """Live processes whose environment has ``name=value``."""
    want = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if want in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def assert_no_leftovers(frame) -> None:
    """No process of this sweep is alive (QEMU, GDB, runs, load generators)."""
    left = _procs.marked(frame.attrs["sweep"], prefix=True)
    assert _gone(left) == [], [_cmdline(p) for p in left]


def assert_guest_side_repeats(frame) -> None:
    """Under icount the guest's columns are the same in every repeat of a parameter set."""
    assert frame["reproducible"].all()
    for _, group in frame.groupby("icount"):
        assert len(group) == 3, group
        assert (group[GUEST_SIDE].nunique() == 1).all(), group[GUEST_SIDE]
    per_shift = frame.groupby("icount")["tsc"].first()
    assert per_shift.nunique() == 2  # and the shift does change the guest's time


SAMPLE = mvnb.sweep.Sample(location="lapic_cal_handler", count=1, timeout=120)


def test_icount_sweep_on_a_local_cluster(guest):
    frame = mvnb.sweep.run(SAMPLE, {"icount": [0, 1]}, repeat=3, workers=2, timeout=300,
                           seed=13, progress=False)
    assert len(frame) == 6, frame
    assert (frame["outcome"] == "ok").all(), frame["error"].tolist()
    assert sorted(frame["run"]) == list(range(6))
    assert_guest_side_repeats(frame)
    assert frame["worker"].nunique() == 2  # both workers took runs
    workers = frame.attrs["provenance"]["workers"]
    assert len(workers) == 2
    for found in workers.values():
        assert found["guests"][guest.name].startswith(guest.version)
        assert found["qemu"]["None"]["version"]
        assert "GNU gdb" in found["gdb"]
    assert frame.attrs["seed"] == 13 and frame.attrs["counts"]["ok"] == 6
    assert frame.attrs["experiment_attrs"]["0"]["provenance"]["icount"] == 0
    assert_no_leftovers(frame)


def _read_address(process: subprocess.Popen[str], timeout: float) -> str:
    """The scheduler's address from its log (it says "Scheduler at: tcp://...")."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready = select.select([process.stderr], [], [], deadline - time.monotonic())[0]
        if not ready:
            break
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if "Scheduler at:" in line:
            return line.split("Scheduler at:")[1].strip()
    raise AssertionError(f"dask scheduler gave no address: {''.join(seen)}")


def test_the_same_sweep_on_a_dask_scheduler_and_two_workers(guest, tmp_path):
    from distributed import Client

    mark = uuid.uuid4().hex
    env = {**os.environ, "MVNB_TEST_DEPLOYMENT": mark,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    dask = str(Path(sys.executable).with_name("dask"))
    started: list[subprocess.Popen[str]] = []
    try:
        scheduler = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        started.append(scheduler)
        address = _read_address(scheduler, 60)
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            started.append(subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--resources", "vm=1",
                 "--host", "127.0.0.1", "--no-dashboard"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path))
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            frame = mvnb.sweep.run(SAMPLE, {"icount": [0, 1]}, repeat=3, client=client,
                                   timeout=300, progress=False)
            assert len(client.scheduler_info()["workers"]) == 2  # the cluster is as it was
        assert len(frame) == 6 and (frame["outcome"] == "ok").all(), frame["error"].tolist()
        assert_guest_side_repeats(frame)
        assert frame.attrs["provenance"]["cluster"] == f"scheduler {address}"
        assert_no_leftovers(frame)
    finally:
        for process in reversed(started):
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    left = _with_env("MVNB_TEST_DEPLOYMENT", mark)  # the workers' own children too
    assert _gone(left) == [], [_cmdline(p) for p in left]


def reach(params):
    """Boot to ``params["location"]`` (icount: no TSC trap, the same boot every time)."""
    return mvnb.sweep.Reach(location=params["location"], timeout=600)(params)


def test_a_run_that_hangs_is_a_timeout_and_holds_up_nothing(guest):
    import pandas as pd

    grid = pd.DataFrame({"location": [NEVER, "lapic_cal_handler", NEVER],
                         "cmdline": [ROOTWAIT, ROOTWAIT, None], "icount": [0, 0, 0]})
    frame = mvnb.sweep.run(reach, grid, workers=2, timeout=60, progress=False)
    by = frame.set_index("run")
    hung, fine, panicked = by.loc[0], by.loc[1], by.loc[2]
    assert hung["outcome"] == "timeout"
    assert 60 <= hung["duration_s"] < 80
    assert "did not finish within 60" in hung["error"]
    assert re.search(r"console ended with:\n\[\s*\d+\.\d+\]", hung["error"])  # its tail
    assert fine["outcome"] == "ok" and fine["status"] == "reached", fine["error"]
    assert fine["stopped_in"] == "lapic_cal_handler" and fine["duration_s"] < 60
    assert "tsc: Detected" in fine["tsc"]
    # no root device, no rootwait: the kernel panics ("VFS: Unable to mount root fs")
    assert panicked["outcome"] == "ok" and panicked["status"] == "panic", panicked["error"]
    assert panicked["stopped_in"] == "panic"
    assert fine["duration_s"] + panicked["duration_s"] < 60  # both ran beside the hang
    assert_no_leftovers(frame)


def _worker_pid() -> int:
    """The Dask worker this run's process belongs to: its parent, or its parent's parent
    when a zygote (mvnb.sweep._zygote) forked it."""
    parent = os.getppid()
    if "mvnb.sweep._zygote" in _cmdline(parent):
        stat = Path(f"/proc/{parent}/stat").read_text()
        parent = int(stat.rsplit(")", 1)[1].split()[1])
    return parent


def vm_then_die(params):
    """Start a VM and a session, note their pids, then kill this run's worker: every
    attempt for "always", the first for "once"."""
    vm = mvnb.Qemu(params["guest"])
    vm.session()
    mine = _procs.marked(os.environ[_procs.MARK])
    if "mvnb.sweep._zygote" in _cmdline(os.getppid()):
        mine.append(os.getppid())  # the worker's zygote dies with it too
    notes = Path(params["dir"])
    with open(notes / "pids", "a") as f:
        f.write(" ".join(map(str, mine)) + "\n")
    first = notes / f"{params['die']}-started"
    if params["die"] == "always" or not first.exists():
        first.touch()
        os.kill(_worker_pid(), signal.SIGKILL)  # its death signal ends us
        signal.pause()
    vm.close()
    return {"survived": True}


def test_a_killed_worker_is_retried_once_then_recorded(guest, tmp_path):
    frame = mvnb.sweep.run(vm_then_die, {"die": ["once", "always"], "dir": [str(tmp_path)]},
                           workers=2, timeout=180, progress=False)
    by = frame.set_index("die")
    assert by.loc["once", "outcome"] == "ok" and by.loc["once", "attempts"] == 2
    assert by.loc["once", "survived"]
    assert by.loc["always", "outcome"] == "worker-died"
    assert by.loc["always", "attempts"] == 2
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    assert len(pids) >= 6  # QEMU and GDB (and the run's process) of the four attempts
    assert _gone(pids) == [], [_cmdline(p) for p in pids]
    assert_no_leftovers(frame)


CTRL_C_SCRIPT = r"""
import json, sys
import mvnb, mvnb.sweep

def experiment(params):
    vm = mvnb.Qemu(mvnb.sweep.guest_of(params), icount=0)  # icount: no TSC trap
    s = vm.session()
    if params["kind"] == "quick":
        vm.close()
        return {{"qemu": vm.qemu_build.version}}
    s.hbreak("{never}")
    with open(params["notes"], "a") as f:  # the test waits for two of these
        f.write("hanging\n")
    s.cont(timeout=600)

if __name__ == "__main__":
    import time
    from mvnb.sweep import _procs

    grid = {{"kind": ["quick", "quick", "hang", "hang", "hang"], "cmdline": ["{rootwait}"],
             "notes": [sys.argv[1] + ".hanging"]}}
    left = []
    if sys.argv[2] == "own":  # run() starts and ends its LocalCluster
        frame = mvnb.sweep.run(experiment, grid, workers=2, timeout=600, path=sys.argv[1],
                               progress=False)
    else:  # the user's cluster, which lives on: the runners end the cancelled runs
        from distributed import Client

        with mvnb.sweep.local_cluster(2) as cluster, \
                Client(cluster, set_as_default=False) as client:
            frame = mvnb.sweep.run(experiment, grid, client=client, timeout=600,
                                   path=sys.argv[1], progress=False)
            deadline = time.monotonic() + 30
            left = [p for p in _procs.marked(frame.attrs["sweep"], prefix=True)
                    if not _procs._wait_gone(p, max(0.0, deadline - time.monotonic()))]
            assert len(client.scheduler_info()["workers"]) == 2
    print(json.dumps({{"rows": len(frame), "kinds": frame["kind"].tolist(), "left": left,
                      "outcomes": frame["outcome"].tolist(), "attrs": frame.attrs}}))
"""


@pytest.mark.parametrize("cluster", ["own", "client"])
def test_ctrl_c_returns_the_finished_runs_and_ends_every_process(guest, tmp_path, cluster):
    from mvnb.vm.qemu import _FileWatch

    script = tmp_path / "sweep.py"
    script.write_text(CTRL_C_SCRIPT.format(never=NEVER, rootwait=ROOTWAIT))
    csv = tmp_path / "runs.csv"
    mark = uuid.uuid4().hex
    env = {**os.environ, "MVNB_TEST_CTRL_C": mark,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, str(script), str(csv), cluster], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        csv.touch()
        with _FileWatch(csv) as watch:  # the two quick runs finished: their rows are there
            while len(csv.read_text().splitlines()) < 3 and time.monotonic() < deadline:
                assert process.poll() is None, process.communicate()
                watch.wait(1.0)
        assert len(csv.read_text().splitlines()) == 3, csv.read_text()
        hanging = Path(f"{csv}.hanging")
        hanging.touch()
        with _FileWatch(hanging) as watch:  # both workers run a guest that hangs
            while len(hanging.read_text().splitlines()) < 2 and time.monotonic() < deadline:
                watch.wait(1.0)
        qemus = [p for p in _with_env("MVNB_TEST_CTRL_C", mark) if "qemu-system" in _cmdline(p)]
        assert len(qemus) == 2
        ours = _with_env("MVNB_TEST_CTRL_C", mark)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["rows"] == 2 and result["kinds"] == ["quick", "quick"]
    assert result["outcomes"] == ["ok", "ok"]
    assert result["attrs"]["interrupted"] is True and "interrupted" in err
    assert result["left"] == []  # on the user's cluster, while it still ran
    assert _gone(ours) == [], [_cmdline(p) for p in ours]
    assert _with_env("MVNB_TEST_CTRL_C", mark) == []
    assert len(csv.read_text().splitlines()) == 3  # the file has what the frame has
