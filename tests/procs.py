"""The live child processes of this test process, read from /proc (for leak checks)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def children(match: Callable[[str], bool]) -> list[tuple[int, str]]:
    """``(pid, command line)`` of every live (not zombie) child whose command line
    ``match`` accepts."""
    me, found = str(os.getpid()), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if (fields.get("PPid", "").strip() == me
                and fields.get("State", "").split()[:1] != ["Z"] and match(cmdline)):
            found.append((int(entry.name), cmdline.strip()))
    return found
