"""N boots to ``lapic_cal_handler``: one after another in one process, against the same N
on a ``LocalCluster`` that uses every core (``mvnb.sweep.run``), in the same run.

Both run the same function: ``mvnb.boot_to(guest, "lapic_cal_handler", icount=0)`` and
close the VM. ``icount`` makes every boot the same work (no TSC-trap retries, which would
make the two sides boot different numbers of times). The serial peer is the loop a user
would write without a scheduler. The sweep's wall time includes starting and stopping the
cluster and the per-machine cache check; each run's ``duration_s`` against its
``experiment_s`` shows what the runner's own process costs. Rounds alternate which side
goes first, so both share the machine's noise. Writes bench/results/sweep.json. Not a
test: figures.

    python bench/sweep.py [--boots 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

from _peers import write_results

import mvnb
import mvnb.sweep

warnings.simplefilter("ignore", RuntimeWarning)

RESULTS = Path(__file__).parent / "results" / "sweep.json"
LOCATION = "lapic_cal_handler"


def boot(params: dict[str, Any]) -> dict[str, Any]:
    """One boot to the LAPIC calibration, VM closed after: the work both sides do."""
    started = time.monotonic()
    vm, _, _ = mvnb.boot_to(params["guest"], LOCATION, icount=0, timeout=300)
    vm.close()
    return {"boot_s": time.monotonic() - started}


def nothing(params: dict[str, Any]) -> dict[str, Any]:
    """No work: a sweep of these costs what the cluster, the cache check and the runner's
    process cost."""
    return {}


def serial(guest: mvnb.Guest, boots: int) -> float:
    started = time.perf_counter()
    for _ in range(boots):
        boot({"guest": guest})
    return time.perf_counter() - started


def sweep(boots: int, workers: int, experiment: Any = boot) -> tuple[float, Any]:
    started = time.perf_counter()
    frame = mvnb.sweep.run(experiment, {"boot": list(range(boots))}, workers=workers,
                           timeout=600, progress=False)
    elapsed = time.perf_counter() - started
    assert (frame["outcome"] == "ok").all(), frame["error"].tolist()
    return elapsed, frame


def spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    guest = mvnb.guests.debian_cloud(progress=False)
    serial_s, sweep_s, ratio, overhead, runner, boot_in_sweep, boot_serial, fixed = (
        [] for _ in range(8))
    for r in range(args.rounds):
        order = ["serial", "sweep"] if r % 2 == 0 else ["sweep", "serial"]
        for side in order:
            if side == "serial":
                serial_s.append(serial(guest, args.boots))
            else:
                elapsed, frame = sweep(args.boots, args.workers)
                sweep_s.append(elapsed)
                runner.extend((frame["duration_s"] - frame["experiment_s"]).tolist()
                              if "experiment_s" in frame else [])
                boot_in_sweep.extend(frame["boot_s"].tolist())
        fixed.append(sweep(args.workers, args.workers, nothing)[0])
        ratio.append(serial_s[-1] / sweep_s[-1])
        # what Dask and the runner add per boot, with the cores counted: the sweep's
        # core-seconds against the serial loop's seconds
        overhead.append((sweep_s[-1] * args.workers - serial_s[-1]) / args.boots)
        boot_serial.append(serial_s[-1] / args.boots)
        print(f"round {r}: serial {serial_s[-1]:.1f} s, sweep {sweep_s[-1]:.1f} s, "
              f"ratio {ratio[-1]:.2f}", flush=True)
    write_results(RESULTS, {
        "what": (f"wall time of {args.boots} boots to {LOCATION} (boot_to, icount=0, VM "
                 f"closed): serially in one process vs mvnb.sweep.run on a LocalCluster of "
                 f"{args.workers} worker processes (1 thread, vm=1 each), cluster start, "
                 "cache check and shutdown included; rounds alternate the order. "
                 "per_boot_overhead_s = (sweep wall × workers − serial wall) / boots: the "
                 "core-seconds a boot costs more in the sweep. runner_overhead_s: a run's "
                 "duration on the worker minus the experiment's own time (the run's process "
                 "start and imports). empty_sweep_wall_s: a sweep of one no-op run per "
                 "worker (cluster start, cache check, one run's process each, shutdown)."),
        "boots": args.boots, "workers": args.workers, "rounds": args.rounds,
        "serial_wall_s": spread(serial_s), "sweep_wall_s": spread(sweep_s),
        "ratio_serial_over_sweep": spread(ratio),
        "per_boot_overhead_s": spread(overhead),
        "serial_per_boot_s": spread(boot_serial),
        "boot_s_in_sweep": spread(boot_in_sweep),
        "runner_overhead_s": spread(runner) if runner else None,
        "empty_sweep_wall_s": spread(fixed),
    }, guest.name)


if __name__ == "__main__":
    main()
