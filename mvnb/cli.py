"""The ``mvnb`` command: fetch guests, and the demo that shows the kit end to end.

    mvnb guest fetch [--flavour cloud-amd64|amd64|rt-amd64] [--abi 6.1.0-56] [--refresh]
    mvnb demo
"""

from __future__ import annotations

import argparse
import itertools
import sys
import warnings

from .errors import Error
from .vm import debian, guests

__all__ = ["main"]


def _guest_fetch(args: argparse.Namespace) -> int:
    guest = guests.debian(args.flavour, args.abi, refresh=args.refresh)
    print(f"{guest.name}\n  kernel:  {guest.kernel}\n  symbols: {guest.symbols}\n"
          f"  cmdline: {guest.full_cmdline}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Boot the default guest, stop at the LAPIC timer calibration, print what it shows."""
    from .vm import boot_to

    guest = guests.debian_cloud()
    print(f"Booting {guest.name} under QEMU microvm (TCG), paused at reset ...")
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always", RuntimeWarning)
        vm, s, stop = boot_to(guest, "lapic_cal_handler", timeout=args.timeout)
    for note in notes:
        print(f"note: {note.message}")
    with vm:
        print(f"\nStopped: {stop}\n")
        print("Backtrace:")
        bt = s.backtrace()
        for row in bt.itertuples():
            print(f"  #{row.level} {row.address:#018x} {row.function or '??'}")
        lapic = s.monitor("info lapic")
        print("\nQEMU's view of the local APIC (monitor info lapic):")
        for line in lapic.splitlines():
            if line.split()[:1] in (["LVTT"], ["Timer"], ["SPIV"]):
                print(f"  {line}")
        loops = []
        counts = []
        for _ in range(4):
            values = s.eval_many(["lapic_cal_loops", "jiffies"])
            current = next(line for line in s.monitor("info lapic").splitlines()
                           if line.startswith("Timer"))
            count = int(current.rsplit("=", 1)[1])
            loops.append(values[0])
            counts.append(count)
            s.cont(timeout=args.timeout)
        print("\nAt successive lapic_cal_handler hits:")
        print("  lapic_cal_loops  current_count  delta")
        for i, (loop, count) in enumerate(zip(loops, counts, strict=True)):
            delta = "" if i == 0 else f"{counts[i - 1] - count:,}"
            print(f"  {loop:>15}  {count:>13,}  {delta}")
        deltas = [a - b for a, b in itertools.pairwise(counts)]
        hz = guests.kernel_hz(guest) or 250
        bus = sum(deltas) / len(deltas) * 16 * hz
        print(f"\nLAPIC counts per tick x 16 (divider) x HZ={hz}: bus clock ~ {bus / 1e9:.3f} GHz"
              " (QEMU's LAPIC runs at 1 GHz under TCG)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mvnb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    guest = sub.add_parser("guest", help="guest kernels").add_subparsers(dest="action",
                                                                         required=True)
    fetch = guest.add_parser("fetch", help="fetch one of Debian's kernels and its symbols")
    fetch.add_argument("--flavour", default="cloud-amd64", choices=debian.FLAVOURS,
                       help="Debian's kernel flavour (default: cloud-amd64, the kit's guest; "
                       "amd64 is the generic kernel, a 930 MB download)")
    fetch.add_argument("--abi", help="a build to pin, e.g. 6.1.0-56 (default: apt's candidate)")
    fetch.add_argument("--refresh", action="store_true", help="resolve the newest build again")
    fetch.set_defaults(func=_guest_fetch)
    demo = sub.add_parser("demo", help="boot the default guest and stop at its LAPIC calibration")
    demo.add_argument("--timeout", type=float, default=60.0)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Error as error:
        print(f"mvnb: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
