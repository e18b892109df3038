"""Record the sample sets in data/ from the Linux microvm guest, and their README.

    .venv/bin/python data/record.py [--only NAME ...]

Each set is a CSV written by ``Session.sample(..., path=)`` as the rows arrive, a
``NAME.attrs.json`` with the frame's attrs (method, provenance), and one README line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

import mvnb
from mvnb.timing import LINUX_APIC_CAL_VARIABLES
from mvnb.x86 import TSC

HERE = Path(__file__).parent
ICOUNT_SHIFT = 0
LAPIC_COLUMNS = {"loops": "lapic_cal_loops", "ccr": mvnb.x86.TIMER_CCR,
                 "icr": mvnb.x86.TIMER_ICR, "dcr": mvnb.x86.TIMER_DCR, "tsc": TSC,
                 "jiffies": "jiffies"}


def lapic_cal(guest: mvnb.Guest, path: Path, **qemu_args: object) -> pd.DataFrame:
    """The 27 ``lapic_cal_handler`` calls of Linux's calibrate_APIC_clock
    (arch/x86/kernel/apic/apic.c), LAPIC timer, TSC and jiffies at each."""
    vm, s, _ = mvnb.boot_to(guest, "lapic_cal_handler", attempts=20, **qemu_args)
    with vm:
        return s.sample("lapic_cal_handler", LAPIC_COLUMNS, count=27, timeout=120, path=path)


def lapic_cal_verbose(guest: mvnb.Guest, path: Path, **qemu_args: object) -> pd.DataFrame:
    """The 27 calls again, booted with ``apic=verbose``: the kernel's own ``lapic_cal_*``
    values read once the calibration returned (``after=``, in ``NAME.attrs.json``), what a
    stop costs the clocks (``attrs["observer"]``), and the kernel's printout of its result
    (``NAME.serial.txt``), so the replay can be set beside it. On ``-M pc`` the PM timer is
    sampled too."""
    verbose = dataclasses.replace(guest, cmdline=f"{guest.cmdline} apic=verbose")
    vm, s, _ = mvnb.boot_to(verbose, "lapic_cal_handler", attempts=20, **qemu_args)
    with vm:
        columns = dict(LAPIC_COLUMNS)
        if qemu_args.get("machine", "microvm") != "microvm":
            columns["pm"] = mvnb.x86.PM_TIMER
        frame = s.sample("lapic_cal_handler", columns, count=27, timeout=120, path=path,
                         after=LINUX_APIC_CAL_VARIABLES)
        for bp in s.breakpoints():
            bp.delete()
        s.cont(wait=False)
        try:
            vm.wait_serial(r"host bus clock speed is", timeout=120)
        finally:
            if s.running:
                s.interrupt()
        path.with_suffix(".serial.txt").write_text(vm.serial())
    return frame


def jiffies_periodic(guest: mvnb.Guest, path: Path) -> pd.DataFrame:
    """jiffies and the LAPIC current count every 50 ms of host time for 30 s, from the
    LAPIC calibration on. ``root=/dev/vda rootwait``: with no disk the kernel waits for its
    root device for ever (``msleep(5)`` in a loop, init/do_mounts.c), idle and ticking,
    instead of panicking after two seconds with jiffies standing still."""
    waiting = dataclasses.replace(guest, cmdline=f"{guest.cmdline} root=/dev/vda rootwait")
    vm, s, _ = mvnb.boot_to(waiting, "lapic_cal_handler", attempts=20)
    with vm:
        for bp in s.breakpoints():
            bp.delete()
        return s.sample_periodic({"jiffies": "jiffies", "ccr": mvnb.x86.TIMER_CCR},
                                 interval=0.05, count=600, path=path)


SETS: dict[str, tuple[str, Callable[[mvnb.Guest, Path], pd.DataFrame]]] = {
    "lapic_cal_tcg": ("lapic_cal_handler hits, free-running TCG",
                      lambda g, p: lapic_cal(g, p)),
    "lapic_cal_icount": (f"lapic_cal_handler hits under -icount shift={ICOUNT_SHIFT},sleep=off",
                         lambda g, p: lapic_cal(g, p, icount=ICOUNT_SHIFT)),
    "lapic_cal_verbose_tcg": ("lapic_cal_handler hits with the kernel's own values and its "
                              "apic=verbose printout, free-running TCG",
                              lambda g, p: lapic_cal_verbose(g, p)),
    "lapic_cal_verbose_icount": ("lapic_cal_handler hits with the kernel's own values and its "
                                 f"apic=verbose printout, -icount shift={ICOUNT_SHIFT},sleep=off",
                                 lambda g, p: lapic_cal_verbose(g, p, icount=ICOUNT_SHIFT)),
    "lapic_cal_verbose_pc": ("lapic_cal_handler hits with the ACPI PM timer, the kernel's own "
                             "values and its apic=verbose printout, on -M pc (free-running TCG)",
                             lambda g, p: lapic_cal_verbose(g, p, machine="pc")),
    "jiffies_periodic": ("jiffies and LAPIC current count vs host time, the guest interrupted "
                         "every 50 ms for 30 s while it waits for its root device (guest "
                         "command line plus `root=/dev/vda rootwait`)",
                         jiffies_periodic),
}


def tsc_fallback(cmdline: str, host_tsc: dict | None) -> str:
    """What a recording booted with ``tsc_early_khz=`` (boot_to's fallback) must say."""
    match = re.search(r"tsc_early_khz=(\d+)", cmdline or "")
    if not match:
        return ""
    where = (f"{host_tsc['source']}: {host_tsc['note']}" if host_tsc
             else "a source this recording did not note")
    return (f"TCG, booted with `tsc_early_khz={match.group(1)}` after a boot whose TSC "
            f"calibration failed: the guest took that as its TSC rate instead of measuring "
            f"it; the value is the host's TSC rate from {where}")


def readme_line(name: str, what: str, frame: pd.DataFrame) -> str:
    a = frame.attrs
    prov = a["provenance"]
    fallback = tsc_fallback(prov.get("cmdline", ""), a.get("host_tsc"))
    if fallback:
        what = (what.replace("free-running TCG", fallback) if "free-running TCG" in what
                else f"{what}; {fallback}")
    shift = prov.get("icount")
    icount = f", `-icount shift={shift},sleep=off`" if shift is not None else ""
    after = f", after={list(a['after'])}" if a.get("after") else ""
    how = (f"`s.sample({a['location']!r}, {a['columns']}, count=27{after})`" if a["location"]
           else f"`s.sample_periodic({a['columns']}, interval={a['interval']}, count=600)`")
    if "tsc_early_khz=" in str(prov.get("cmdline")):
        what += (" (booted again with the host's TSC rate as tsc_early_khz after the guest "
                 "failed to calibrate its TSC: boot_to's fallback; the guest's TSC rate is "
                 "then taken from the host's 'cpu MHz', not measured)")
    return (f"- `{name}.csv` ({len(frame)} rows): {what}. Recorded by `python data/record.py "
            f"--only {name}`: {how}, method {a['method']}; QEMU {prov.get('qemu')} "
            f"(`-M {prov.get('machine')}`{icount}); "
            f"guest kernel {prov.get('kernel')}; guest command line `{prov.get('cmdline')}`; "
            f"{prov.get('gdb')}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SETS), default=sorted(SETS))
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    guest = mvnb.guests.debian_cloud()
    lines_path = HERE / "README.lines.json"
    lines = json.loads(lines_path.read_text()) if lines_path.exists() else {}
    for name in args.only:
        what, record = SETS[name]
        path = HERE / f"{name}.csv"
        path.unlink(missing_ok=True)
        path.with_suffix(".serial.txt").unlink(missing_ok=True)
        frame = record(guest, path)
        if "tsc_early_khz=" in frame.attrs["provenance"].get("cmdline", ""):
            found = mvnb.vm.host_tsc()  # what boot_to read on this host a moment ago
            frame.attrs["host_tsc"] = dataclasses.asdict(found) if found else None
        (HERE / f"{name}.attrs.json").write_text(json.dumps(frame.attrs, indent=2) + "\n")
        lines[name] = readme_line(name, what, frame)
        print(f"{name}: {len(frame)} rows → {path}", file=sys.stderr)
    write_readme(lines)


def write_readme(lines: dict[str, str]) -> None:
    """README.lines.json (one line per set, also the sweeps' of data/sweep_*.py) and the
    README made of them."""
    (HERE / "README.lines.json").write_text(json.dumps(lines, indent=2) + "\n")
    (HERE / "README.md").write_text(
        "# Recorded data\n\nSample sets recorded with `Session.sample` / `sample_periodic` "
        "from Debian's cloud kernel on QEMU (TCG; `microvm` unless a line says `-M pc`). "
        "Each row is read with the guest stopped: its clocks are frozen during the stop, but "
        "every stop and resume moves them by some thousands of LAPIC counts under "
        "free-running TCG (`attrs[\"observer\"]` where measured), and `host_ns` is no "
        "reference across rows. `NAME.serial.txt` is the guest's console of that run. "
        "Regenerate with `" + shlex.join(["python", "data/record.py"]) + "`; the sweeps "
        "(many boots, `mvnb.sweep`) with the `data/sweep_*.py` script each names.\n\n"
        + "\n".join(lines[k] for k in sorted(lines)) + "\n")


if __name__ == "__main__":
    main()
