"""The guest's time-stamp counter, read by executing an ``rdtsc`` from kernel text.

GDB sees no TSC register: the value exists only when the guest executes ``rdtsc`` (0F 31,
Intel SDM Vol. 2B, RDTSC: EDX:EAX ← TSC). ``TSC.read(session)`` does what a person does by
hand: save rax, rdx, rsp and rip, point rip at an ``rdtsc`` in kernel text (Linux:
``native_sched_clock`` in arch/x86/kernel/tsc.c reads it with a plain ``rdtsc()``, see
arch/x86/include/asm/msr.h), single-step it, read EDX:EAX, and restore. QEMU's single step
masks interrupts and timers (``qqemu.sstepbits`` default 0x7), so only that instruction runs.

The way back avoids a GDB trap: after ``set $pc`` to a breakpoint's address, GDB reports
that breakpoint again on the next continue without the guest running (it steps over a
breakpoint only when the pc equals its last *stop* pc; shared/facts/x86-apic.md). So rip is
not set back: the saved rip is pushed below rsp (x86-64 kernels are built with
``-mno-red-zone``, so nothing lives there) and a ``ret`` in kernel text
(``__x86_return_thunk``, arch/x86/lib/retpoline.S) is single-stepped, with the breakpoints
at the saved rip disabled for that step. GDB then has really stopped at the saved rip, rsp
is back, and the next continue steps over the breakpoint as usual.

The register probes of issue 3 (``cpuid``/``rdmsr`` in mvnb/probes.py) do the same
save-point-step-restore dance; this small reader is kept apart until they share one.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import Error
from ..mi import quote

if TYPE_CHECKING:
    from ..session import Session
    from ..stop import Stop

__all__ = ["RDTSC", "RET", "TSC", "TscReader", "find_instruction"]

#: The instructions' bytes (Intel SDM Vol. 2B, RDTSC and RET near).
RDTSC = b"\x0f\x31"
RET = b"\xc3"
#: Kernel functions that hold a plain ``rdtsc`` (Linux arch/x86/kernel/tsc.c, lib/delay.c).
RDTSC_IN = ("native_sched_clock", "delay_tsc", "native_calibrate_cpu_early")
#: ... and a plain ``ret`` (arch/x86/lib/retpoline.S; the end of native_sched_clock).
RET_IN = ("__x86_return_thunk", "native_sched_clock")
_MASK32 = 0xFFFFFFFF

_found: weakref.WeakKeyDictionary[Session, tuple[int, int]] = weakref.WeakKeyDictionary()


def find_instruction(session: Session, mnemonic: str, code: bytes,
                     functions: Iterable[str]) -> int:
    """The address of a ``mnemonic`` instruction in the first 48 of ``functions``.

    Checks ``code`` in guest memory: text patched at boot (alternatives) must still hold it.
    """
    tried = []
    pattern = re.compile(r"^(?:=>)?\s*(0x[0-9a-f]+)[^:]*:\s+" + mnemonic + r"q?\s*$", re.M)
    for function in functions:
        try:
            text = session.console(f"x/48i {function}", timeout=10)
        except Error as error:
            tried.append(f"{function}: {error}")
            continue
        for match in pattern.finditer(text):
            address = int(match.group(1), 16)
            try:
                if session.read_memory(address, len(code)) == code:
                    return address
            except Error as error:
                tried.append(f"{function}: {error}")
        tried.append(f"{function}: no {mnemonic}")
    raise Error(f"found no {mnemonic} instruction in kernel text (" + "; ".join(tried) + ")")


class TscReader:
    """A sampler column source and a one-off reader for the guest's TSC.

    ``TSC.read(session)`` returns the 64-bit counter. ``rdtsc`` and ``ret`` pin the
    instructions to execute (else found once per session in kernel text).
    """

    name = "TSC"

    def __init__(self, rdtsc: int | None = None, ret: int | None = None) -> None:
        self.rdtsc = rdtsc
        self.ret = ret

    def locate(self, session: Session) -> tuple[int, int]:
        """The ``rdtsc`` and the ``ret`` this reader executes in ``session``'s guest."""
        found = _found.get(session)
        if found is None:
            rdtsc = self.rdtsc or find_instruction(session, "rdtsc", RDTSC, RDTSC_IN)
            ret = self.ret or find_instruction(session, "ret", RET, RET_IN)
            found = _found[session] = (rdtsc, ret)
        return (self.rdtsc or found[0], self.ret or found[1])

    def read(self, session: Session, *, quiet: Iterable[int] = (),
             timeout: float = 10.0) -> int:
        """Execute one ``rdtsc`` in the stopped guest and return EDX:EAX.

        Registers and GDB's idea of where it stopped are as before. ``quiet`` names
        breakpoints (by number) to keep disabled for the step back, besides the session's
        own at the current pc.
        """
        rdtsc, ret = self.locate(session)
        pc, sp, rax, rdx = (int(v) & (2**64 - 1) for v in
                            session.eval_many(["$pc", "$rsp", "$rax", "$rdx"]))
        value: int | None = None
        try:
            session.set("$pc", rdtsc)
            stop = _step_from(session, rdtsc, timeout)
            lo, hi = (int(v) for v in session.eval_many(["$rax", "$rdx"]))
            if stop.frame is None or stop.frame.address == rdtsc + len(RDTSC):
                value = ((hi & _MASK32) << 32) | (lo & _MASK32)
        finally:
            self._back(session, pc, sp, rax, rdx, ret, quiet, timeout)
        if value is None:
            raise Error(f"the rdtsc at {rdtsc:#x} did not complete in one step ({stop}); "
                        "registers were restored")
        return value

    @staticmethod
    def _back(session: Session, pc: int, sp: int, rax: int, rdx: int, ret: int,
              quiet: Iterable[int], timeout: float) -> None:
        """Restore rax and rdx, and return to ``pc`` through a ``ret`` (see the module doc)."""
        session._mi("-data-evaluate-expression " + quote(
            f"$rax = {rax:#x}, $rdx = {rdx:#x}, *(unsigned long *){sp - 8:#x} = {pc:#x}, "
            f"$rsp = {sp - 8:#x}, $pc = {ret:#x}"), timeout)
        numbers = {int(n) for n in quiet}
        numbers |= {bp.number for bp in session.breakpoints()
                    if bp.enabled and bp.address == pc}
        listed = " ".join(str(n) for n in sorted(numbers))
        if listed:
            session._mi(f"-break-disable {listed}", timeout)
        try:
            stop = _step_from(session, ret, timeout)
        finally:
            if listed:
                session._mi(f"-break-enable {listed}", timeout)
        here = stop.frame.address if stop.frame is not None else None
        now_sp = int(session.eval_many(["$rsp"])[0]) & (2**64 - 1)
        if here != pc or now_sp != sp:
            session._mi("-data-evaluate-expression "
                        + quote(f"$rsp = {sp:#x}, $pc = {pc:#x}"), timeout)
            raise Error(f"stepping the ret at {ret:#x} landed at {here:#x} (rsp {now_sp:#x}), "
                        f"not at {pc:#x} (rsp {sp:#x}); registers were set back by hand")

    def __repr__(self) -> str:
        return "<mvnb.timing.TSC reader: rdtsc executed in the guest>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TscReader) and (other.rdtsc, other.ret) == (self.rdtsc,
                                                                             self.ret)

    def __hash__(self) -> int:
        return hash(("TscReader", self.rdtsc, self.ret))


def _step_from(session: Session, address: int, timeout: float, tries: int = 3) -> Stop:
    """Single-step the instruction at ``address`` (the pc); step again when the stop came
    back at the same pc without it having run. Seen now and then (QEMU 7.2 TCG, GDB 13.1)
    on the first step after a collector breakpoint was created at the previous stop pc."""
    stop = session.stepi(timeout=timeout)
    for _ in range(tries - 1):
        if stop.frame is None or stop.frame.address != address:
            break
        stop = session.stepi(timeout=timeout)
    return stop


#: The guest's TSC as a ``Session.sample`` column source.
TSC = TscReader()
