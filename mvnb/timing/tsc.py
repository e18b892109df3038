"""The guest's time-stamp counter, read by executing an ``rdtsc`` from kernel text.

GDB sees no TSC register: the value exists only when the guest executes ``rdtsc`` (0F 31,
Intel SDM Vol. 2B, RDTSC: EDX:EAX ← TSC). ``TSC.read(session)`` runs one (Linux:
``native_sched_clock`` in arch/x86/kernel/tsc.c reads it with a plain ``rdtsc()``, see
arch/x86/include/asm/msr.h) through the same probe engine as ``Session.cpuid`` and
``Session.rdmsr`` (:mod:`mvnb._probe`): every register is saved and restored, and the step
is invisible to GDB's run control, so the next continue steps over the breakpoint where the
guest stopped as usual. QEMU's single step masks interrupts and timers (``qqemu.sstepbits``
default 0x7), so only that instruction runs.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._probe import Instruction, execute, find

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["RDTSC", "TSC", "TscReader"]

#: Linux: native_sched_clock (arch/x86/kernel/tsc.c), delay_tsc (arch/x86/lib/delay.c).
RDTSC = Instruction("rdtsc", b"\x0f\x31",
                    ("native_sched_clock", "delay_tsc", "native_calibrate_cpu_early"))
_MASK32 = 0xFFFFFFFF

_found: weakref.WeakKeyDictionary[Session, int] = weakref.WeakKeyDictionary()


class TscReader:
    """A sampler column source and a one-off reader for the guest's TSC.

    ``TSC.read(session)`` returns the 64-bit counter. ``rdtsc`` pins the instruction to
    execute (else one is found once per session in kernel text).
    """

    name = "TSC"

    def __init__(self, rdtsc: int | None = None) -> None:
        self.rdtsc = rdtsc

    def locate(self, session: Session) -> int:
        """The address of the ``rdtsc`` this reader executes in ``session``'s guest."""
        if self.rdtsc is not None:
            return self.rdtsc
        if session not in _found:
            _found[session] = find(session, RDTSC)
        return _found[session]

    def read(self, session: Session, *, quiet: Iterable[int] = (),
             timeout: float = 10.0) -> int:
        """Execute one ``rdtsc`` in the stopped guest and return EDX:EAX.

        Registers and GDB's idea of where it stopped are as before. (``quiet`` is accepted
        for callers that name breakpoints to keep quiet; the probe's step is invisible to
        GDB, so no breakpoint needs disabling.)
        """
        after = execute(session, self.locate(session), RDTSC, {}, timeout=timeout)
        return ((after["rdx"] & _MASK32) << 32) | (after["rax"] & _MASK32)

    def __repr__(self) -> str:
        return "<mvnb.timing.TSC reader: rdtsc executed in the guest>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TscReader) and other.rdtsc == self.rdtsc

    def __hash__(self) -> int:
        return hash(("TscReader", self.rdtsc))


#: The guest's TSC as a ``Session.sample`` column source.
TSC = TscReader()
