"""Places a guest is known to wait in for ever on a given machine, and what to do instead.

A ``Qemu`` arms a guard (a hardware breakpoint, ``Session.guard``) at each trap that
applies to its guest and machine, so a run that falls in stops at once with
``TargetStuck`` naming the cause and the remedy, instead of running into its timeout.

The one known so far: Debian's 6.1 kernels on QEMU ``microvm`` under TCG calibrate their
TSC against the PIT (``quick_pit_calibrate``, arch/x86/kernel/tsc.c); on a busy host that
fails now and then ("tsc: Unable to calibrate against PIT"; microvm has no HPET or PM timer
to fall back on), and ``calibrate_delay()`` (init/calibrate.c) then waits in
``calibrate_delay_converge`` for a jiffies tick that does not come at that point of a
microvm boot. See :mod:`mvnb.vm.boot`, which boots such a guest past it.
"""

from __future__ import annotations

import dataclasses
import re

from .guest import Guest

__all__ = ["TSC_CALIBRATION", "Trap", "known_traps"]


@dataclasses.dataclass(frozen=True)
class Trap:
    """A function the guest never leaves once it got there, why, and what to do instead."""

    location: str
    cause: str
    remedy: str

    def message(self) -> str:
        """The text ``TargetStuck`` carries when the guest stops here."""
        return f"the guest reached {self.location}: {self.cause}. {self.remedy}"


TSC_CALIBRATION = Trap(
    location="calibrate_delay_converge",
    cause=("its TSC calibration against the PIT failed (the console says 'tsc: Unable to "
           "calibrate against PIT'; vm.serial() shows it), and on microvm under TCG Linux "
           "then waits here for a jiffies tick that never comes; it happens on a busy host, "
           "every free-running boot on a loaded 2-core host in a 64-boot sweep, about one in "
           "two on a quieter one"),
    remedy=("Boot with mvnb.boot_to(guest, location), which notices this and boots again "
            "with tsc_early_khz=<the host's TSC kHz> on the command line, or put "
            "tsc_early_khz=<kHz> on the guest's command line yourself "
            "(dataclasses.replace(guest, cmdline=guest.cmdline + ' tsc_early_khz=...'); "
            "mvnb.vm.host_tsc_khz() gives the host's), or use machine='pc'"),
)

# (guest name pattern, machine) -> traps; Debian's guests are named debian-<flavour>-<abi>.
_KNOWN: list[tuple[re.Pattern[str], str, Trap]] = [
    (re.compile(r"^debian-[\w-]*?6\.1\.\d"), "microvm", TSC_CALIBRATION),
]


def known_traps(guest: Guest, machine: str) -> tuple[Trap, ...]:
    """The traps this guest is known to fall into on ``machine`` (QEMU under TCG).

    A command line that already skips the measurement (``tsc_early_khz=``, or ``lpj=``,
    which presets the delay loop) needs no guard.
    """
    words = guest.full_cmdline.split()
    if any(w.startswith(("tsc_early_khz=", "lpj=")) for w in words):
        return ()
    kind = machine.split(",")[0]
    return tuple(trap for pattern, on, trap in _KNOWN
                 if on == kind and pattern.search(guest.name))
