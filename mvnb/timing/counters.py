"""Counter preparation: wrapping counters, down-counters and known clock frequencies.

Mirrors what the kernels do before they can compare two clocks: FreeBSD's ``clockcalib``
adds ``tc_counter_mask + 1`` when the reference wraps (sys/kern/subr_clockcalib.c), Linux's
``lapic_cal_handler`` adds ``ACPI_PM_OVRRUN`` to a wrapped 24-bit PM timer and subtracts
LAPIC current counts because the timer counts down (arch/x86/kernel/apic/apic.c), and
NetBSD's ``lapic_delay`` adds ``lapic_tval`` when the periodic LAPIC timer reloads
(sys/arch/x86/x86/lapic.c).  Everything here is vectorised numpy and keeps a pandas index
when given a Series.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ACPI_PM_BITS",
    "ACPI_PM_HZ",
    "HPET_HZ",
    "PIT_BITS",
    "PIT_HZ",
    "QEMU_LAPIC_BUS_HZ",
    "countdown_elapsed",
    "dcr_divisor",
    "elapsed",
    "jiffies_seconds",
    "lapic_timer_hz",
    "to_seconds",
    "unwrap",
]

#: i8254 PIT input clock (Linux ``PIT_TICK_RATE``, FreeBSD ``i8254_freq``).
PIT_HZ = 1_193_182
#: The PIT counts down from a 16-bit reload value (0 means 65536).
PIT_BITS = 16
#: QEMU's HPET: one tick per 10 ns (hw/timer/hpet.c, ``HPET_CLK_PERIOD`` 10 ns).
HPET_HZ = 100_000_000
#: ACPI PM timer (Linux ``PMTMR_TICKS_PER_SEC``).
ACPI_PM_HZ = 3_579_545
#: The ACPI PM timer is 24 bits wide unless FADT says 32 (Linux ``ACPI_PM_MASK``).
ACPI_PM_BITS = 24
#: QEMU under TCG advances the LAPIC timer one bus tick per virtual nanosecond before the
#: divider (hw/intc/apic_common.c); see shared/facts/x86-apic.md.
QEMU_LAPIC_BUS_HZ = 1_000_000_000

# Divide Configuration Register bits 3,1,0 → divisor (Intel SDM Vol. 3A, "Divide
# Configuration Register", Chapter 10 in editions before 2023, Chapter 11 after).
_DCR_DIVISORS = {0x0: 2, 0x1: 4, 0x2: 8, 0x3: 16, 0x8: 32, 0x9: 64, 0xA: 128, 0xB: 1}


def _values(values: Any) -> tuple[np.ndarray, pd.Index | None, str | None]:
    """The raw array of ``values`` plus the Series index and name to put back."""
    if isinstance(values, pd.Series):
        return values.to_numpy(), values.index, values.name
    return np.asarray(values), None, None


def _wrap(result: np.ndarray, index: pd.Index | None, name: str | None) -> Any:
    return pd.Series(result, index=index, name=name) if index is not None else result


def _as_u64(raw: np.ndarray) -> np.ndarray:
    """Counter values as uint64 bit patterns (negative int64 become two's complement)."""
    kind = raw.dtype.kind
    if kind == "u":
        return raw.astype(np.uint64, copy=False)
    if kind == "i":
        return raw.astype(np.int64, copy=False).view(np.uint64)
    if kind == "f":
        if np.isnan(raw).any():
            raise ValueError("counter values contain NaN; drop those rows before unwrapping")
        return raw.astype(np.int64).view(np.uint64)
    return raw.astype(np.uint64)


def unwrap(values: Any, bits: int = 32) -> Any:
    """Undo the wrap-around of an up-counter ``bits`` wide (32, 24 for ACPI PM, 16, 64).

    Each step is taken modulo ``2**bits``, as FreeBSD's ``clockcalib`` does by adding
    ``tc_counter_mask + 1`` (sys/kern/subr_clockcalib.c), so the result starts at the first
    value and never decreases.  A counter that really went backwards by less than a wrap
    shows up as an almost full wrap: ``diagnose`` flags such steps.  Returns int64 (a
    Series with the same index when given one).
    """
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be between 1 and 64, not {bits}")
    raw, index, name = _values(values)
    u = _as_u64(raw.ravel())
    if u.size == 0:
        return _wrap(np.zeros(0, dtype=np.int64), index, name)
    mask = np.uint64((1 << bits) - 1)
    steps = np.diff(u) & mask  # uint64 subtraction wraps modulo 2**64 before masking
    out = np.empty(u.size, dtype=np.uint64)
    out[0] = u[0] & mask
    np.cumsum(steps, out=out[1:])
    out[1:] += out[0]
    return _wrap(out.view(np.int64), index, name)


def elapsed(values: Any, bits: int = 32) -> Any:
    """Ticks since the first sample of a wrapping up-counter: ``unwrap(values) - first``."""
    u = unwrap(values, bits)
    return u - (u.iloc[0] if isinstance(u, pd.Series) else u[0]) if len(u) else u


def countdown_elapsed(
    values: Any, *, initial: int | None = None, modulus: int | None = None
) -> Any:
    """Ticks elapsed since the first sample of a down-counter (LAPIC current count, PIT).

    The LAPIC timer counts down from the initial count; in periodic mode it reloads, so
    QEMU's current count cycles through ``initial .. 0`` with period ``initial + 1``
    (hw/intc/apic_common.c ``apic_get_current_count``).  Give ``initial`` for a periodic
    LAPIC timer, ``modulus`` for any other reload period (65536 for a PIT channel loaded
    with 0), or neither for a one-shot timer, which must then never count up (Linux's
    ``calibrate_APIC_clock`` simply subtracts, arch/x86/kernel/apic/apic.c).  Each
    step is ``(previous - current) mod period``; several reloads between two samples
    cannot be seen, so sample faster than one period.
    """
    if initial is not None and modulus is not None:
        raise ValueError("give either initial (periodic LAPIC) or modulus, not both")
    raw, index, name = _values(values)
    v = raw.ravel().astype(np.int64)
    if v.size == 0:
        return _wrap(np.zeros(0, dtype=np.int64), index, name)
    down = v[:-1] - v[1:]
    period = initial + 1 if initial is not None else modulus
    if period is not None:
        if period <= 0:
            raise ValueError(f"the reload period must be positive, not {period}")
        if v.min() < 0 or v.max() >= period:
            raise ValueError(
                f"counts outside 0..{period - 1}: is the initial count ({initial}) right?"
            )
        down %= period
    elif (down < 0).any():
        at = int(np.flatnonzero(down < 0)[0]) + 1
        raise ValueError(
            f"the down-counter went up at sample {at} ({v[at - 1]} → {v[at]}): it was "
            "reloaded; pass initial= (periodic LAPIC timer) or modulus="
        )
    out = np.zeros(v.size, dtype=np.int64)
    np.cumsum(down, out=out[1:])
    return _wrap(out, index, name)


def to_seconds(ticks: Any, hz: float) -> Any:
    """Ticks of a clock running at ``hz`` as seconds (float64), keeping a Series' index."""
    if hz <= 0:
        raise ValueError(f"frequency must be positive, not {hz}")
    raw, index, name = _values(ticks)
    return _wrap(raw.astype(np.float64) / float(hz), index, name)


def jiffies_seconds(jiffies: Any, hz: int) -> Any:
    """Jiffies (ticks of the kernel's ``HZ``) since the first sample, as seconds.

    ``jiffies`` is an unsigned long that Linux starts at ``INITIAL_JIFFIES`` (five minutes
    before wrapping 32 bits) so wraps happen early; it is unwrapped as 64-bit here.
    """
    return to_seconds(elapsed(jiffies, bits=64), hz)


def dcr_divisor(dcr: int) -> int:
    """The LAPIC timer divisor encoded in the Divide Configuration Register (bits 3, 1, 0).

    Intel SDM Vol. 3A, "Divide Configuration Register" (Chapter 10 in editions before 2023,
    Chapter 11 after): 0x0 → 2 … 0xA → 128, 0xB → 1; bit 2 and bits above 3 are ignored.
    """
    return _DCR_DIVISORS[int(dcr) & 0xB]


def lapic_timer_hz(divide: int = 16, bus_hz: float = QEMU_LAPIC_BUS_HZ) -> float:
    """Rate of the LAPIC current count: the bus (or crystal) clock over the divisor.

    Linux programs divide-by-16 (``APIC_DIVISOR``), FreeBSD and NetBSD divide-by-1 or
    the smallest divisor that fits; QEMU's bus is 1 GHz under TCG.
    """
    if divide not in _DCR_DIVISORS.values():
        raise ValueError(f"the LAPIC divides by 1, 2, 4, …, 128, not {divide}")
    return bus_hz / divide
