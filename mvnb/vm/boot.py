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
next boot passes ``tsc_early_khz=<host TSC kHz>`` when the host's TSC frequency is known
(under TCG the guest's TSC is the host's, ``cpu_get_host_ticks``), which skips only the
TSC measurement; the LAPIC calibration still runs as before, against that TSC.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from typing import Any

from ..errors import GdbError, TargetStuck, TargetTimeout
from ..gdb import Breakpoint, Session, Stop
from .guest import Guest
from .qemu import Qemu
from .traps import TSC_CALIBRATION

__all__ = ["TSC_CALIBRATION_FAILED", "boot_to", "host_tsc_khz"]

#: Where a Linux guest waits for ever once its TSC calibration failed on microvm.
TSC_CALIBRATION_FAILED = TSC_CALIBRATION.location


def host_tsc_khz(cpuinfo: str | None = None) -> int | None:
    """The host's TSC frequency in kHz, when the host kernel knows it (``tsc_known_freq``).

    Read from /proc/cpuinfo: with ``constant_tsc`` and ``tsc_known_freq`` its "cpu MHz" is
    the TSC frequency. None on other hosts.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    first = cpuinfo.split("\n\n", 1)[0]
    flags = re.search(r"^flags\s*:(.*)$", first, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", first, re.M)
    if not flags or not mhz:
        return None
    if not {"constant_tsc", "tsc_known_freq"} <= set(flags.group(1).split()):
        return None
    return round(float(mhz.group(1)) * 1000)


def boot_to(guest: Guest, location: str, *, attempts: int = 4, timeout: float = 60.0,
            sentinel: str | None = TSC_CALIBRATION_FAILED, tsc_fallback: bool = True,
            **qemu_args: Any) -> tuple[Qemu, Session, Stop]:
    """Start ``guest`` under QEMU and run to a hardware breakpoint at ``location``.

    Returns the running ``Qemu`` (close it, or use it as a context manager), its session
    and the Stop. If the guest reaches ``sentinel`` first (a failed Linux TSC calibration,
    see the module docstring), the VM is closed and booted again, up to ``attempts`` times;
    ``sentinel=None`` turns that off. After a failed boot, ``tsc_fallback`` adds
    ``tsc_early_khz=`` with the host's TSC frequency (see the module docstring) to the next
    boot's command line. The breakpoint at ``location`` and the VM's guards are left in
    place. On any error the VM is closed, and the error says so.
    """
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        vm = Qemu(guest, **qemu_args)
        try:
            session = vm.session()
            own = _arm_sentinel(session, sentinel)
            target = session.hbreak(location)
            try:
                stop = session.cont(timeout=timeout)
            except TargetTimeout as error:
                console = "\n".join(vm.serial().splitlines()[-10:])
                vm.close()
                where = f" it was at {error.stop}." if error.stop is not None else ""
                raise TargetTimeout(
                    f"boot_to: the guest did not reach {location} within {timeout} s (boot "
                    f"{attempt});{where} boot_to closed the VM. Its console ended with:\n"
                    f"{console}",
                    error.stop,
                ) from None
            except TargetStuck as stuck:
                at = getattr(stuck.stop, "breakpoint", None)
                if sentinel is None or at is None or at.location != sentinel:
                    raise
                serial = [line for line in vm.serial().splitlines() if "tsc:" in line]
                last = TargetStuck(f"boot {attempt}: the guest stopped in {sentinel} "
                                   f"({'; '.join(s.strip() for s in serial[-3:])})", stuck.stop)
                khz = host_tsc_khz() if tsc_fallback else None
                again = "booting again"
                if khz and "tsc_early_khz=" not in guest.cmdline:
                    guest = dataclasses.replace(guest,
                                                cmdline=f"{guest.cmdline} tsc_early_khz={khz}")
                    again += f" with tsc_early_khz={khz} (the host's TSC)"
                warnings.warn(f"{last}; {again}", RuntimeWarning, stacklevel=2)
                vm.close()
                continue
            if own is not None and not own.deleted:
                own.delete()
            if stop.breakpoint is not target:
                vm.close()
                raise TargetTimeout(f"boot_to: the guest stopped at {stop}, not at {location};"
                                    " boot_to closed the VM", stop)
            return vm, session, stop
        except TargetStuck as error:
            vm.close()
            raise TargetStuck(f"{error}\nboot_to closed the VM.", error.stop) from None
        except BaseException:
            vm.close()
            raise
    raise TargetTimeout(f"boot_to: the guest did not reach {location} in {attempts} boots "
                        f"(boot_to closed each VM); the last: {last}")


def _arm_sentinel(session: Session, sentinel: str | None) -> Breakpoint | None:
    """A guard at ``sentinel`` unless the VM armed one there already (then None)."""
    if not sentinel or any(bp.guard and bp.location == sentinel for bp in session.breakpoints()):
        return None
    message = (TSC_CALIBRATION.message() if sentinel == TSC_CALIBRATION.location
               else f"the guest reached {sentinel}, where boot_to was told it gets stuck")
    try:
        return session.guard(sentinel, message)
    except GdbError:
        return None  # not a Linux guest, or no such function: nothing to guard

