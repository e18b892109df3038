"""The local APIC of a live guest: snapshots from QEMU's monitor, and the timer registers
as ``Session.sample`` column sources.

QEMU's ``info lapic`` (target/i386/cpu-dump.c) prints every LVT, the timer, SVR, ISR and
IRR of the selected vCPU; :class:`mvnb.regs.LapicSnapshot` parses it (Intel SDM Vol. 3A,
Order Number 253668-068US, Chapter 10). Reading it costs one monitor round trip with the
guest stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..regs.lapic import parse_info_lapic
from .observer import measure_observer

if TYPE_CHECKING:
    from ..gdb import Session

__all__ = ["LAPIC_TIMER_REGISTERS", "TIMER_CCR", "TIMER_DCR", "TIMER_ICR", "LapicColumn"]

#: LAPIC timer registers ``info lapic`` shows; values are 32-bit (SDM Vol. 3A, 10.5.4).
LAPIC_TIMER_REGISTERS = ("TIMER_CCR", "TIMER_ICR", "TIMER_DCR")
_U32 = 0xFFFF_FFFF


class LapicColumn:
    """A LAPIC register as a ``Session.sample`` column source, read from ``info lapic`` at
    each stop (one monitor read serves every LAPIC column of a row)."""

    expression = None
    steps = 0  # guest instructions one read executes
    cost = ("a stop at every hit, then one QEMU monitor round trip ('info lapic') shared by "
            "the row's LAPIC columns; the guest does not run for it, so the value is the "
            "one the stop froze")
    observer = staticmethod(measure_observer)

    def __init__(self, name: str) -> None:
        if name not in LAPIC_TIMER_REGISTERS:
            raise ValueError(f"{name} is not one of {', '.join(LAPIC_TIMER_REGISTERS)}")
        self.name = name

    def prepare(self, session: Session) -> None:
        pass

    def read(self, session: Session, cache: dict[str, Any]) -> int:
        if "info lapic" not in cache:
            cache["info lapic"] = parse_info_lapic(session.monitor("info lapic"))
        return cache["info lapic"][self.name] & _U32

    def __str__(self) -> str:
        return f"lapic:{self.name}"

    def __repr__(self) -> str:
        return f"<mvnb.x86.{self.name}: the LAPIC register from QEMU's info lapic>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LapicColumn) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("LapicColumn", self.name))


#: The LAPIC timer's current count (counts down), initial count and divide configuration.
TIMER_CCR = LapicColumn("TIMER_CCR")
TIMER_ICR = LapicColumn("TIMER_ICR")
TIMER_DCR = LapicColumn("TIMER_DCR")
