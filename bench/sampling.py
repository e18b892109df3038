"""Breakpoint hits sampled per second at a hot kernel function, through mvnb and its peers.

One expression (``jiffies``) at every hit of ``_raw_spin_lock`` (kernel/locking/spinlock.c)
during the Linux guest's boot, 2,000 hits, hardware breakpoint, through:
(a) ``Session.sample`` (the in-GDB collector, method "gdb-python");
(b) a GDB Python ``gdb.Breakpoint`` whose ``stop()`` reads the value, in ``gdb -batch -x``;
(c) an MI loop: ``-exec-continue``, wait for ``*stopped``, ``-data-evaluate-expression``.

Every measurement starts from a fresh guest stopped at the first ``lapic_cal_handler`` hit
(QEMU's stub takes one client at a time: mvnb's session is closed before a peer connects;
the guest stays stopped). Rounds interleave (a), (b), (c) so they share the machine's noise.
Writes bench/results/sampling.json. Not a test: figures.

    python bench/sampling.py [--rounds 5] [--hits 2000]
"""

from __future__ import annotations

import argparse
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
LOCATION = "_raw_spin_lock"
RESULTS = Path(__file__).parent / "results" / "sampling.json"


def fresh(guest: mvnb.Guest) -> tuple[mvnb.Qemu, mvnb.Session]:
    vm, s, _ = mvnb.boot_to(guest, "lapic_cal_handler", attempts=20)
    for bp in s.breakpoints():
        bp.delete()
    return vm, s


def run_mvnb(guest: mvnb.Guest, hits: int) -> dict[str, float]:
    vm, s = fresh(guest)
    with vm:
        start = time.perf_counter()
        frame = s.sample(LOCATION, [EXPR], count=hits, timeout=300, progress=False)
        elapsed = time.perf_counter() - start
        assert len(frame) == hits and frame.attrs["method"] == "gdb-python", frame.attrs
        span = (frame["host_ns"].iloc[-1] - frame["host_ns"].iloc[0]) / 1e9
        return {"call": hits / elapsed, "steady": (hits - 1) / span}


def run_gdb_python(guest: mvnb.Guest, hits: int) -> dict[str, float]:
    vm, s = fresh(guest)
    with vm:
        s.close()  # the stub takes one client; the guest stays stopped
        script = f"""
import gdb, time
gdb.execute("target remote {vm.gdb_address}")
class B(gdb.Breakpoint):
    rows = []
    def stop(self):
        self.rows.append((time.monotonic_ns(), int(gdb.parse_and_eval("{EXPR}"))))
        return len(self.rows) >= {hits}
b = B("{LOCATION}", type=gdb.BP_HARDWARE_BREAKPOINT)
start = time.perf_counter()
gdb.execute("continue")
elapsed = time.perf_counter() - start
span = (b.rows[-1][0] - b.rows[0][0]) / 1e9
print("RATE", len(b.rows) / elapsed, (len(b.rows) - 1) / span, len(b.rows))
b.delete()
gdb.execute("detach")
"""
        with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
            f.write(script)
            f.flush()
            out = subprocess.run([*gdb_argv(guest.symbols), "-batch", "-x", f.name],
                                 capture_output=True, text=True, timeout=300).stdout
        line = next(x for x in out.splitlines() if x.startswith("RATE"))
        call, steady, n = line.split()[1:]
        assert int(n) == hits, line
        return {"call": float(call), "steady": float(steady)}


def run_mi_loop(guest: mvnb.Guest, hits: int) -> dict[str, float]:
    from pygdbmi.gdbmiparser import parse_response

    vm, s = fresh(guest)
    with vm:
        s.close()
        mi = BareMI(vm.gdb_address, guest.symbols)
        try:
            mi.command(f"-break-insert -h {LOCATION}")
            stamps = []
            start = time.perf_counter()
            for _ in range(hits):
                mi.command("-exec-continue", until=b"*stopped")
                value = parse_response(mi.command(f"-data-evaluate-expression {EXPR}").decode())
                stamps.append(time.monotonic_ns())
                int(value["payload"]["value"])
            elapsed = time.perf_counter() - start
            mi.command("-break-delete")
        finally:
            mi.close()
        return {"call": hits / elapsed, "steady": (hits - 1) / ((stamps[-1] - stamps[0]) / 1e9)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--hits", type=int, default=2000, help="hits per measurement")
    args = parser.parse_args()
    guest = mvnb.guests.debian_cloud()
    peers = {"a_session_sample": run_mvnb, "b_gdb_python_batch": run_gdb_python,
             "c_mi_continue_loop": run_mi_loop}
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in peers}
    for _ in range(args.rounds):
        for name, fn in peers.items():
            rounds[name].append(fn(guest, args.hits))
    med = {name: {kind: statistics.median(r[kind] for r in runs) for kind in ("call", "steady")}
           for name, runs in rounds.items()}
    a, b, c = (med[k] for k in peers)
    names = list(peers)
    result = {
        "what": f"hits/s sampling {EXPR} at every hit of {LOCATION} during boot, {args.hits} "
                "hits, hardware breakpoint, stub on a unix socket; medians of interleaved "
                "rounds, each on a fresh guest. 'call': hits / wall time of the whole call "
                "(mvnb: Session.sample incl. setup and provenance; peers: the continue "
                "loop); 'steady': (hits-1) / (last - first hit time).",
        "hits_per_second": {k: {kind: round(v, 1) for kind, v in m.items()}
                            for k, m in med.items()},
        "rounds": {k: [{kind: round(v, 1) for kind, v in r.items()} for r in runs]
                   for k, runs in rounds.items()},
        "ratios": {"a_over_b_call": round(a["call"] / b["call"], 3),
                   "a_over_b_steady": round(a["steady"] / b["steady"], 3),
                   "a_over_c_call": round(a["call"] / c["call"], 3)},
        "ratios_paired": {  # the median of each round's own ratio: rounds share their noise
            "a_over_b_call": round(statistics.median(
                x["call"] / y["call"] for x, y in zip(rounds[names[0]], rounds[names[1]],
                                                       strict=True)), 3),
            "a_over_c_call": round(statistics.median(
                x["call"] / y["call"] for x, y in zip(rounds[names[0]], rounds[names[2]],
                                                       strict=True)), 3)},
        "targets": {"a_over_b_call": ">= 0.9"},
    }
    write_results(RESULTS, result, guest.name)


if __name__ == "__main__":
    main()
