"""One run on a worker: the experiment in a child process, its timeout, its host load.

Dask has no task timeout, and a thread cannot be stopped from outside: so the runner runs
the experiment in a process of its own (:mod:`mvnb.sweep._child`), forked by the worker's
warm zygote (:mod:`mvnb.sweep._forks`); the zygote dies with the worker and the run's
process with the zygote. At the run's timeout, or when the task is cancelled (Ctrl-C in
the sweep, the client gone), the runner kills that process and
every process marked as the run's (:mod:`mvnb.sweep._procs`: the experiment's QEMU and
GDB, the load generators) and waits until they are gone. Each run gets a private
``TMPDIR``, removed afterwards, so a killed QEMU leaves no files behind.

``host_load=N`` in a parameter set runs N busy loops (``yes > /dev/null``) for the run's
whole duration, started before the experiment's process and ended after it.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _proc
from . import _forks, _procs

__all__ = ["execute"]

_SLICE = 0.5  # seconds between looks at the task's cancellation while the run goes on
_LOAD_PROGRAM = "yes"


def _cancel_check() -> Callable[[], bool]:
    """True once Dask cancelled this task (Ctrl-C in the sweep, its client gone)."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        worker, key = get_worker(), thread_state.key
    except (ImportError, ValueError, AttributeError):
        return lambda: False

    def cancelled() -> bool:
        state = worker.state.tasks.get(key)
        return state is None or state.state in ("cancelled", "released", "forgotten")

    return cancelled


def _announce(topic: str, run: int, attempt: int) -> None:
    """Tell the sweep that this run started (Dask's event log; the running count)."""
    try:
        from distributed import get_worker

        get_worker().log_event(topic, {"run": run, "attempt": attempt})
    except (ImportError, ValueError):
        pass


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _start_load(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    program = _proc.require(_LOAD_PROGRAM)
    return [_proc.spawn([program], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, env=env) for _ in range(count)]


def _console_tail(rundir: Path, lines: int = 8) -> str:
    logs = sorted(rundir.glob("**/serial.log"))
    if not logs:
        return ""
    text = logs[-1].read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(text)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def execute(task: dict[str, Any]) -> dict[str, Any]:
    """Run one experiment (``task`` from :func:`mvnb.sweep.run.run`) and return its record:
    ``outcome`` (ok, timeout, error, cancelled), ``duration_s``, ``error``, ``frame``,
    ``attrs``, ``warnings``, ``worker``, ``load_before``."""
    tag = f"{task['sweep']}-{task['run']}"
    timeout = task.get("timeout")
    load = int(task["params"].get("host_load") or 0)
    record: dict[str, Any] = {"run": task["run"], "worker": _worker_name(),
                              "load_before": round(os.getloadavg()[0], 2), "error": "",
                              "warnings": [], "frame": None, "attrs": {}}
    cancelled = _cancel_check()
    _announce(f"mvnb-sweep-{task['sweep']}", task["run"], task.get("attempt", 1))
    rundir = Path(tempfile.mkdtemp(prefix=f"mvnb-run-{tag}-"))
    env = {**os.environ, _procs.MARK: tag, "TMPDIR": str(rundir),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    payload, result = rundir / "payload.pickle", rundir / "result.pickle"
    payload.write_bytes(pickle.dumps({k: task[k] for k in ("experiment", "params", "seed")}))
    started = time.monotonic()
    loaders: list[subprocess.Popen[bytes]] = []
    child: _forks.RunProcess | None = None
    try:
        loaders = _start_load(load, env)
        child = _forks.start([str(payload), str(result)], env, rundir, rundir / "child.log")
        deadline = None if timeout is None else started + float(timeout)
        outcome = None
        while outcome is None:
            left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            if child.wait(left):
                outcome = "done"
            elif deadline is not None and time.monotonic() >= deadline:
                outcome = "timeout"
            elif cancelled():
                outcome = "cancelled"
        record["duration_s"] = round(time.monotonic() - started, 3)
        if outcome == "timeout":
            console = _console_tail(rundir)
            record["error"] = (f"the run did not finish within {timeout} s; the runner ended "
                               "its process, QEMU and GDB"
                               + (f"; the guest's console ended with:\n{console}"
                                  if console else ""))
        record["outcome"] = outcome
    finally:
        if child is not None:
            child.kill()
            child.close()
        for process in loaders:
            process.kill()
            process.wait()
        left = _procs.end(_procs.marked(tag))
        if left:
            record["error"] += f"\nprocesses {left} of this run did not end within 10 s"
        _read_result(record, result, rundir)
        shutil.rmtree(rundir, ignore_errors=True)
    return record


def _read_result(record: dict[str, Any], result: Path, rundir: Path) -> None:
    """Fill ``record`` from what the experiment's process wrote (or did not)."""
    if record.get("outcome") != "done":
        return
    try:
        with open(result, "rb") as f:
            got = pickle.load(f)
    except FileNotFoundError:
        record["outcome"] = "error"
        record["error"] = ("the experiment's process ended without a result (killed, or "
                           f"crashed); its output ended with:\n{_tail(rundir / 'child.log')}")
        return
    record["warnings"] = got.get("warnings", [])
    record["experiment_s"] = round(got.get("seconds", 0.0), 3)
    if "error" in got:
        record["outcome"] = "error"
        record["error"] = got["error"]
    else:
        record["outcome"] = "ok"
        record["frame"] = got["frame"]
        record["attrs"] = got["attrs"]
