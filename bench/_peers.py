"""The peers the benchmarks measure mvnb against, each driven the way a competent user would.

- ``BareMI``: GDB/MI with a token per command, GDB's output read in whole chunks.
- ``TunedPygdbmi`` and ``DefaultPygdbmi``: pygdbmi's ``GdbController`` with its defaults,
  and tuned (no quiet period, ``write(read_response=False)``, ``select()`` on GDB's stdout
  and ``get_gdb_response(timeout_sec=0)`` until the command's own result arrives).
- ``AvatarPeer``: avatar2's ``GDBTarget`` (it drives GDB through pygdbmi).

Every peer's GDB uses the index cache mvnb uses, so start-up compares like with like.
"""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pygdbmi.gdbmiparser import parse_response

from mvnb.cache import cache_dir

INDEX_CACHE = cache_dir() / "gdb-index"


def index_cache_commands() -> list[str]:
    """The GDB commands that put the index cache where mvnb keeps it, and turn it on."""
    return [f"set index-cache directory {INDEX_CACHE}", "set index-cache enabled on"]


def gdb_argv(symbols: Path) -> list[str]:
    """``gdb`` with the guest's symbols and the index cache on (``-iex``: before loading)."""
    argv = ["gdb", "--nx", "-q"]
    for command in index_cache_commands():
        argv += ["-iex", command]
    return [*argv, str(symbols)]


class BareMI:
    """GDB/MI driven the way a plain client would: write a token and a command, read GDB's
    output in whole chunks (``os.read`` of up to 64 KiB, split on newlines) until the line
    that answers it. Lines read past that answer are kept for the next call.

    ``mi_async`` sends ``-gdb-set mi-async on`` first, as mvnb does."""

    def __init__(self, address: str | None, symbols: Path, *, mi_async: bool = False) -> None:
        self.proc = subprocess.Popen(["gdb", "--interpreter=mi3", "--nx", "-q"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        self._lines: list[bytes] = []  # complete lines read and not yet looked at
        self._partial = b""
        self.token = 0
        if mi_async:
            self.command("-gdb-set mi-async on")
        for command in index_cache_commands():
            self.command(f'-interpreter-exec console "{command}"')
        self.command(f"-file-exec-and-symbols {symbols}")
        if address is not None:
            self.command(f"-target-select remote {address}")

    def command(self, text: str, until: bytes | None = None, parse: bool = False) -> Any:
        """Send ``text``; return the line starting with ``until`` (default: its result),
        parsed with pygdbmi when ``parse``."""
        self.token += 1
        os.write(self._in, f"{self.token}{text}\n".encode())
        return self.read_until(until or f"{self.token}^".encode(), parse, text)

    def console(self, text: str) -> str:
        """A CLI command through ``-interpreter-exec console``; what it printed."""
        self.token += 1
        os.write(self._in, f'{self.token}-interpreter-exec console "{text}"\n'.encode())
        printed: list[bytes] = []
        self.read_until(f"{self.token}^".encode(), what=text, console=printed)
        return "".join(parse_response(line.decode())["payload"] for line in printed)

    def read_until(self, want: bytes, parse: bool = False, what: str = "",
                   console: list[bytes] | None = None) -> Any:
        """Read to the line starting with ``want``; ``console`` collects the ``~`` lines."""
        while True:
            for i, line in enumerate(self._lines):
                if console is not None and line.startswith(b"~"):
                    console.append(line)
                if line.startswith(want):
                    del self._lines[: i + 1]
                    return parse_response(line.decode()) if parse else line
            self._lines.clear()
            chunk = os.read(self._out, 65536)
            if not chunk:
                raise RuntimeError(f"gdb exited during {what}")
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()
            self._lines = lines

    def close(self, *, detach: bool = True) -> None:
        """End GDB; ``detach`` lets the guest run on, else it stays stopped (``disconnect``)."""
        self.command("-target-detach" if detach else '-interpreter-exec console "disconnect"')
        os.write(self._in, b"-gdb-exit\n")
        self.proc.wait(10)


class TunedPygdbmi:
    """pygdbmi's GdbController, tuned: no quiet period after output, commands written with
    ``read_response=False``, then ``select()`` on GDB's stdout and
    ``get_gdb_response(timeout_sec=0)`` until the command's own (token) result arrives.
    (With the quiet period at 0, ``write(read_response=True)`` waits its whole timeout.)"""

    def __init__(self, address: str | None, symbols: Path, *, mi_async: bool = False) -> None:
        from pygdbmi.gdbcontroller import GdbController

        self.gdb = GdbController(command=["gdb", "--nx", "--quiet", "--interpreter=mi3"],
                                 time_to_check_for_additional_output_sec=0)
        assert self.gdb.gdb_process is not None and self.gdb.gdb_process.stdout is not None
        self._stdout = self.gdb.gdb_process.stdout.fileno()
        self.token = 0
        self.async_records: list[dict[str, Any]] = []
        if mi_async:
            self.command("-gdb-set mi-async on")
        for command in index_cache_commands():
            self.command(f'-interpreter-exec console "{command}"')
        self.command(f"-file-exec-and-symbols {symbols}", timeout=120)
        if address is not None:
            self.command(f"-target-select remote {address}")

    def command(self, text: str, timeout: float = 30.0) -> dict[str, Any]:
        self.token += 1
        token = self.token
        self.gdb.write(f"{token}{text}", read_response=False)
        return self._until(lambda r: r["type"] == "result" and r["token"] == token, timeout)

    def wait_stopped(self, timeout: float = 60.0) -> dict[str, Any]:
        return self._until(lambda r: r["type"] == "notify" and r["message"] == "stopped",
                           timeout)

    def _until(self, wanted: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for response in self.gdb.get_gdb_response(timeout_sec=0,
                                                      raise_error_on_timeout=False):
                if wanted(response):
                    return response
                if response["type"] == "notify":
                    self.async_records.append(response)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("pygdbmi: no answer")
            select.select([self._stdout], [], [], left)

    def close(self, *, detach: bool = True) -> None:
        self.command("-target-detach" if detach else '-interpreter-exec console "disconnect"')
        self.gdb.exit()


class DefaultPygdbmi:
    """pygdbmi's GdbController with its defaults: ``write()`` returns what GDB printed until
    0.2 s passed without output (pygdbmi issues #37, #50, #104)."""

    def __init__(self, address: str, symbols: Path) -> None:
        from pygdbmi.gdbcontroller import GdbController

        self.gdb = GdbController()
        for command in index_cache_commands():
            self.gdb.write(f'-interpreter-exec console "{command}"')
        self.gdb.write(f"-file-exec-and-symbols {symbols}", timeout_sec=120)
        self.gdb.write(f"-target-select remote {address}", timeout_sec=60)

        self.token = 0

    def read(self, expr: str) -> str:
        self.token += 1
        for response in self.gdb.write(f"{self.token}-data-evaluate-expression {expr}"):
            if response["type"] == "result" and response["token"] == self.token:
                return response["payload"]["value"]
        raise RuntimeError(f"pygdbmi: no result for {expr}")

    def close(self) -> None:
        self.gdb.write('-interpreter-exec console "disconnect"', raise_error_on_timeout=False)
        self.gdb.exit()


class AvatarPeer:
    """avatar2's GDBTarget on the stub (x86_64), the index cache on, logging to its file
    only, one memory range over the kernel's half so reads are not reported as unmapped."""

    def __init__(self, address: str, symbols: Path, workdir: Path) -> None:
        from avatar2 import X86_64, Avatar, GDBTarget

        handler = signal.getsignal(signal.SIGINT)
        self.avatar = Avatar(arch=X86_64, output_directory=str(workdir), log_to_stdout=False)
        signal.signal(signal.SIGINT, handler)  # Avatar takes Ctrl-C over
        self.avatar.add_memory_range(0xFFFF_8000_0000_0000, 0x7FFF_FFFF_F000)
        args = [a for c in index_cache_commands() for a in ("-iex", c)] + [str(symbols)]
        self.target = self.avatar.add_target(GDBTarget, gdb_executable="gdb",
                                             gdb_unix_socket_path=address,
                                             gdb_additional_args=args)
        self.avatar.init_targets()

    def address_of(self, symbol: str) -> int:
        ok, address = self.target.protocols.memory.get_symbol(symbol)
        assert ok, symbol
        return int(address)

    def close(self) -> None:
        self.avatar.shutdown()


def hand_over(session: Any) -> None:
    """Free the stub of an mvnb session for a peer, the guest left stopped where it is.

    ``Session.close()`` ends GDB, which detaches, and QEMU's stub resumes the guest on a
    detach; ``disconnect`` first drops the connection without detaching, so the peer finds
    the guest where mvnb left it (checked: same pc and jiffies a second later).
    """
    session.console("disconnect")
    session.close()


def start_qemu(guest: Any, sock: str) -> subprocess.Popen[bytes]:
    """QEMU as mvnb starts it (microvm, TCG, paused at reset), the stub on a unix socket."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(sock)
    listener.listen(1)
    try:
        return subprocess.Popen(
            ["qemu-system-x86_64", "-M", "microvm", "-accel", "tcg", "-m", "512M", "-display",
             "none", "-monitor", "none", "-no-reboot", "-S", "-kernel", str(guest.kernel),
             "-append", guest.full_cmdline, "-serial", "null", "-chardev",
             f"socket,id=g,fd={listener.fileno()},server=on,wait=off", "-gdb", "chardev:g"],
            pass_fds=[listener.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        listener.close()


def spread(values: list[float], digits: int = 1) -> dict[str, Any]:
    """min / median / max of a figure over rounds, and the rounds themselves."""
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return {"min": round(ordered[0], digits), "median": round(median, digits),
            "max": round(ordered[-1], digits), "rounds": [round(v, digits) for v in values]}


def paired(top: list[float], bottom: list[float]) -> dict[str, Any]:
    """Same-round ratios top/bottom (the peers of one round share its noise): their spread."""
    ratios = [t / b for t, b in zip(top, bottom, strict=True)]
    return spread(ratios, 3)


def write_results(path: Path, result: dict[str, Any], guest_name: str) -> None:
    """Add where and when the figures were taken, write them as JSON and print them."""
    result["machine"] = {"python": sys.version.split()[0], "host": platform.machine(),
                         "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                         "guest": guest_name}
    result["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
