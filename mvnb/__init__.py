"""mvnb: a Jupyter kit for investigating guest kernels on microVMs.

GDB sessions as Python objects (``Session``; :mod:`mvnb.gdb`), guests and QEMU
(``Qemu``, ``guests``, ``boot_to``; :mod:`mvnb.vm`), the x86 CPU under the debugger
(``s.x86``; :mod:`mvnb.x86`), register bitfields (:mod:`mvnb.regs`, :mod:`mvnb.widgets`),
timer samples and their analysis (:mod:`mvnb.timing`), firmware tables in guest memory
(:mod:`mvnb.tables`). ``%load_ext mvnb`` adds the ``%gdb``
magics. ``import mvnb`` is cheap: pandas, matplotlib and ipywidgets load on first use.
"""

from __future__ import annotations

from typing import Any

from . import x86  # registers the s.x86 accessor
from .errors import (
    Error,
    FaultError,
    GdbError,
    GuestError,
    MissingTool,
    ProbeFault,
    SessionClosed,
    SymbolMismatch,
    TargetExited,
    TargetStuck,
    TargetTimeout,
    UnknownName,
    Unsupported,
    ValueUnavailable,
)
from .gdb import Breakpoint, Frame, Session, Stop, Value, current, use
from .vm import Guest, Qemu, QemuWarning, boot_to, guests

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
    "QemuWarning",
    "Session",
    "SessionClosed",
    "Stop",
    "SymbolMismatch",
    "TargetExited",
    "TargetStuck",
    "TargetTimeout",
    "UnknownName",
    "Unsupported",
    "Value",
    "ValueUnavailable",
    "boot_to",
    "current",
    "guests",
    "load_ipython_extension",
    "publish",
    "regs",
    "tables",
    "timing",
    "use",
    "widgets",
    "x86",
]

_LAZY = ("publish", "regs", "tables", "timing", "widgets")


def __getattr__(name: str) -> Any:
    """``mvnb.publish``, ``mvnb.regs``, ``mvnb.tables``, ``mvnb.timing`` and ``mvnb.widgets``
    are imported on first use (``mvnb.publish.provenance(vm)`` after a plain ``import mvnb``,
    as the README's notebooks end)."""
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'mvnb' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext mvnb``: register ``%gdb`` and ``%%gdb``."""
    from .gdb.magics import register

    register(ipython)
