"""Reads of ``jiffies`` per second through mvnb and its peers, on one stopped guest.

(a) ``Session.eval``; (b) pygdbmi's ``GdbController.write()`` with its defaults; (c) GDB's
own Python in ``gdb -batch -x`` (``int(gdb.parse_and_eval("jiffies"))``); (d) a bare MI
loop (token, read lines until the result, parse with pygdbmi, nothing else); (e)
``Session.eval_many`` with the expression 1,000 times in one call. Also reset to the first
``lapic_cal_handler`` hit: mvnb against a plain ``qemu`` + ``gdb -batch`` run.

All in one run on one VM (the stub takes one client at a time: each peer connects after
the previous one detached). Writes bench/results/mi_latency.json. Not a test: figures.

    python bench/mi_latency.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mvnb
from mvnb.guests import cache_dir

EXPR = "jiffies"
RESULTS = Path(__file__).parent / "results" / "mi_latency.json"


def rate(fn, seconds: float) -> float:
    fn()  # warm up
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def gdb_argv(symbols: Path) -> list[str]:
    return ["gdb", "--nx", "-q", "-ex", f"set index-cache directory {cache_dir() / 'gdb-index'}",
            "-ex", "set index-cache enabled on", "-ex", f"file {symbols}"]


def peer_gdb_python(address: str, symbols: Path, seconds: float) -> float:
    script = f"""
import gdb, time
gdb.execute("target remote {address}")
f = gdb.parse_and_eval
int(f("{EXPR}"))
start = time.perf_counter(); n = 0
while time.perf_counter() - start < {seconds}:
    for _ in range(100):
        int(f("{EXPR}"))
    n += 100
print("RATE", n / (time.perf_counter() - start))
gdb.execute("detach")
"""
    with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
        f.write(script)
        f.flush()
        out = subprocess.run([*gdb_argv(symbols), "-batch", "-x", f.name], capture_output=True,
                             text=True, timeout=120).stdout
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("RATE")))


def peer_bare_mi(address: str, symbols: Path, seconds: float) -> float:
    from pygdbmi.gdbmiparser import parse_response

    proc = subprocess.Popen(["gdb", "--interpreter=mi3", "--nx", "-q"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, bufsize=0)
    token = 0

    def command(text: str) -> dict:
        nonlocal token
        token += 1
        proc.stdin.write(f"{token}{text}\n".encode())
        prefix = f"{token}^".encode()
        while True:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return parse_response(line.decode())

    command(f"-interpreter-exec console \"set index-cache directory {cache_dir() / 'gdb-index'}\"")
    command('-interpreter-exec console "set index-cache enabled on"')
    command(f"-file-exec-and-symbols {symbols}")
    command(f"-target-select remote {address}")
    result = rate(lambda: command(f"-data-evaluate-expression {EXPR}"), seconds)
    command("-target-detach")
    command("-gdb-exit")
    proc.wait(10)
    return result


def peer_pygdbmi(address: str, symbols: Path, seconds: float) -> float:
    from pygdbmi.gdbcontroller import GdbController

    gdb = GdbController()
    try:
        gdb.write(f"-file-exec-and-symbols {symbols}", timeout_sec=120)
        gdb.write(f"-target-select remote {address}", timeout_sec=60)
        return rate(lambda: gdb.write(f"-data-evaluate-expression {EXPR}"), seconds)
    finally:
        gdb.write("-target-detach", raise_error_on_timeout=False)
        gdb.exit()


def reset_to_first_hit_plain(guest: mvnb.Guest) -> float:
    """The same boot by hand: qemu -S with a unix-socket stub, gdb -batch, hbreak, continue."""
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "gdb.sock")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(sock)
        listener.listen(1)
        start = time.perf_counter()
        qemu = subprocess.Popen(
            ["qemu-system-x86_64", "-M", "microvm", "-accel", "tcg", "-m", "512M", "-display",
             "none", "-monitor", "none", "-no-reboot", "-S", "-kernel", str(guest.kernel),
             "-append", guest.full_cmdline, "-serial", "null", "-chardev",
             f"socket,id=g,fd={listener.fileno()},server=on,wait=off", "-gdb", "chardev:g"],
            pass_fds=[listener.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        listener.close()
        try:
            subprocess.run([*gdb_argv(guest.symbols), "-batch", "-ex", f"target remote {sock}",
                            "-ex", "hbreak lapic_cal_handler", "-ex", "continue"],
                           capture_output=True, timeout=120, check=True)
            return time.perf_counter() - start
        finally:
            qemu.kill()
            qemu.wait()


def reset_to_first_hit_mvnb(guest: mvnb.Guest) -> float:
    start = time.perf_counter()
    with mvnb.Qemu(guest) as vm:
        s = vm.session()
        s.hbreak("lapic_cal_handler")
        s.cont(timeout=60)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    guest = mvnb.guests.debian_cloud()
    figures: dict[str, float] = {}
    with mvnb.Qemu(guest) as vm:
        s = vm.session()
        s.hbreak("lapic_cal_handler")
        s.cont(timeout=60)
        figures["a_session_eval"] = rate(lambda: s.eval(EXPR), args.seconds)
        exprs = [EXPR] * 1000
        figures["e_session_eval_many"] = 1000 * rate(lambda: s.eval_many(exprs), args.seconds)
        s.detach()
        s.close()
        figures["d_bare_mi_loop"] = peer_bare_mi(vm.gdb_address, guest.symbols, args.seconds)
        figures["c_gdb_python"] = peer_gdb_python(vm.gdb_address, guest.symbols, args.seconds)
        figures["b_pygdbmi_write"] = peer_pygdbmi(vm.gdb_address, guest.symbols, args.seconds)
    boot_mvnb = min(reset_to_first_hit_mvnb(guest) for _ in range(2))
    boot_plain = min(reset_to_first_hit_plain(guest) for _ in range(2))
    ratios = {
        "a_over_d": figures["a_session_eval"] / figures["d_bare_mi_loop"],
        "e_over_c": figures["e_session_eval_many"] / figures["c_gdb_python"],
        "a_over_b": figures["a_session_eval"] / figures["b_pygdbmi_write"],
        "boot_mvnb_over_plain": boot_mvnb / boot_plain,
    }
    result = {
        "what": f"reads of {EXPR} per second on a stopped guest (stub on a unix socket)",
        "reads_per_second": {k: round(v, 1) for k, v in figures.items()},
        "reset_to_first_lapic_cal_handler_s": {"mvnb": round(boot_mvnb, 3),
                                               "qemu_plus_gdb_batch": round(boot_plain, 3)},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": {"a_over_d": ">= 0.85", "e_over_c": ">= 0.5"},
        "machine": {"python": sys.version.split()[0], "host": platform.machine(),
                    "cpus": os.cpu_count(), "guest": guest.name},
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
