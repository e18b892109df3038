"""Boot a guest to a location, past a Linux TSC calibration that failed.

Debian's 6.1 kernel on QEMU ``microvm`` under TCG calibrates its TSC against the PIT
(``quick_pit_calibrate``, arch/x86/kernel/tsc.c). The check needs each PIT read to take a
few microseconds of host time; on a busy host it fails now and then ("tsc: Unable to
calibrate against PIT"; microvm offers no HPET or PM timer to fall back on), the TSC is
marked unstable, and the kernel then waits in ``calibrate_delay_converge`` for a jiffies
tick that the PIT does not deliver at that point of a microvm boot: it never reaches the
LAPIC calibration. Seen in about half of the boots on a 2-core machine, and in nearly all
of them while other guests ran (2026-11).

``boot_to`` stops at ``calibrate_delay_converge`` when that happens and boots again. The
next boot passes ``tsc_early_khz=<host TSC kHz>`` when the host's TSC frequency can be
read (under TCG the guest's TSC is the host's, ``cpu_get_host_ticks``; the source and how
far to trust it are in :mod:`mvnb.vm.host_clock` and in the warning), which skips only the
TSC measurement; the LAPIC calibration still runs as before, against that TSC.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from ..errors import GdbError, TargetTimeout
from ..gdb import Session, Stop
from .guest import Guest
from .host_clock import HostTsc, host_tsc, host_tsc_khz
from .qemu import Qemu

__all__ = ["TSC_CALIBRATION_FAILED", "boot_to", "fallback_note", "host_tsc", "host_tsc_khz"]

#: Where a Linux guest waits for ever once its TSC calibration failed on microvm.
TSC_CALIBRATION_FAILED = "calibrate_delay_converge"


def fallback_note(found: HostTsc | None) -> str:
    """What boot_to says about the ``tsc_early_khz=`` it adds: the value, its source, its trust."""
    if found is None:
        return ("the host's TSC rate is unknown (no CPUID leaf 0x15, no readable kernel log, "
                "and /proc/cpuinfo's \"cpu MHz\" is no TSC rate here), so no tsc_early_khz")
    return f"tsc_early_khz={found.khz}: the host's TSC rate from {found.source} ({found.note})"


def boot_to(guest: Guest, location: str, *, attempts: int = 4, timeout: float = 60.0,
            sentinel: str | None = TSC_CALIBRATION_FAILED, tsc_fallback: bool = True,
            **qemu_args: Any) -> tuple[Qemu, Session, Stop]:
    """Start ``guest`` under QEMU and run to a hardware breakpoint at ``location``.

    Returns the running ``Qemu`` (close it, or use it as a context manager), its session
    and the Stop. If the guest reaches ``sentinel`` first (a failed Linux TSC calibration,
    see the module docstring), the VM is closed and booted again, up to ``attempts`` times;
    ``sentinel=None`` turns that off. After a failed boot, ``tsc_fallback`` adds
    ``tsc_early_khz=`` with the host's TSC frequency (see the module docstring) to the next
    boot's command line. The breakpoint at ``location`` is left in place.
    """
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        vm = Qemu(guest, **qemu_args)
        try:
            session = vm.session()
            guard = None
            if sentinel:
                try:
                    guard = session.hbreak(sentinel, temporary=True)
                except GdbError:
                    guard = None  # not a Linux guest, or no such function: nothing to guard
            target = session.hbreak(location)
            stop = session.cont(timeout=timeout)
            if guard is not None and stop.breakpoint is guard:
                serial = [line for line in vm.serial().splitlines() if "tsc:" in line]
                last = TargetTimeout(f"boot {attempt}: the guest stopped in {sentinel} "
                                     f"({'; '.join(s.strip() for s in serial[-3:])})")
                again = "booting again"
                if tsc_fallback and "tsc_early_khz=" not in guest.cmdline:
                    found = host_tsc()
                    if found is not None:
                        guest = dataclasses.replace(
                            guest, cmdline=f"{guest.cmdline} tsc_early_khz={found.khz}")
                    again += f" with {fallback_note(found)}" if found else (
                        f"; {fallback_note(found)}")
                warnings.warn(f"{last}; {again}", RuntimeWarning, stacklevel=2)
                vm.close()
                continue
            if guard is not None and not guard.deleted:
                guard.delete()
            if stop.breakpoint is not target:
                raise TargetTimeout(f"the guest stopped at {stop}, not at {location}", stop)
            return vm, session, stop
        except BaseException:
            vm.close()
            raise
    raise TargetTimeout(f"the guest did not reach {location} in {attempts} boots: {last}")
