"""Boot a guest to a location, past a Linux TSC calibration that failed.

Debian's 6.1 kernel on QEMU ``microvm`` under TCG calibrates its TSC against the PIT
(``quick_pit_calibrate``, arch/x86/kernel/tsc.c). The check needs each PIT read to take a
few microseconds of host time; on a busy host it fails now and then ("tsc: Unable to
calibrate against PIT"; microvm offers no HPET or PM timer to fall back on), the TSC is
marked unstable, and the kernel then waits in ``calibrate_delay_converge`` for a jiffies
tick that the PIT does not deliver at that point of a microvm boot: it never reaches the
LAPIC calibration. Seen in every one of 32 free-running boots on a 2-core host at a load
average of 6-9 (``data/tsc_trap.csv``, QEMU 7.2 and 10.0), in about half on a quieter one,
and never under ``icount`` (2026-11).

``boot_to`` stops at ``calibrate_delay_converge`` when that happens and boots again. The
next boot passes ``tsc_early_khz=<host TSC kHz>`` when the host's TSC frequency can be
read (under TCG the guest's TSC is the host's, ``cpu_get_host_ticks``; the source and how
far to trust it are in :mod:`mvnb.vm.host_clock` and in the warning), which skips only the
TSC measurement; the LAPIC calibration still runs as before, against that TSC.

A Linux guest booted without ``nokaslr`` may run at a KASLR slide from its symbols, and
then no breakpoint trips. ``boot_to`` watches the console of such a guest: once the kernel
prints :data:`KERNEL_RUNNING` and the breakpoint has not tripped, it interrupts the guest,
runs ``Session.check_symbols()`` and raises :class:`~mvnb.errors.SymbolMismatch` naming
the slide (or, with ``fix_symbols=True``, reloads the symbols there and goes on), seconds
into the boot instead of at the timeout.
"""

from __future__ import annotations

import dataclasses
import re
import time
import warnings
from typing import Any

from ..errors import Error, GdbError, SymbolMismatch, TargetStuck, TargetTimeout
from ..gdb import Breakpoint, Session, Stop
from ..gdb.elffile import open_elf
from ..gdb.symbols import format_offset, timeout_note
from .guest import Guest
from .host_clock import HostTsc, host_tsc, host_tsc_khz
from .qemu import Qemu
from .traps import TSC_CALIBRATION

__all__ = ["KERNEL_RUNNING", "TSC_CALIBRATION_FAILED", "boot_to", "fallback_note", "host_tsc",
           "host_tsc_khz"]

#: Where a Linux guest waits for ever once its TSC calibration failed on microvm.
TSC_CALIBRATION_FAILED = TSC_CALIBRATION.location
#: A console line that shows a Linux kernel runs: its banner, which the serial console
#: prints when it registers (``console_init`` in ``start_kernel``, init/main.c), after
#: ``setup_arch`` calibrated the TSC. A later line will not do: "Calibrating delay loop..."
#: stays in the log buffer, unprinted, while ``calibrate_delay_converge`` waits for ever.
KERNEL_RUNNING = r"Linux version \S+"
_SLICE = 0.25  # how long each wait for the stop lasts before the console is read again


def fallback_note(found: HostTsc | None) -> str:
    """What boot_to says about the ``tsc_early_khz=`` it adds: the value, its source, its trust."""
    if found is None:
        return ("the host's TSC rate is unknown (no CPUID leaf 0x15, no readable kernel log, "
                "and /proc/cpuinfo's \"cpu MHz\" is no TSC rate here), so no tsc_early_khz")
    return f"tsc_early_khz={found.khz}: the host's TSC rate from {found.source} ({found.note})"


def boot_to(guest: Guest, location: str, *, attempts: int = 4, timeout: float = 60.0,
            sentinel: str | None = TSC_CALIBRATION_FAILED, tsc_fallback: bool = True,
            fix_symbols: bool = False, **qemu_args: Any) -> tuple[Qemu, Session, Stop]:
    """Start ``guest`` under QEMU and run to a hardware breakpoint at ``location``.

    Returns the running ``Qemu`` (close it, or use it as a context manager), its session
    and the Stop. If the guest reaches ``sentinel`` first (a failed Linux TSC calibration,
    see the module docstring), the VM is closed and booted again, up to ``attempts`` times;
    ``sentinel=None`` turns that off. After a failed boot, ``tsc_fallback`` adds
    ``tsc_early_khz=`` with the host's TSC frequency (see the module docstring) to the next
    boot's command line. The breakpoint at ``location`` and the VM's guards are left in
    place. On any error the VM is closed, and the error says so.

    A Linux guest without ``nokaslr`` is checked once its console shows it runs (see the
    module docstring): SymbolMismatch names the slide, or ``fix_symbols=True`` reloads the
    symbols at it. A run that times out says what the symbol check found.
    """
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        vm = Qemu(guest, **qemu_args)
        try:
            session = vm.session()
            own = _arm_sentinel(session, sentinel)
            target = session.hbreak(location)
            try:
                stop = _run(vm, session, guest, location, timeout, fix_symbols, sentinel)
                stuck = sentinel is not None and _in(stop, sentinel)
            except TargetTimeout as error:
                console = "\n".join(vm.serial().splitlines()[-10:])
                vm.close()
                where = f" it was at {error.stop}." if error.stop is not None else ""
                # what the session found out (the symbol check), without its "usable" claim
                found = str(error).partition("The session is usable.")[2]
                raise TargetTimeout(
                    f"boot_to: the guest did not reach {location} within {timeout} s (boot "
                    f"{attempt});{where} boot_to closed the VM.{found}\nIts console ended "
                    f"with:\n{console}",
                    error.stop,
                ) from None
            except TargetStuck as error:
                at = getattr(error.stop, "breakpoint", None)
                if sentinel is None or at is None or at.location != sentinel:
                    raise
                stop, stuck = error.stop, True
            if stuck:
                serial = [line for line in vm.serial().splitlines() if "tsc:" in line]
                last = TargetStuck(f"boot {attempt}: the guest stopped in {sentinel} "
                                   f"({'; '.join(s.strip() for s in serial[-3:])})", stop)
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


def _in(stop: Stop | None, function: str) -> bool:
    return stop is not None and stop.frame is not None and stop.frame.function == function


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


def _may_slide(guest: Guest) -> bool:
    """A Linux guest (its symbols have ``linux_banner``) booted without ``nokaslr``, with a
    console to watch."""
    words = guest.full_cmdline.split()
    if guest.symbols is None or "nokaslr" in words or not any(
            w.startswith("console=") for w in words):
        return False
    try:
        return open_elf(guest.symbols).symbol("linux_banner") is not None
    except Error:
        return False


def _run(vm: Qemu, session: Session, guest: Guest, location: str, timeout: float,
         fix_symbols: bool, sentinel: str | None) -> Stop:
    """Continue to the breakpoint; for a guest that may slide, check the symbols as soon as
    the console shows the kernel runs. A guest found already inside ``sentinel`` once the
    symbols are fixed is returned as it stands (its breakpoint there cannot trip now)."""
    if not _may_slide(guest):
        return session.cont(timeout=timeout)
    deadline = time.monotonic() + timeout
    session.cont(wait=False)
    while True:
        stop = session.wait_for_stop(max(0.0, min(_SLICE, deadline - time.monotonic())))
        if stop is not None:
            return stop
        if re.search(KERNEL_RUNNING, vm.serial()):
            break
        if time.monotonic() >= deadline:
            stop = session.interrupt()
            raise TargetTimeout(f"continue: the target did not stop within {timeout} s; it "
                                f"was interrupted {stop}." + timeout_note(session), stop)
    stop = session.interrupt() or session.wait_for_stop(0)
    if stop is not None and stop.reason != "signal-received":
        return stop  # it stopped by itself just before the interrupt
    check = session.check_symbols()
    if check.ok is False and check.offset is not None:
        if not fix_symbols:
            raise SymbolMismatch(
                f"the breakpoint at {location} cannot trip: {check}\n"
                "boot_to(..., fix_symbols=True) reloads the symbols at that offset", check)
        check.apply()
        warnings.warn(f"the kernel runs at {format_offset(check.offset)} from its symbols "
                      f"({check.kind}); they were reloaded there", RuntimeWarning, stacklevel=3)
        stop = dataclasses.replace(stop, frame=session.frame()) if stop is not None else None
        if stop is not None and stop.frame is not None and stop.frame.function == sentinel:
            return stop
    return session.cont(timeout=max(1.0, deadline - time.monotonic()))
