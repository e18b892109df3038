"""Boot a guest to a location, past a Linux TSC calibration that failed.

Debian's 6.1 kernel on QEMU ``microvm`` under TCG calibrates its TSC against the PIT
(``quick_pit_calibrate``). On a host that preempts the vCPU thread the check fails now and
then ("tsc: Unable to calibrate against PIT"; microvm offers no HPET or PM timer to fall
back on), the TSC is marked unstable, and the kernel then waits in
``calibrate_delay_converge`` for a jiffies tick that the PIT does not deliver at that point
of the microvm boot: it never reaches the LAPIC calibration. Seen in about half of the boots
on a 2-core machine (2026-11). ``boot_to`` stops at ``calibrate_delay_converge`` when that
happens, says so, and boots again.
"""

from __future__ import annotations

import warnings
from typing import Any

from .errors import GdbError, TargetTimeout
from .guests import Guest
from .qemu import Qemu
from .session import Session
from .stop import Stop

__all__ = ["TSC_CALIBRATION_FAILED", "boot_to"]

#: Where a Linux guest waits for ever once its TSC calibration failed on microvm.
TSC_CALIBRATION_FAILED = "calibrate_delay_converge"


def boot_to(guest: Guest, location: str, *, attempts: int = 8, timeout: float = 60.0,
            sentinel: str | None = TSC_CALIBRATION_FAILED,
            **qemu_args: Any) -> tuple[Qemu, Session, Stop]:
    """Start ``guest`` under QEMU and run to a hardware breakpoint at ``location``.

    Returns the running ``Qemu`` (close it, or use it as a context manager), its session
    and the Stop. If the guest reaches ``sentinel`` first (a failed Linux TSC calibration,
    see the module docstring), the VM is closed and booted again, up to ``attempts`` times;
    ``sentinel=None`` turns that off. The breakpoint at ``location`` is left in place.
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
                warnings.warn(f"{last}; booting again", RuntimeWarning, stacklevel=2)
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
