"""How often does Debian's 6.1 cloud kernel fail its TSC calibration on QEMU microvm (TCG)?

    .venv/bin/python data/sweep_tsc_trap.py [--repeat 8] [--workers 1] [--load 2]

Each run boots the guest once, plainly: ``mvnb.Qemu(guest)`` (its guard at
``calibrate_delay_converge`` armed), a session, a hardware breakpoint at
``lapic_cal_handler``, ``cont`` (``mvnb.sweep.Reach``), and reports whether it reached the
LAPIC calibration, was stuck in ``calibrate_delay_converge`` (``TargetStuck``), or timed
out, with the console's ``tsc:`` lines. No ``boot_to`` retry and no ``tsc_early_khz=``:
the point is how often the trap happens. The grid: QEMU 7.2 (the system's) and the cached
10.0, free-running TCG and ``icount`` shift 0, and ``host_load`` 0 and N busy loops
(``yes > /dev/null``) for the run's duration. One worker by default, so that the runs'
own load is the condition's and not a neighbour's.

Writes ``tsc_trap.csv`` (one row per boot), ``tsc_trap.attrs.json`` (provenance, seed),
``tsc_trap.summary.csv`` (counts and rates by condition, Wilson 95 % intervals) and the
README line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

import mvnb
import mvnb.sweep

HERE = Path(__file__).parent
NAME = "tsc_trap"
CONDITION = ["qemu", "icount", "host_load"]


def describe(frame: pd.DataFrame, table: pd.DataFrame, args: argparse.Namespace) -> str:
    """The README line: what the set is and how it was made."""
    a = frame.attrs
    workers = next(iter(a["provenance"]["workers"].values()))
    qemus = ", ".join(f"{k}: {v['version']} ({v['package']})" for k, v in
                      workers["qemu"].items())
    kernel = next(iter(workers["guests"].values()))
    free = table[table["icount"].isna()]
    fixed = table[table["icount"].notna()]
    return (
        f"- `{NAME}.csv` ({len(frame)} boots): how often Debian's cloud kernel on `-M "
        f"microvm` under TCG fails its TSC calibration and waits for ever in "
        f"`calibrate_delay_converge`: {int(free['count'].sum())} of {int(free['runs'].sum())} "
        f"boots on free-running TCG, {int(fixed['count'].sum())} of "
        f"{int(fixed['runs'].sum())} under icount (by condition, with Wilson 95 % "
        f"intervals, in `{NAME}.summary.csv`). Each boot: `mvnb.Qemu(guest)` with "
        f"its guard, a session, `hbreak('lapic_cal_handler')`, `cont(timeout=90)` "
        f"(`mvnb.sweep.Reach`), no retry, no `tsc_early_khz=`; columns `status` (reached / "
        f"stuck / timeout), `stopped_in`, `boot_s`, `tsc` (the console's `tsc:` lines). "
        f"Recorded by `python data/sweep_tsc_trap.py --repeat {args.repeat} --workers "
        f"{args.workers} --load {args.load}`: `mvnb.sweep.run` over qemu × icount (none, "
        f"shift 0) × host_load (0, {args.load} busy loops) × {args.repeat} repeats, seed "
        f"{a['seed']}, {a['provenance']['cluster']}, on a shared {workers['cpus']}-core "
        f"machine (1-minute load average {frame['load_before'].min():.1f}–"
        f"{frame['load_before'].max():.1f} at the runs' starts, column `load_before`); "
        f"QEMU {qemus}; guest kernel {kernel}; {workers['gdb']}; "
        f"{a['started'][:10]}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2,
                        help="busy loops in the host_load condition (default: the cores)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--readme-only", action="store_true",
                        help="summarise the recorded set again, without booting")
    args = parser.parse_args()
    grid = {"qemu": ["7.2", "10.0"], "icount": [None, 0], "host_load": [0, args.load],
            "machine": ["microvm"]}
    path = HERE / f"{NAME}.csv"
    if args.readme_only:
        frame = pd.read_csv(path, dtype={"qemu": str})
        frame.attrs = json.loads((HERE / f"{NAME}.attrs.json").read_text())
    else:
        path.unlink(missing_ok=True)
        frame = mvnb.sweep.run(mvnb.sweep.Reach(location="lapic_cal_handler", timeout=90),
                               grid, repeat=args.repeat, workers=args.workers, timeout=240,
                               path=path, seed=args.seed)
    table = mvnb.sweep.rates(frame, by=CONDITION, column="status", value="stuck")
    table.to_csv(HERE / f"{NAME}.summary.csv", index=False)
    print(table.to_string(index=False), file=sys.stderr)
    print(frame["outcome"].value_counts().to_string(), file=sys.stderr)
    sys.path.insert(0, str(HERE))
    from record import write_readme

    lines_path = HERE / "README.lines.json"
    lines = json.loads(lines_path.read_text()) if lines_path.exists() else {}
    lines[NAME] = describe(frame, table, args)
    write_readme(lines)


if __name__ == "__main__":
    main()
