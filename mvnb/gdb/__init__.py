"""The debugger: a real GDB driven over MI (``Session``), the values, stops and
breakpoints it returns, the sampler, the ``%gdb`` magics, and the helper loaded into GDB.

Knows nothing of QEMU or x86: a ``Qemu`` passes itself as the session's owner, and
``mvnb.x86`` hangs its helpers off the session as the ``x86`` accessor.
"""

from __future__ import annotations

from .breakpoints import Breakpoint
from .columns import ColumnSource, Expression
from .extensions import register_session_accessor
from .session import Capabilities, Owner, Session, current, use
from .stop import Frame, Stop
from .symbols import SymbolCheck
from .value import Value

__all__ = [
    "Breakpoint",
    "Capabilities",
    "ColumnSource",
    "Expression",
    "Frame",
    "Owner",
    "Session",
    "Stop",
    "SymbolCheck",
    "Value",
    "current",
    "register_session_accessor",
    "use",
]
