"""IPython magics: ``%gdb CMD`` and ``%%gdb`` run GDB CLI commands on the current session.

The current session is the one given to ``mvnb.use(session)``, else the most recently
opened one. ``%load_ext mvnb`` registers them.
"""

from __future__ import annotations

from typing import Any

from .session import current

__all__ = ["gdb_cell", "gdb_line", "register"]


def gdb_line(line: str) -> None:
    """``%gdb info registers rip``: one GDB command; prints what GDB printed."""
    if not line.strip():
        print("usage: %gdb COMMAND   (runs a GDB command on the current mvnb session)")
        return
    print(current().console(line), end="")


def gdb_cell(line: str, cell: str) -> None:
    """``%%gdb``: one GDB command per line of the cell, output printed in order."""
    session = current()
    for command in [line, *cell.splitlines()]:
        if command.strip() and not command.lstrip().startswith("#"):
            print(session.console(command.strip()), end="")


def register(ipython: Any) -> None:
    ipython.register_magic_function(gdb_line, magic_kind="line", magic_name="gdb")
    ipython.register_magic_function(gdb_cell, magic_kind="cell", magic_name="gdb")
