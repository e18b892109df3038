"""A warm process on each worker that forks the runs' processes: ``python -m mvnb.sweep._zygote``.

A fresh interpreter per run pays Python's start and the imports of pandas, numpy and mvnb
(1 s on an idle 2-core machine, several on a busy one) on every boot; a serial loop pays
them once. This process imports all that once and forks a child per run. It has one
thread, so forking it is safe (unlike forking a Dask worker). The runner
(:mod:`mvnb.sweep.runner`) starts it with ``mvnb._proc.spawn`` (it dies with the worker)
and sends one request per line on its stdin: ``{"argv": [payload, result], "env": {...},
"cwd": ..., "log": ...}``; it answers with the child's pid on a line of its stdout.

Each child starts a new session, gets SIGKILL when this process dies (``PR_SET_PDEATHSIG``:
this process's only thread is the one that forked it) and exits if this process already
had, takes the run's environment (``TMPDIR``, the run's mark), and runs
:func:`mvnb.sweep._child.main`. Children are reaped by the kernel (SIGCHLD ignored here);
the runner waits for a child's exit on a pidfd.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import tempfile

from . import _child

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1


def _run_child(request: dict, parent: int) -> None:
    """In the forked child: become the run's process, run it, and never return."""
    status = 1
    try:
        os.setsid()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the zygote died before the prctl
            os._exit(1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the run waits for QEMU and GDB
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # TMPDIR changed: tempfile must read it again
        os.chdir(request["cwd"])
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        status = _child.main(request["argv"])
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def main() -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    me = os.getpid()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _run_child(request, me)
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
