"""mvnb: a Jupyter kit for investigating guest kernels on microVMs.

GDB sessions as Python objects (``Session``, ``Qemu``), register bitfields (``regs``,
``widgets``), timer samples as pandas frames and their analysis (``timing``).
``%load_ext mvnb`` adds the ``%gdb`` magics.
"""

from __future__ import annotations

from . import guests, regs, timing, widgets
from .boot import boot_to
from .breakpoints import Breakpoint
from .errors import (
    Error,
    FaultError,
    GdbError,
    GuestError,
    MissingTool,
    ProbeFault,
    SessionClosed,
    TargetExited,
    TargetTimeout,
    Unsupported,
)
from .guests import Guest
from .qemu import Qemu
from .session import Session, current, use
from .stop import Frame, Stop
from .value import Value

__version__ = "0.1.0"

__all__ = [
    "Breakpoint",
    "Error",
    "FaultError",
    "Frame",
    "GdbError",
    "Guest",
    "GuestError",
    "MissingTool",
    "ProbeFault",
    "Qemu",
    "Session",
    "SessionClosed",
    "Stop",
    "TargetExited",
    "TargetTimeout",
    "Unsupported",
    "Value",
    "boot_to",
    "current",
    "guests",
    "load_ipython_extension",
    "regs",
    "timing",
    "use",
    "widgets",
]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext mvnb``: register ``%gdb`` and ``%%gdb``."""
    from .magics import register

    register(ipython)
