"""What Linux 6.1 printed about its LAPIC timer calibration, read from the serial console.

With ``apic=verbose`` on the kernel command line, ``calibrate_APIC_clock`` and
``calibrate_by_pmtimer`` (arch/x86/kernel/apic/apic.c) print what they measured::

    Using local APIC timer interrupts.
    calibrating APIC timer ...
    ... lapic delta = 6249164
    ... PM-Timer delta = 357322              (CONFIG_X86_PM_TIMER; 0 without a PM timer)
    ... PM-Timer result ok                   (or the three "not consistent" lines)
    ..... delta 6249164
    ..... mult: 268399347
    ..... calibration result: 3999464
    ..... CPU clock speed is 2596.0123 MHz.
    ..... host bus clock speed is 999.0464 MHz.

The two "speed" lines print ``x / (1000000 / HZ)`` and ``x % (1000000 / HZ)`` with
``%04ld``: the digits after the point are a remainder, not a decimal fraction, so they are
kept as the two integers printed. :func:`linux_apic_verbose` reads the first calibration
in the text (the boot CPU's) into a :class:`LinuxApicVerbose` record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

__all__ = ["LinuxApicVerbose", "linux_apic_verbose"]

_STAMP = re.compile(r"^(?:<\d+>)?\[\s*\d+\.\d+\]\s?")
_INT = r"(-?\d+)"
_PATTERNS: dict[str, re.Pattern[str]] = {
    "lapic_delta": re.compile(rf"^\.\.\. lapic delta = {_INT}$"),
    "pm_delta": re.compile(rf"^\.\.\. PM-Timer delta = {_INT}$"),
    "pm_ms": re.compile(rf"^APIC calibration not consistent with PM-Timer: {_INT}ms "
                        r"instead of 100ms$"),
    "delta_adjusted": re.compile(rf"^APIC delta adjusted to PM-Timer: {_INT} \({_INT}\)$"),
    "tsc_adjusted": re.compile(rf"^TSC delta adjusted to PM-Timer: {_INT} \({_INT}\)$"),
    "delta": re.compile(rf"^\.\.\.\.\. delta {_INT}$"),
    "mult": re.compile(rf"^\.\.\.\.\. mult: {_INT}$"),
    "calibration_result": re.compile(rf"^\.\.\.\.\. calibration result: {_INT}$"),
    "cpu_clock": re.compile(rf"^\.\.\.\.\. CPU clock speed is {_INT}\.(\d+) MHz\.$"),
    "bus_clock": re.compile(rf"^\.\.\.\.\. host bus clock speed is {_INT}\.(\d+) MHz\.$"),
    "already": re.compile(rf"^lapic timer already calibrated {_INT}$"),
    "jiffies_delta": re.compile(rf"^\.\.\. jiffies delta = {_INT}$"),
}
_FLAGS = {
    "pm_result_ok": "... PM-Timer result ok",
    "too_slow": "APIC frequency too slow, disabling apic timer",
    "verified": "... jiffies result ok",
    "verification_failed": "APIC timer disabled due to verification failure",
}


@dataclass(frozen=True)
class LinuxApicVerbose:
    """The kernel's own calibration printout. A field is None when the kernel did not print
    it (``pm_delta`` without CONFIG_X86_PM_TIMER, the adjusted deltas when the PM timer
    agreed, the speeds when the calibration stopped early)."""

    lapic_delta: int | None = None
    pm_delta: int | None = None
    pm_result_ok: bool = False
    pm_ms: int | None = None
    delta_adjusted: tuple[int, int] | None = None  # (adjusted, original)
    tsc_adjusted: tuple[int, int] | None = None
    delta: int | None = None
    mult: int | None = None
    calibration_result: int | None = None
    cpu_clock: tuple[int, int] | None = None  # printed as whole.remainder MHz
    bus_clock: tuple[int, int] | None = None
    already: int | None = None  # "lapic timer already calibrated N": nothing was measured
    too_slow: bool = False
    jiffies_delta: int | None = None
    verified: bool = False
    verification_failed: bool = False
    lines: tuple[str, ...] = field(default=(), repr=False)

    def per_tick(self, what: str, hz: int) -> int | None:
        """A "speed" line back as the integer the kernel divided: ``cpu_clock`` gives TSC
        counts per tick (``deltatsc / LAPIC_CAL_LOOPS``), ``bus_clock`` the calibration
        result, for the HZ the kernel was built with."""
        printed = {"cpu_clock": self.cpu_clock, "bus_clock": self.bus_clock}[what]
        if printed is None:
            return None
        whole, remainder = printed
        return whole * (1_000_000 // hz) + remainder

    def __str__(self) -> str:
        return "\n".join(self.lines)


def linux_apic_verbose(serial_text: str) -> LinuxApicVerbose:
    """Read the ``apic=verbose`` calibration lines of a boot log (``vm.serial()``).

    Raises ValueError when the text holds none: boot the guest with ``apic=verbose`` on
    its command line (``dataclasses.replace(guest, cmdline=guest.cmdline + " apic=verbose")``),
    and let it run past ``calibrate_APIC_clock``.
    """
    values: dict[str, object] = {}
    lines: list[str] = []
    started = False
    for raw in serial_text.splitlines():
        line = _STAMP.sub("", raw.strip("\r\n")).rstrip()
        if line == "calibrating APIC timer ...":
            if started:
                break  # a second calibration (a later CPU): keep the boot CPU's
            started = True
            lines.append(line)
            continue
        matched = False
        for name, pattern in _PATTERNS.items():
            found = pattern.match(line)
            if found and name not in values:
                groups = tuple(int(g) for g in found.groups())
                values[name] = groups[0] if len(groups) == 1 else groups
                matched = True
                break
        for name, text in _FLAGS.items():
            if line == text:
                values[name] = matched = True
        if matched:
            lines.append(line)
    if not values:
        raise ValueError(
            "no apic=verbose calibration lines in this text: boot the guest with apic=verbose "
            "on its command line (dataclasses.replace(guest, cmdline=guest.cmdline + "
            "' apic=verbose')) and let it run past calibrate_APIC_clock")
    known = {f.name for f in fields(LinuxApicVerbose)}
    return LinuxApicVerbose(**{k: v for k, v in values.items() if k in known},  # type: ignore[arg-type]
                            lines=tuple(lines))
