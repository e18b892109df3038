"""The processes of one run, found by a mark in their environment, and how they are ended.

Every process a run starts (the experiment's process, its QEMU and GDB, the host load
generators) inherits ``MVNB_SWEEP_RUN=<sweep>-<run>`` in its environment. A process keeps
its environment when its parent dies and it is handed to init, so the mark finds a run's
QEMU even after the worker that started it was killed; the parent-death signal
(:mod:`mvnb._proc`) ends it anyway, and the runner checks that it did.
"""

from __future__ import annotations

import os
import select
import signal
import time
from pathlib import Path

__all__ = ["MARK", "end", "marked"]

#: The environment variable that marks a sweep's processes: ``<sweep id>-<run id>``.
MARK = "MVNB_SWEEP_RUN"


def marked(value: str, *, prefix: bool = False) -> list[int]:
    """Live processes whose ``MVNB_SWEEP_RUN`` is ``value`` (or starts with it)."""
    want = f"{MARK}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        for item in environ.split(b"\0"):
            if item == want or (prefix and item.startswith(want)):
                found.append(int(entry.name))
                break
    return found


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited (pidfd: no polling loop); True if it has."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:  # no pidfd (old kernel): look until the deadline
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}/environ").exists() and time.monotonic() < deadline:
            select.select([], [], [], 0.05)
        return not Path(f"/proc/{pid}/environ").exists()
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def end(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL ``pids`` and wait for them to exit; the pids still alive after ``timeout``."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    return [pid for pid in pids if not _wait_gone(pid, max(0.0, deadline - time.monotonic()))]
