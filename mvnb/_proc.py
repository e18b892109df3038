"""Child processes that die with their owner process and ignore the notebook's interrupts.

QEMU and GDB run in their own session (``start_new_session``: a SIGINT sent to the
notebook kernel's process group does not reach them) and get SIGKILL when the Python
process that started them dies, whichever thread started them.

Linux's parent-death signal (``PR_SET_PDEATHSIG``, prctl(2)) fires when the *thread* that
forked the child exits, not the process; and setting it from ``preexec_fn`` runs Python
between fork and exec in a threaded process, which the subprocess documentation calls
unsafe. So every child is forked by one long-lived thread of this process (the spawner,
which lives as long as the process), and the signal is set after the fork by util-linux's
``setpriv --pdeathsig KILL``, a C program, with no Python between fork and exec. A POSIX
shell then checks that its parent is still this process (the owner could have died
between the fork and the prctl) and execs the program: the child keeps its pid, so the
``Popen`` is the program's.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .errors import Error, MissingTool

__all__ = ["require", "spawn", "spawner_thread"]

_SPAWN_TIMEOUT = 30.0
# $0 is the owner's pid; exec the program only while the owner is still our parent.
_GUARD = 'test "$PPID" = "$0" && exec "$@"; exit 125'

_PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "gdb": "gdb",
    "gdbserver": "gdbserver",
    "setpriv": "util-linux",
}


def require(program: str) -> str:
    """The full path of ``program``, or MissingTool naming the package to install."""
    path = shutil.which(program)
    if path is None:
        package = _PACKAGES.get(program, program)
        raise MissingTool(
            f"{program} is not installed; install it with `sudo apt-get install {package}` "
            "(Debian/Ubuntu), or run `./setup.sh` in the mvnb checkout"
        )
    return path


@functools.cache
def _wrapper() -> tuple[str, ...]:
    """The exec wrapper that sets the parent-death signal (empty off Linux)."""
    if not sys.platform.startswith("linux"):
        return ()
    return (require("setpriv"), "--pdeathsig", "KILL", "--", "/bin/sh", "-c", _GUARD)


class _Spawner:
    """One daemon thread that forks every child, so their parent thread never exits
    before the process does."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], list[str],
                                                dict[str, Any]]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="mvnb-spawner", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            future, argv, kwargs = self._requests.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(subprocess.Popen(argv, **kwargs))
            except BaseException as error:  # handed to the caller, never lost
                future.set_exception(error)

    def spawn(self, argv: list[str], kwargs: dict[str, Any],
              name: str) -> subprocess.Popen[bytes]:
        if threading.current_thread() is self.thread:
            return subprocess.Popen(argv, **kwargs)
        future: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        self._requests.put((future, argv, kwargs))
        try:
            return future.result(timeout=_SPAWN_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.add_done_callback(_kill_started)
            raise Error(f"starting {name} took longer than {_SPAWN_TIMEOUT} s; the machine "
                        "may be overloaded") from None
        except BaseException:  # Ctrl-C while waiting: whatever starts is ended at once
            future.add_done_callback(_kill_started)
            raise


def _kill_started(future: concurrent.futures.Future[subprocess.Popen[bytes]]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    process = future.result()
    process.kill()
    process.wait()


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def _reset_after_fork() -> None:  # a forked child has no spawner thread: make a new one
    global _spawner, _spawner_lock
    _spawner = None
    _spawner_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def spawner_thread() -> threading.Thread:
    """The thread that forks every child (started on first use, lives with the process)."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
        return _spawner.thread


def spawn(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, killed (SIGKILL) when this process dies.

    ``argv[0]`` must be a path to an executable (see ``require``). Whichever thread calls
    this, the child is forked by the spawner thread, so it outlives the calling thread.
    """
    argv = [os.fspath(a) for a in argv]
    if not argv or not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
        raise FileNotFoundError(f"{argv[0] if argv else '(empty argv)'} is not an executable "
                                "file; resolve the program with mvnb._proc.require first")
    for key in ("preexec_fn", "start_new_session", "args"):
        if key in kwargs:
            raise TypeError(f"spawn() sets {key} itself")
    wrapper = _wrapper()
    full = [*wrapper, str(os.getpid()), *argv] if wrapper else argv
    options = {"start_new_session": True, "close_fds": True, **kwargs}
    spawner_thread()
    assert _spawner is not None
    return _spawner.spawn(full, options, os.path.basename(argv[0]))
