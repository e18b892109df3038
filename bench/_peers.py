"""The peers the benchmarks measure mvnb against: plain GDB, driven the plain ways."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mvnb.cache import cache_dir


def gdb_argv(symbols: Path) -> list[str]:
    """``gdb`` with the guest's symbols and the same index cache mvnb uses (fair start-up)."""
    return ["gdb", "--nx", "-q", "-ex", f"set index-cache directory {cache_dir() / 'gdb-index'}",
            "-ex", "set index-cache enabled on", "-ex", f"file {symbols}"]


class BareMI:
    """GDB/MI driven the simplest way: write a token and a command, read lines to its result."""

    def __init__(self, address: str, symbols: Path) -> None:
        self.proc = subprocess.Popen(["gdb", "--interpreter=mi3", "--nx", "-q"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.token = 0
        index = cache_dir() / "gdb-index"
        self.command(f'-interpreter-exec console "set index-cache directory {index}"')
        self.command('-interpreter-exec console "set index-cache enabled on"')
        self.command(f"-file-exec-and-symbols {symbols}")
        self.command(f"-target-select remote {address}")

    def command(self, text: str, until: bytes | None = None, parse: bool = False) -> Any:
        """Send ``text``; return the line starting with ``until`` (default: its result),
        parsed with pygdbmi when ``parse``."""
        from pygdbmi.gdbmiparser import parse_response

        self.token += 1
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{self.token}{text}\n".encode())
        want = until or f"{self.token}^".encode()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"gdb exited during {text}")
            if line.startswith(want):
                return parse_response(line.decode()) if parse else line

    def close(self) -> None:
        self.command("-target-detach")
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"-gdb-exit\n")
        self.proc.wait(10)


def write_results(path: Path, result: dict[str, Any], guest_name: str) -> None:
    """Add where and when the figures were taken, write them as JSON and print them."""
    result["machine"] = {"python": sys.version.split()[0], "host": platform.machine(),
                         "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                         "guest": guest_name}
    result["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
