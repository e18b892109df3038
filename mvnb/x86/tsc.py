"""The guest's time-stamp counter, read by executing an ``rdtsc`` from kernel text.

GDB sees no TSC register: the value exists only when the guest executes ``rdtsc`` (0F 31,
Intel SDM Vol. 2B, RDTSC: EDX:EAX ← TSC). ``s.x86.tsc()`` runs one (Linux:
``native_sched_clock`` in arch/x86/kernel/tsc.c reads it with a plain ``rdtsc()``, see
arch/x86/include/asm/msr.h) through the probe engine (:mod:`mvnb.x86.probe`): every
register is saved and restored, and the step is invisible to GDB's run control, so the next
continue steps over the breakpoint where the guest stopped as usual. QEMU's single step
masks interrupts and timers (``qqemu.sstepbits`` default 0x7), so only that instruction
runs. ``TSC`` is the same reader as a ``Session.sample`` column source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .observer import measure_observer
from .probe import Instruction

if TYPE_CHECKING:
    from ..gdb import Session

__all__ = ["RDTSC", "TSC", "TscReader"]

#: Linux: native_sched_clock (arch/x86/kernel/tsc.c), delay_tsc (arch/x86/lib/delay.c).
RDTSC = Instruction("rdtsc", b"\x0f\x31",
                    ("native_sched_clock", "delay_tsc", "native_calibrate_cpu_early"))


class TscReader:
    """A ``Session.sample`` column source for the guest's TSC (an ``rdtsc`` executed in the
    guest at each stop). ``rdtsc`` pins the instruction to execute (else one is found once
    per session in kernel text)."""

    name = "TSC"
    expression = None
    steps = 1  # guest instructions one read executes
    cost = ("a stop at every hit, then one rdtsc executed in the guest (about ten MI round "
            "trips; QEMU masks interrupts during the step). The step resumes the guest for "
            "one instruction, which moves its clocks like a stop does (under TCG some "
            "thousands of LAPIC counts: attrs['observer']['lapic_per_probe'])")
    observer = staticmethod(measure_observer)

    def __init__(self, rdtsc: int | None = None) -> None:
        self.rdtsc = rdtsc

    def prepare(self, session: Session) -> None:
        """Find the ``rdtsc`` before any breakpoint is placed."""
        if self.rdtsc is None:
            session.x86.prober.site(RDTSC)  # type: ignore[attr-defined]

    def read(self, session: Session, cache: dict[str, Any] | None = None) -> int:
        """Execute one ``rdtsc`` in the stopped guest and return EDX:EAX."""
        return session.x86.tsc(address=self.rdtsc)  # type: ignore[attr-defined]

    def __str__(self) -> str:
        return "tsc" if self.rdtsc is None else f"tsc@{self.rdtsc:#x}"

    def __repr__(self) -> str:
        return "<mvnb.x86.TSC reader: rdtsc executed in the guest>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TscReader) and other.rdtsc == self.rdtsc

    def __hash__(self) -> int:
        return hash(("TscReader", self.rdtsc))


#: The guest's TSC as a ``Session.sample`` column source.
TSC = TscReader()
