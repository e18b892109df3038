"""Reads of ``jiffies`` per second through mvnb and its peers, on stopped guests; start-up.

Reads (each peer on a guest of its own, all stopped at the first ``lapic_cal_handler`` hit;
QEMU's stub takes one client at a time):
  a  ``Session.eval``
  b  pygdbmi ``GdbController.write()`` with its defaults
  b2 pygdbmi tuned (bench/_peers.py: TunedPygdbmi)
  c  GDB's own Python, ``int(gdb.parse_and_eval("jiffies"))`` in a loop timed inside GDB
     (a script sourced into a GDB of its own; the loop is started over MI each round)
  d  a bare MI loop reading GDB's output in whole chunks (``-data-evaluate-expression``,
     result parsed with pygdbmi)
  e  ``Session.eval_many`` with the expression 1,000 times in one call
  f  mvnb's transport alone sending (d)'s command
  g  avatar2 ``GDBTarget.read_memory`` of ``jiffies``' 8 bytes
Within a round the fast peers (a, b2, c, d, e, f) take turns in short slices (``--seconds``
each in all, in ``--slices`` turns, the order turning), so a round's peers share the
machine's noise; the slow ones (b, g) get a second each. Each figure is min / median / max
over rounds, each ratio the spread of the same-round ratios; per-call times of a, b2, d, f
are pooled into percentiles too.

Start-up: reset to the first ``lapic_cal_handler`` hit (QEMU started paused, symbols loaded
with GDB's index cache on for every peer, hardware breakpoint, continue): mvnb, ``gdb
-batch``, tuned pygdbmi, avatar2, interleaved; boots that fell into the TSC-calibration
trap (mvnb/vm/boot.py) are not counted, for any peer.

Writes bench/results/mi_latency.json. Not a test: figures.

    python bench/mi_latency.py [--seconds 1] [--rounds 7] [--boots 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from _peers import (
    AvatarPeer,
    BareMI,
    DefaultPygdbmi,
    TunedPygdbmi,
    gdb_argv,
    hand_over,
    paired,
    spread,
    start_qemu,
    write_results,
)

import mvnb
from mvnb.vm.host_clock import host_tsc_khz

warnings.simplefilter("ignore", RuntimeWarning)  # boot_to's 'booting again' notes

EXPR = "jiffies"
RESULTS = Path(__file__).parent / "results" / "mi_latency.json"
NAMES = {
    "a": "a_session_eval",
    "b": "b_pygdbmi_defaults",
    "b2": "b2_pygdbmi_tuned",
    "c": "c_gdb_python",
    "d": "d_bare_mi_loop",
    "e": "e_session_eval_many",
    "f": "f_mvnb_transport_same_command_as_d",
    "g": "g_avatar2_read_memory",
}


def timed(fn: Callable[[], object], seconds: float,
          latencies: list[int] | None = None) -> tuple[int, float]:
    """Call ``fn`` for ``seconds`` (at least once): (calls, seconds taken); each call's time
    (ns) goes to ``latencies``."""
    clock = time.perf_counter_ns
    start = now = clock()
    end = start + int(seconds * 1e9)
    n = 0
    while n == 0 or now < end:
        fn()
        n += 1
        then, now = now, clock()
        if latencies is not None:
            latencies.append(now - then)
    return n, (now - start) / 1e9


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up
    n, elapsed = timed(fn, seconds)
    return n / elapsed


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] / 1000


GDB_PYTHON_LOOP = f"""
import gdb, time
def gdb_python_rate(seconds):
    f = gdb.parse_and_eval
    int(f("{EXPR}"))
    start = time.perf_counter(); n = 0
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            int(f("{EXPR}"))
        n += 100
    return n / (time.perf_counter() - start)
"""


# -- start-up -----------------------------------------------------------------------------

def boot_mvnb(guest: mvnb.Guest) -> float | None:
    start = time.perf_counter()
    with mvnb.Qemu(guest) as vm:
        s = vm.session()
        target = s.hbreak("lapic_cal_handler")
        s.hbreak("calibrate_delay_converge")
        stop = s.cont(timeout=60)
        elapsed = time.perf_counter() - start
        return elapsed if stop.breakpoint is target else None


def boot_gdb_batch(guest: mvnb.Guest) -> float | None:
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "gdb.sock")
        start = time.perf_counter()
        qemu = start_qemu(guest, sock)
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


def boot_pygdbmi_tuned(guest: mvnb.Guest) -> float | None:
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "gdb.sock")
        start = time.perf_counter()
        qemu = start_qemu(guest, sock)
        try:
            gdb = TunedPygdbmi(sock, guest.symbols, mi_async=True)
            try:
                target = gdb.command("-break-insert -h lapic_cal_handler")
                gdb.command("-break-insert -h calibrate_delay_converge")
                gdb.command("-exec-continue")
                stop = gdb.wait_stopped(60)
                elapsed = time.perf_counter() - start
                hit = stop["payload"].get("bkptno") == target["payload"]["bkpt"]["number"]
            finally:
                gdb.gdb.exit()
            return elapsed if hit else None
        finally:
            qemu.kill()
            qemu.wait()


def boot_avatar2(guest: mvnb.Guest) -> float | None:
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "gdb.sock")
        start = time.perf_counter()
        qemu = start_qemu(guest, sock)
        try:
            peer = AvatarPeer(sock, guest.symbols, Path(tmp))
            try:
                target = peer.target.set_breakpoint("lapic_cal_handler", hardware=True)
                peer.target.set_breakpoint("calibrate_delay_converge", hardware=True)
                peer.target.cont()
                peer.target.wait()
                elapsed = time.perf_counter() - start
                pc = peer.target.read_register("pc")
                hit = pc == peer.address_of("lapic_cal_handler")
            finally:
                peer.close()
            return elapsed if hit and target > 0 else None
        finally:
            qemu.kill()
            qemu.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="time per fast peer per round")
    parser.add_argument("--slices", type=int, default=10,
                        help="turns the fast peers take within a round")
    parser.add_argument("--rounds", type=int, default=15, help="rounds")
    parser.add_argument("--boots", type=int, default=5, help="start-up runs per peer")
    args = parser.parse_args()
    guest = mvnb.guests.debian_cloud()
    samples: dict[str, list[float]] = {k: [] for k in NAMES}
    vms = {}
    for name in ("mvnb", "bare", "tuned", "defaults", "avatar", "python"):
        vm, s, _ = mvnb.boot_to(guest, "lapic_cal_handler")
        vms[name] = (vm, s)
    s = vms["mvnb"][1]
    for name in ("bare", "tuned", "defaults", "avatar", "python"):
        hand_over(vms[name][1])  # the stub takes one client; the guest stays stopped
    with tempfile.TemporaryDirectory() as tmp:
        loop = Path(tmp) / "gdb_python_rate.py"
        loop.write_text(GDB_PYTHON_LOOP)
        python = BareMI(vms["python"][0].gdb_address, guest.symbols, mi_async=True)
        python.console(f"source {loop}")
        bare = BareMI(vms["bare"][0].gdb_address, guest.symbols, mi_async=True)
        tuned = TunedPygdbmi(vms["tuned"][0].gdb_address, guest.symbols, mi_async=True)
        defaults = DefaultPygdbmi(vms["defaults"][0].gdb_address, guest.symbols)
        avatar = AvatarPeer(vms["avatar"][0].gdb_address, guest.symbols, Path(tmp))
        jiffies = avatar.address_of(EXPR)
        exprs = [EXPR] * 1000
        command = f"-data-evaluate-expression {EXPR}"
        calls: dict[str, list[int]] = {"a": [], "d": [], "f": [], "b2": []}
        piece = args.seconds / args.slices

        def gdb_python(seconds: float) -> tuple[int, float]:
            reads_per_second = float(python.console(f"python print(gdb_python_rate({seconds}))"))
            return round(reads_per_second * seconds), seconds

        # The fast peers share each round in slices, taking turns; the slow ones (b, g: a
        # few reads a second) get a second each per round.
        fast: dict[str, Callable[[], tuple[int, float]]] = {
            "a": lambda: timed(lambda: s.eval(EXPR), piece, calls["a"]),
            "d": lambda: timed(lambda: bare.command(command, parse=True), piece, calls["d"]),
            "f": lambda: timed(lambda: s._transport.command(command), piece, calls["f"]),
            "b2": lambda: timed(lambda: tuned.command(command), piece, calls["b2"]),
            "e": lambda: (lambda n, t: (1000 * n, t))(*timed(lambda: s.eval_many(exprs), piece)),
            "c": lambda: gdb_python(piece),
        }
        slow: dict[str, Callable[[], float]] = {
            "g": lambda: rate(lambda: avatar.target.read_memory(jiffies, 8), 1.0),
            "b": lambda: rate(lambda: defaults.read(EXPR), 1.0),
        }
        for fn in (s.eval, lambda e: bare.command(command), lambda e: tuned.command(command)):
            fn(EXPR)  # warm up
        order = list(fast)
        try:
            for r in range(args.rounds):
                totals = {name: [0, 0.0] for name in fast}
                for k in range(args.slices):
                    turn = (r + k) % len(order)
                    for name in order[turn:] + order[:turn]:
                        n, elapsed = fast[name]()
                        totals[name][0] += n
                        totals[name][1] += elapsed
                for name, (n, elapsed) in totals.items():
                    samples[name].append(n / elapsed)
                for name, measure in slow.items():
                    samples[name].append(measure())
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}"
                                                   for k, v in samples.items()), flush=True)
        finally:
            python.close(detach=False)
            bare.close(detach=False)
            tuned.close(detach=False)
            defaults.close()
            avatar.close()
            for vm, _ in vms.values():
                vm.close()
    # Every peer boots the same command line; with the host's TSC rate given, the guest does
    # not fall into the TSC-calibration trap (mvnb/vm/boot.py) on a busy machine.
    khz = host_tsc_khz()
    booted = dataclasses.replace(guest, cmdline=f"{guest.cmdline} tsc_early_khz={khz}") \
        if khz else guest
    boots: dict[str, list[float]] = {"mvnb": [], "gdb_batch": [], "pygdbmi_tuned": [],
                                     "avatar2": []}
    starters = {"mvnb": boot_mvnb, "gdb_batch": boot_gdb_batch,
                "pygdbmi_tuned": boot_pygdbmi_tuned, "avatar2": boot_avatar2}
    for _ in range(3 * args.boots):
        for name, fn in starters.items():
            if len(boots[name]) < args.boots:
                elapsed = fn(booted)
                if elapsed is not None:
                    boots[name].append(elapsed)
        if all(len(v) >= args.boots for v in boots.values()):
            break
    med = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        "what": f"reads of {EXPR} per second on a stopped guest (stub on a unix socket); "
                "min/median/max over interleaved rounds; ratios: spread of same-round "
                "ratios, and the ratio of the medians",
        "peers": {
            "b_pygdbmi_defaults": "GdbController() and write(cmd): waits 0.2 s for more output",
            "b2_pygdbmi_tuned": "GdbController(time_to_check_for_additional_output_sec=0), "
                                "write(cmd, read_response=False), then select() on gdb's "
                                "stdout and get_gdb_response(timeout_sec=0) until the "
                                "command's own result",
            "d_bare_mi_loop": "token, os.read of 64 KiB chunks split on newlines, result "
                              "line parsed with pygdbmi",
            "g_avatar2_read_memory": "avatar2 GDBTarget.read_memory(addr, 8); its listener "
                                     "polls pygdbmi every 10 ms",
        },
        "reads_per_second": {NAMES[k]: spread(v) for k, v in samples.items()},
        "ratios_same_round": {
            "a_over_d": paired(samples["a"], samples["d"]),
            "f_over_d": paired(samples["f"], samples["d"]),
            "e_over_c": paired(samples["e"], samples["c"]),
            "a_over_b2": paired(samples["a"], samples["b2"]),
            "a_over_b": paired(samples["a"], samples["b"]),
            "a_over_g": paired(samples["a"], samples["g"]),
        },
        "ratios_of_medians": {
            "a_over_d": round(med["a"] / med["d"], 3),
            "f_over_d": round(med["f"] / med["d"], 3),
            "e_over_c": round(med["e"] / med["c"], 3),
            "a_over_b2": round(med["a"] / med["b2"], 3),
            "a_over_b": round(med["a"] / med["b"], 1),
            "a_over_g": round(med["a"] / med["g"], 1),
        },
        "targets": {"a_over_d": ">= 0.9", "e_over_c": ">= 0.8"},
        "latency_us": {
            "what": "time of one read, every call of every round pooled: p10 (the calls the "
                    "machine's other load left alone) and p50",
            **{NAMES[k]: {"p10": round(percentile(v, 0.1), 1), "p50": round(percentile(v, 0.5), 1),
                          "calls": len(v)} for k, v in calls.items()},
        },
        "latency_ratios": {  # as rates: peer's time over mvnb's
            f"{x}_over_{y}_{q}": round(percentile(calls[y], p) / percentile(calls[x], p), 3)
            for x, y in (("a", "d"), ("f", "d"), ("a", "b2"))
            for q, p in (("p10", 0.1), ("p50", 0.5))
        },
        "reset_to_first_lapic_cal_handler_s": {
            "what": "QEMU start paused to the first lapic_cal_handler hit, GDB's index cache "
                    "on for every peer; boots that hit the TSC-calibration trap not counted",
            "cmdline": booted.full_cmdline,
            **{k: spread(v, 3) for k, v in boots.items() if v},
        },
    }
    write_results(RESULTS, result, guest.name)


if __name__ == "__main__":
    main()
