"""Reads of ``jiffies`` per second through mvnb and its peers, on one stopped guest.

(a) ``Session.eval``; (b) pygdbmi's ``GdbController.write()`` with its defaults; (c) GDB's
own Python in ``gdb -batch -x`` (``int(gdb.parse_and_eval("jiffies"))``); (d) a bare MI
loop (token, read lines until the result, parse with pygdbmi, nothing else); (e)
``Session.eval_many`` with the expression 1,000 times in one call; (f) mvnb's transport alone
sending (d)'s command (``-data-evaluate-expression``), which separates the transport's cost
from that of building a ``Value`` in GDB's Python. Also reset to the first
``lapic_cal_handler`` hit: mvnb against a plain ``qemu`` + ``gdb -batch`` run.

All in one run, in interleaved rounds, each peer on a guest of its own stopped at the same
``lapic_cal_handler`` hit (QEMU's stub takes one client at a time). Writes
bench/results/mi_latency.json. Not a test: figures.

    python bench/mi_latency.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from _peers import BareMI, gdb_argv, write_results

import mvnb

warnings.simplefilter("ignore", RuntimeWarning)  # boot_to's 'booting again' notes

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


def reset_to_first_hit_plain(guest: mvnb.Guest) -> float | None:
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
            out = subprocess.run(
                [*gdb_argv(guest.symbols), "-batch", "-ex", f"target remote {sock}",
                 "-ex", "hbreak lapic_cal_handler", "-ex", "hbreak calibrate_delay_converge",
                 "-ex", "continue"], capture_output=True, text=True, timeout=120, check=True)
            elapsed = time.perf_counter() - start
            return elapsed if "Breakpoint 1," in out.stdout else None
        finally:
            qemu.kill()
            qemu.wait()


def reset_to_first_hit_mvnb(guest: mvnb.Guest) -> float | None:
    start = time.perf_counter()
    with mvnb.Qemu(guest) as vm:
        s = vm.session()
        target = s.hbreak("lapic_cal_handler")
        s.hbreak("calibrate_delay_converge")
        stop = s.cont(timeout=60)
        elapsed = time.perf_counter() - start
        return elapsed if stop.breakpoint is target else None


def best_of(fn, guest: mvnb.Guest, wanted: int = 2, tries: int = 10) -> float:
    """The fastest of ``wanted`` boots that reached the LAPIC calibration.

    Boots whose TSC calibration failed (see mvnb/vm/boot.py) stop in calibrate_delay_converge
    and are not counted, for mvnb and for the plain run alike.
    """
    times = []
    for _ in range(tries):
        elapsed = fn(guest)
        if elapsed is not None:
            times.append(elapsed)
        if len(times) >= wanted:
            break
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of (a), (d), (e)")
    args = parser.parse_args()
    guest = mvnb.guests.debian_cloud()
    samples: dict[str, list[float]] = {k: [] for k in ("a", "b", "c", "d", "e", "f")}
    # Two guests stopped at the same place: one for mvnb, one for the peers, so (a), (d) and
    # (e) can be measured in interleaved rounds and share the machine's noise.
    vm1, s, _ = mvnb.boot_to(guest, "lapic_cal_handler")
    vm2, peer, _ = mvnb.boot_to(guest, "lapic_cal_handler")
    with vm1, vm2:
        peer.close()  # frees vm2's stub (QEMU's stub takes one client); the guest stays stopped
        bare = BareMI(vm2.gdb_address, guest.symbols)
        exprs = [EXPR] * 1000
        for _ in range(args.rounds):
            samples["a"].append(rate(lambda: s.eval(EXPR), args.seconds))
            samples["d"].append(rate(
                lambda: bare.command(f"-data-evaluate-expression {EXPR}", parse=True),
                args.seconds))
            samples["e"].append(1000 * rate(lambda: s.eval_many(exprs), args.seconds))
            samples["f"].append(rate(lambda: s._transport.command(
                f"-data-evaluate-expression {EXPR}"), args.seconds))
            # (c) in the same round, on a guest of its own: after a gdb -batch run detaches,
            # its guest runs on (and would burn a core in the next round), so it is closed.
            vm3, third, _ = mvnb.boot_to(guest, "lapic_cal_handler")
            with vm3:
                third.close()
                samples["c"].append(peer_gdb_python(vm3.gdb_address, guest.symbols,
                                                    args.seconds))
        bare.close()
        samples["b"].append(peer_pygdbmi(vm2.gdb_address, guest.symbols, args.seconds))
    figures = {name: statistics.median(values) for name, values in samples.items()}
    boot_mvnb = best_of(reset_to_first_hit_mvnb, guest)
    boot_plain = best_of(reset_to_first_hit_plain, guest)
    ratios = {
        "a_over_d": figures["a"] / figures["d"],
        "e_over_c": figures["e"] / figures["c"],
        "a_over_b": figures["a"] / figures["b"],
        "f_over_d": figures["f"] / figures["d"],
        "boot_mvnb_over_plain": boot_mvnb / boot_plain,
    }
    paired = {  # the median of each round's own ratio: a round's peers share its noise
        "a_over_d": statistics.median(x / y for x, y in zip(samples["a"], samples["d"],
                                                             strict=True)),
        "e_over_c": statistics.median(x / y for x, y in zip(samples["e"], samples["c"],
                                                             strict=True)),
    }
    names = {"a": "a_session_eval", "b": "b_pygdbmi_write", "c": "c_gdb_python_batch",
             "d": "d_bare_mi_loop", "e": "e_session_eval_many",
             "f": "f_mvnb_transport_same_command_as_d"}
    result = {
        "what": f"reads of {EXPR} per second on a stopped guest (stub on a unix socket); "
                "medians of interleaved rounds",
        "reads_per_second": {names[k]: round(v, 1) for k, v in sorted(figures.items())},
        "rounds": {names[k]: [round(x, 1) for x in v] for k, v in sorted(samples.items())},
        "reset_to_first_lapic_cal_handler_s": {"mvnb": round(boot_mvnb, 3),
                                               "qemu_plus_gdb_batch": round(boot_plain, 3)},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "ratios_paired": {k: round(v, 3) for k, v in paired.items()},
        "targets": {"a_over_d": ">= 0.85", "e_over_c": ">= 0.5"},
    }
    write_results(RESULTS, result, guest.name)


if __name__ == "__main__":
    main()
