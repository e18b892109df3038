"""The ``mvnb`` command: fetch guests, and the demo that shows the kit end to end.

    mvnb guest fetch [--flavour cloud-amd64|amd64|rt-amd64] [--abi 6.1.0-56] [--refresh]
    mvnb qemu fetch [--version 10.0]
    mvnb qemu list
    mvnb demo [--kernel bzImage --symbols vmlinux] [--cmdline "console=ttyS0"]
    mvnb publish NOTEBOOK --site DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import warnings

from .errors import Error, GuestError
from .publish.cli import add_parser as add_publish_parser
from .vm import Guest, debian, guests

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
mvnb: a Jupyter kit for investigating guest kernels on QEMU microVMs.

The command fetches Debian's cloud kernel with its debug symbols and newer QEMU
builds, runs a demo that boots a guest under QEMU, stops it at its LAPIC timer
calibration and prints what the debugger sees, and publishes notebooks as blog
posts. Everything else is a Python library: import mvnb in a notebook.
"""

EPILOG = """\
examples:
  mvnb guest fetch                  fetch Debian's cloud kernel and its symbols
  mvnb qemu fetch                   fetch QEMU 10 from bookworm-backports
  mvnb demo                         boot it and stop at lapic_cal_handler
  mvnb demo --kernel arch/x86/boot/bzImage --symbols vmlinux
                                    the same with your own Linux kernel
  mvnb publish notebooks/first-session.ipynb --site ~/blog
                                    the notebook as a Jekyll post
"""


def _guest_fetch(args: argparse.Namespace) -> int:
    guest = guests.debian(args.flavour, args.abi, refresh=args.refresh)
    print(f"{guest.name}\n  kernel:  {guest.kernel}\n  symbols: {guest.symbols}\n"
          f"  cmdline: {guest.full_cmdline}")
    return 0


def _qemu_fetch(args: argparse.Namespace) -> int:
    from .vm.builds import fetch_qemu

    build = fetch_qemu(args.version)
    print(f"QEMU {build.version} ({build.package})\n  binary:   {build.binary}\n"
          f"  firmware: {build.firmware}\nuse it with mvnb.Qemu(..., qemu=\"{build.version}\") "
          f"or MVNB_QEMU={build.version}")
    return 0


def _qemu_list(args: argparse.Namespace) -> int:
    from .vm.builds import qemu_builds

    for build in qemu_builds():
        print(f"{build.version:<10} {build.origin:<7} {build.binary}  ({build.package})")
    return 0


def _demo_guest(args: argparse.Namespace) -> Guest:
    """The guest the demo boots: the user's files when given, else Debian's cloud kernel."""
    if args.kernel is None:
        if args.symbols is not None:
            raise GuestError("--symbols needs --kernel: pass the image QEMU boots as well")
        guest = guests.debian_cloud()
        if args.cmdline is not None:
            guest = dataclasses.replace(guest, cmdline=args.cmdline)
        return guest
    if args.symbols is None:
        raise GuestError(
            "--kernel needs --symbols: the demo stops at lapic_cal_handler, which GDB finds "
            "in the kernel's unstripped ELF (vmlinux); pass --symbols PATH"
        )
    return Guest(kernel=args.kernel, symbols=args.symbols,
                 cmdline=args.cmdline or "console=ttyS0", nokaslr=True)


def _demo(args: argparse.Namespace) -> int:
    """Boot a guest, stop at the LAPIC timer calibration, print what it shows."""
    from .vm import boot_to

    guest = _demo_guest(args)
    print(f"Booting {guest.name} under QEMU microvm (TCG), paused at reset ...\n"
          f"  command line: {guest.full_cmdline}")
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
        hz = guests.kernel_hz(guest, session=s)
        bus = sum(deltas) / len(deltas) * 16 * hz
        print(f"\nLAPIC counts per tick x 16 (divider) x HZ={hz}: bus clock ~ {bus / 1e9:.3f} GHz"
              " (QEMU's LAPIC runs at 1 GHz under TCG)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``mvnb`` command line: ``guest``, ``qemu``, ``demo`` and ``publish``."""
    parser = argparse.ArgumentParser(prog="mvnb", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    guest = sub.add_parser(
        "guest", help="fetch guest kernels", description="Fetch guest kernels into the cache."
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = guest.add_parser(
        "fetch", help="fetch one of Debian's kernels and its debug symbols",
        description="Fetch one of Debian's kernels (linux-image-<flavour>) and its -dbg "
                    "symbols with apt-get download into the cache, once, and check that they "
                    "come from the same build.",
    )
    fetch.add_argument("--flavour", default="cloud-amd64", choices=debian.FLAVOURS,
                       help="Debian's kernel flavour (default: cloud-amd64, the kit's guest; "
                            "amd64 is the generic kernel, a 930 MB download)")
    fetch.add_argument("--abi", metavar="ABI",
                       help="the build to fetch, e.g. 6.1.0-56 (default: the newest cached "
                            "build, else apt's candidate; MVNB_DEBIAN_KERNEL sets it too)")
    fetch.add_argument("--refresh", action="store_true",
                       help="ask apt for the newest build even when one is cached")
    fetch.set_defaults(func=_guest_fetch)
    qemu = sub.add_parser(
        "qemu", help="QEMU builds beside the system's",
        description="QEMU builds: the system's qemu-system-x86_64 and newer ones fetched from "
                    "Debian's bookworm-backports into the cache (no root needed).",
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    qfetch = qemu.add_parser(
        "fetch", help="fetch the newest QEMU from bookworm-backports",
        description="Download qemu-system-x86 and its firmware from bookworm-backports with a "
                    "private apt state, unpack them into the cache and check that they run.",
    )
    qfetch.add_argument("--version", metavar="PREFIX",
                        help="a version prefix to fetch, e.g. 10.0 (default: the newest "
                             "bookworm-backports has)")
    qfetch.set_defaults(func=_qemu_fetch)
    qemu.add_parser(
        "list", help="list the system QEMU and the cached builds, newest first",
        description="List the system QEMU and the cached builds, newest first.",
    ).set_defaults(func=_qemu_list)
    demo = sub.add_parser(
        "demo", help="boot a guest and stop at its LAPIC timer calibration",
        description="Boot a Linux guest under QEMU microvm (TCG) with a GDB session, stop at "
                    "lapic_cal_handler, and print the backtrace, QEMU's view of the local "
                    "APIC and the LAPIC counts of four calibration ticks.",
    )
    demo.add_argument("--kernel", metavar="PATH",
                      help="the kernel image QEMU boots (a bzImage); default: Debian's "
                           "cloud kernel from the cache")
    demo.add_argument("--symbols", metavar="PATH",
                      help="the unstripped ELF of that kernel (vmlinux), which GDB reads; "
                           "needed with --kernel")
    demo.add_argument("--cmdline", metavar="TEXT",
                      help='the kernel command line (default: "console=ttyS0"); nokaslr is '
                           "added so the symbols match")
    demo.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                      help="how long to wait for each stop (default: %(default)s)")
    demo.set_defaults(func=_demo)
    add_publish_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``mvnb`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Error as error:
        print(f"mvnb: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
