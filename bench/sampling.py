"""Breakpoint hits sampled per second at a hot kernel function, through mvnb and its peers.

One expression (``jiffies``) at every hit of ``_raw_spin_lock`` (kernel/locking/spinlock.c)
during the Linux guest's boot, hardware breakpoint, through:
  a ``Session.sample`` (the in-GDB collector, method "gdb-python");
  b a GDB Python ``gdb.Breakpoint`` whose ``stop()`` reads the value, run the way mvnb runs
    its collector: GDB over MI with ``mi-async on``, ``-exec-continue``, wait for
    ``*stopped``, fetch the rows;
  c an MI loop: ``-exec-continue``, wait for ``*stopped``, ``-data-evaluate-expression``
    (GDB's output read in whole chunks, mi-async on);
  d avatar2's ``GDBTarget``: ``cont()``, ``wait()``, ``read_memory()`` (fewer hits: it is
    slow).

Two spans, the same on every side: "call" is hits / wall time of the whole run as a user
calls it (a: ``Session.sample`` with its setup, row fetches and provenance; b: breakpoint
created, continue, rows fetched; c, d: breakpoint inserted, the loop); "steady" is
(hits - 1) / (last hit - first hit), from host timestamps taken at each hit.

Every measurement starts from a fresh guest stopped at the first ``lapic_cal_handler`` hit
(QEMU's stub takes one client at a time: mvnb's session disconnects and closes before a
peer connects, the guest left stopped). Rounds interleave the peers (the order turns each
round), so a round's peers share the machine's noise. Writes bench/results/sampling.json.
Not a test.

    python bench/sampling.py [--rounds 5] [--hits 2000] [--avatar-hits 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

from _peers import AvatarPeer, BareMI, hand_over, paired, spread, write_results

import mvnb

warnings.simplefilter("ignore", RuntimeWarning)  # boot_to's 'booting again' notes

EXPR = "jiffies"
LOCATION = "_raw_spin_lock"
RESULTS = Path(__file__).parent / "results" / "sampling.json"

COLLECTOR = """
import gdb, json, time
class B(gdb.Breakpoint):
    def stop(self):
        self.rows.append((time.monotonic_ns(), int(gdb.parse_and_eval("{expr}"))))
        return len(self.rows) >= {hits}
b = B("{location}", type=gdb.BP_HARDWARE_BREAKPOINT)
b.rows = []
"""


def fresh(guest: mvnb.Guest) -> tuple[mvnb.Qemu, mvnb.Session]:
    vm, s, _ = mvnb.boot_to(guest, "lapic_cal_handler", attempts=20)
    for bp in s.breakpoints():
        bp.delete()
    return vm, s


def rates(hits: int, elapsed: float, stamps_ns: list[int]) -> dict[str, float]:
    return {"call": hits / elapsed, "steady": (len(stamps_ns) - 1) * 1e9
            / (stamps_ns[-1] - stamps_ns[0])}


def run_mvnb(guest: mvnb.Guest, hits: int) -> dict[str, float]:
    vm, s = fresh(guest)
    with vm:
        start = time.perf_counter()
        frame = s.sample(LOCATION, [EXPR], count=hits, timeout=300, progress=False)
        elapsed = time.perf_counter() - start
        assert len(frame) == hits and frame.attrs["method"] == "gdb-python", frame.attrs
        return rates(hits, elapsed, frame["host_ns"].tolist())


def run_gdb_python_mi(guest: mvnb.Guest, hits: int) -> dict[str, float]:
    vm, s = fresh(guest)
    with vm, tempfile.NamedTemporaryFile("w", suffix=".py") as script:
        hand_over(s)  # the stub takes one client; the guest stays stopped
        script.write(COLLECTOR.format(expr=EXPR, hits=hits, location=LOCATION))
        script.flush()
        mi = BareMI(vm.gdb_address, guest.symbols, mi_async=True)
        try:
            start = time.perf_counter()
            mi.command(f'-interpreter-exec console "source {script.name}"')
            mi.command("-exec-continue")
            mi.read_until(b"*stopped")
            rows = json.loads(mi.console("python print(json.dumps(b.rows))"))
            elapsed = time.perf_counter() - start
        finally:
            mi.close()
        assert len(rows) == hits, len(rows)
        return rates(hits, elapsed, [t for t, _ in rows])


def run_mi_loop(guest: mvnb.Guest, hits: int) -> dict[str, float]:
    from pygdbmi.gdbmiparser import parse_response

    vm, s = fresh(guest)
    with vm:
        hand_over(s)
        mi = BareMI(vm.gdb_address, guest.symbols, mi_async=True)
        try:
            stamps = []
            start = time.perf_counter()
            mi.command(f"-break-insert -h {LOCATION}")
            for _ in range(hits):
                mi.command("-exec-continue")
                mi.read_until(b"*stopped")
                value = parse_response(mi.command(f"-data-evaluate-expression {EXPR}").decode())
                stamps.append(time.monotonic_ns())
                int(value["payload"]["value"])
            elapsed = time.perf_counter() - start
            mi.command("-break-delete")
        finally:
            mi.close()
        return rates(hits, elapsed, stamps)


def run_avatar2(guest: mvnb.Guest, hits: int) -> dict[str, float]:
    vm, s = fresh(guest)
    with vm, tempfile.TemporaryDirectory() as tmp:
        hand_over(s)
        peer = AvatarPeer(vm.gdb_address, guest.symbols, Path(tmp))
        try:
            jiffies = peer.address_of(EXPR)
            target = peer.target
            stamps = []
            start = time.perf_counter()
            target.set_breakpoint(LOCATION, hardware=True)
            for _ in range(hits):
                target.cont()
                target.wait()
                target.read_memory(jiffies, 8)
                stamps.append(time.monotonic_ns())
            elapsed = time.perf_counter() - start
        finally:
            peer.close()
        return rates(hits, elapsed, stamps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--hits", type=int, default=2000, help="hits per measurement")
    parser.add_argument("--avatar-hits", type=int, default=200, help="hits for avatar2")
    args = parser.parse_args()
    guest = mvnb.guests.debian_cloud()
    peers = {"a_session_sample": (run_mvnb, args.hits),
             "b_gdb_python_breakpoint_mi_async": (run_gdb_python_mi, args.hits),
             "c_mi_continue_loop": (run_mi_loop, args.hits),
             "d_avatar2_cont_wait_read": (run_avatar2, args.avatar_hits)}
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in peers}
    order = list(peers)
    for r in range(args.rounds):
        for name in order[r % len(order):] + order[: r % len(order)]:
            fn, hits = peers[name]
            rounds[name].append(fn(guest, hits))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]['call']:.0f}"
                                           for k, v in rounds.items()), flush=True)

    def series(name: str, kind: str) -> list[float]:
        return [x[kind] for x in rounds[name]]

    a, b, c, d = order
    result = {
        "what": f"hits/s sampling {EXPR} at every hit of {LOCATION} during boot, "
                f"{args.hits} hits ({args.avatar_hits} for avatar2), hardware breakpoint, "
                "stub on a unix socket, GDB with mi-async on everywhere; min/median/max over "
                "interleaved rounds, each on a fresh guest. 'call': hits / wall time of the "
                "run as a user calls it (mvnb: Session.sample with setup, fetches and "
                "provenance; b: breakpoint created, continue, rows fetched; c, d: breakpoint "
                "inserted and the loop); 'steady': (hits-1) / (last - first hit time).",
        "hits_per_second": {name: {kind: spread(series(name, kind))
                                   for kind in ("call", "steady")} for name in order},
        "ratios_same_round": {
            "a_over_b_call": paired(series(a, "call"), series(b, "call")),
            "a_over_b_steady": paired(series(a, "steady"), series(b, "steady")),
            "a_over_c_call": paired(series(a, "call"), series(c, "call")),
            "a_over_d_call": paired(series(a, "call"), series(d, "call")),
        },
        "targets": {"a_over_b_call": ">= 0.9"},
    }
    write_results(RESULTS, result, guest.name)


if __name__ == "__main__":
    main()
