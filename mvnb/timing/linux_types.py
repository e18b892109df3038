"""Small pieces shared by the Linux calibration replay modules: C arithmetic, the check
record, the handler-call picking (arch/x86/kernel/apic/apic.c, include/linux/clocksource.h).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["APIC_DIVISOR", "U32", "U64", "ApicCheck", "Outcome", "cdiv", "hz2mult", "pick",
           "signed"]

#: Linux programs the LAPIC timer to divide by 16 (``APIC_DIVISOR``).
APIC_DIVISOR = 16
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1

Outcome = Literal["passed", "failed", "skipped", "not observed"]


def cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def signed(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def hz2mult(hz: int, shift: int) -> int:
    """``clocksource_hz2mult`` (include/linux/clocksource.h)."""
    return (((10**9) << shift) + hz // 2) // hz & U32


@dataclass(frozen=True)
class ApicCheck:
    """One of the kernel's checks: its outcome, the number it looked at, and why."""

    name: str
    outcome: Outcome
    value: Any
    explanation: str



def pick(positions: np.ndarray, loops: np.ndarray, want: int, what: str) -> int:
    hit = positions[loops[positions] == want]
    if hit.size == 0:
        raise ValueError(
            f"no sample with lapic_cal_loops == {want} in the {what} round; the handler "
            f"keeps its readings at 0 and LAPIC_CAL_LOOPS, so sample every call from -1"
        )
    return int(hit[0])
