"""Child processes that die with their owner and ignore the notebook's interrupts.

QEMU and GDB run in their own session (so a SIGINT sent to the notebook kernel's process
group does not reach them) and get SIGKILL from the kernel when the thread that started
them dies (Linux ``PR_SET_PDEATHSIG``), so a killed or restarted notebook kernel leaves no
orphans. Context managers and finalizers end them in the ordinary case.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from .errors import MissingTool

__all__ = ["require", "spawn"]

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

_PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "gdb": "gdb",
    "gdbserver": "gdbserver",
}


def require(program: str) -> str:
    """The full path of ``program``, or MissingTool naming the package to install."""
    path = shutil.which(program)
    if path is None:
        package = _PACKAGES.get(program, program)
        raise MissingTool(
            f"{program} is not installed; install it with `sudo apt-get install {package}` "
            "(Debian/Ubuntu), or run `make setup` in the mvnb checkout"
        )
    return path


def _child_setup() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, killed when this process dies."""
    return subprocess.Popen(
        list(argv), start_new_session=True, preexec_fn=_child_setup, close_fds=True, **kwargs
    )
