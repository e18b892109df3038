"""The runner's side of a run's process: forked by the worker's zygote, else spawned fresh.

:mod:`mvnb.sweep._zygote` forks a run's process in a few milliseconds from an interpreter
that has imported everything; one zygote per worker process, started on the first run and
ended with the worker (``mvnb._proc.spawn``). When it cannot start or has died, a run gets
a fresh ``python -m mvnb.sweep._child`` instead (slower, the same result). Either way the
runner holds a :class:`RunProcess`: wait for it (a pidfd), kill it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from .. import _proc

__all__ = ["RunProcess", "start"]

_ZYGOTE_START = 120.0  # seconds the zygote may take to import and answer its first request


class RunProcess:
    """A run's process, by pidfd (the runner need not be its parent)."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.popen = popen
        try:
            self.fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # already gone
            self.fd = None

    def wait(self, timeout: float) -> bool:
        """True once the process has exited; waits up to ``timeout`` seconds."""
        if self.fd is None:
            return True
        if select.select([self.fd], [], [], max(0.0, timeout))[0]:
            if self.popen is not None:
                self.popen.wait()
            return True
        return False

    def kill(self) -> None:
        if self.fd is not None:
            try:
                signal.pidfd_send_signal(self.fd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(30.0)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Zygote:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = _proc.spawn([sys.executable, "-m", "mvnb.sweep._zygote"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, env=env)
        self.answered = False

    def fork(self, request: dict[str, object]) -> int:
        stdin: IO[bytes] | None = self.process.stdin
        stdout: IO[bytes] | None = self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write((json.dumps(request) + "\n").encode())
        stdin.flush()
        wait = _ZYGOTE_START if not self.answered else 30.0
        if not select.select([stdout], [], [], wait)[0]:
            raise OSError(f"the zygote did not answer within {wait} s")
        line = stdout.readline()
        if not line.strip():
            raise OSError("the zygote exited")
        self.answered = True
        return int(line)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


_zygote: _Zygote | None = None
_lock = threading.Lock()


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> RunProcess:
    """The run's process running ``mvnb.sweep._child.main(argv)`` with ``env`` in ``cwd``."""
    global _zygote
    base = {k: v for k, v in env.items() if k not in ("TMPDIR", "MVNB_SWEEP_RUN")}
    request = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}
    with _lock:
        for _ in range(2):  # a zygote that died is replaced once
            try:
                if _zygote is None or _zygote.process.poll() is not None:
                    _zygote = _Zygote(base)
                return RunProcess(_zygote.fork(request))
            except (OSError, ValueError):
                if _zygote is not None:
                    _zygote.close()
                _zygote = None
    with open(log, "ab") as out:  # no zygote: a fresh interpreter
        popen = _proc.spawn([sys.executable, "-m", "mvnb.sweep._child", *argv],
                            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                            cwd=str(cwd))
    return RunProcess(popen.pid, popen)
