"""Execute one instruction of the guest's own kernel text, then put everything back.

``cpuid`` and ``rdmsr`` cannot be read through a gdb stub (QEMU's exposes no MSRs), but the
guest can run them: point rip at such an instruction in kernel text, set its inputs,
single-step, read the outputs, restore every register. This is what a person does by hand
with ``set $eax = 1; nexti`` (Intel SDM Vol. 2A, Order Number 253666-068US, "CPUID—CPU
Identification"; Vol. 2B, "RDMSR—Read From Model Specific Register").

The step is sent as a raw ``vCont;s`` packet (``maintenance packet``), not as GDB's
``stepi``: GDB only steps over a breakpoint at the resume address when the pc equals the pc
of its last stop, so after a ``stepi`` elsewhere and a restored pc, the next ``continue``
reports the same breakpoint again at once (shared/facts/x86-apic.md). A raw step is
invisible to GDB's run control: its last stop stays where the user stopped, and the next
``continue`` steps over the breakpoint as usual. GDB's register cache is flushed after the
step. An instruction that faults (``rdmsr`` of an MSR the CPU refuses: #GP, Vol. 3A
Section 6.15) lands in the exception handler instead of the next instruction; the
registers and the stack bytes the CPU pushed below rsp (Vol. 3A Section 6.14.2) are put
back and :class:`ProbeFault` is raised.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Error, GdbError, ProbeFault
from ..regs.lapic import parse_info_lapic

if TYPE_CHECKING:
    from ..gdb import Session

__all__ = ["CPUID", "GPRS", "RDMSR", "Instruction", "Prober", "require_kernel"]

#: The registers a probe saves and restores (what cpuid, rdmsr or an exception change).
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
        "r12", "r13", "r14", "r15", "rip", "eflags")
#: x86-64 kernels (Linux, FreeBSD, NetBSD) run in the upper canonical half.
KERNEL_HALF = 0xFFFF_8000_0000_0000
#: Bytes below rsp saved and put back: an exception frame is 48 bytes (Vol. 3A Fig. 6-9).
STACK_GUARD = 128
_TEXT_BOUNDS = (("_stext", "_etext"), ("btext", "etext"), ("kernel_text", "etext"))
#: A step that comes back at the same pc without running the instruction is retried. Seen
#: now and then (QEMU 7.2 TCG, GDB 13.1) on the first step after a breakpoint was hit and
#: a new one created at that stop; the instructions probed never jump to themselves.
_STEP_TRIES = 3
_SCAN_CHUNK = 0x10000
_SCAN_LIMIT = 64 << 20


@dataclass(frozen=True)
class Instruction:
    """An instruction to find in kernel text: mnemonic (with operands where they matter, as
    GDB disassembles them: ``in (%dx),%eax``), encoding, functions known to hold it, and
    whether kernel text may be scanned for its bytes (not for a one-byte opcode, whose
    byte is everywhere)."""

    mnemonic: str
    opcode: bytes
    symbols: tuple[str, ...]
    scan: bool = True


#: Linux: verify_cpu (arch/x86/kernel/verify_cpu.S); NetBSD: x86_cpuid2 (cpufunc.S).
CPUID = Instruction("cpuid", b"\x0f\xa2", ("verify_cpu", "x86_cpuid2", "native_cpuid"))
#: Linux: native_read_msr (arch/x86/include/asm/msr.h); NetBSD: rdmsr (cpufunc.S).
RDMSR = Instruction("rdmsr", b"\x0f\x32", ("native_read_msr", "native_read_msr_safe", "rdmsr"))


def require_kernel(s: Session, what: str) -> dict[str, int]:
    """The registers now, after checking the guest is stopped in 64-bit kernel mode.

    CPL is CS bits 1:0 (Vol. 3A Section 5.5); EFER.LMA (bit 10) says long mode is active.
    """
    if s.running:
        raise Error(f"{what}: the target is running; stop it first (interrupt() or a breakpoint)")
    regs = {name: int(value) for name, value in s.registers().items()}
    missing = [name for name in GPRS if name not in regs]
    if missing:
        raise Error(f"{what}: the stub does not show {', '.join(missing)}; is this x86-64?")
    if "efer" in regs and not regs["efer"] >> 10 & 1:
        raise Error(f"{what}: the guest is not in 64-bit mode yet (EFER.LMA is 0); "
                    "run to a point after the kernel has started")
    if regs.get("cs", 0) & 3 or regs["rip"] < KERNEL_HALF:
        raise Error(f"{what}: the guest is not stopped in kernel mode (cs={regs.get('cs', 0):#x}, "
                    f"rip={regs['rip']:#x}); stop it in the kernel, e.g. at a kernel breakpoint")
    return regs


def find(s: Session, insn: Instruction, *, timeout: float | None = 30.0) -> int:
    """The address of ``insn`` in kernel text: in a known function, else by a scan of text."""
    for symbol in insn.symbols:
        try:
            listing = s.mi(f"-data-disassemble -a {symbol} -- 0", timeout=timeout).payload
        except GdbError:
            continue
        for item in listing.get("asm_insns", []):
            if item.get("inst", "").split() == insn.mnemonic.split():
                return int(item["address"], 16)
    for start_sym, end_sym in _TEXT_BOUNDS if insn.scan else ():
        try:
            start, end = s.eval_many([f"(unsigned long)&{start_sym}", f"(unsigned long)&{end_sym}"])
        except GdbError:
            continue
        for base in range(int(start), min(int(end), int(start) + _SCAN_LIMIT), _SCAN_CHUNK):
            data = s.read_memory(base, min(_SCAN_CHUNK + 1, int(end) - base), timeout=timeout)
            at = data.find(insn.opcode)
            if at >= 0:
                return base + at
    scanned = " and scanned the text" if insn.scan else ""
    raise Error(f"no {insn.mnemonic} instruction found in the kernel text (looked in "
                f"{', '.join(insn.symbols)}{scanned}); are the symbols loaded?")


class Prober:
    """Runs single instructions in one session's guest; remembers where it found each
    instruction and how the stub names threads, so a probe costs a few round trips."""

    def __init__(self, session: Session) -> None:
        self.s = session
        #: Each probe's step resumes the guest for one instruction, and that moves its
        #: clocks (under TCG some thousands of LAPIC counts, see mvnb.x86.observer). With
        #: ``track_clocks`` (and QEMU's monitor) every probe reads the LAPIC timer before
        #: and after and appends ``{"insn", "lapic"}`` (counts it moved) to ``moved``.
        self.track_clocks = True
        self.moved: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self._sites: dict[str, int] = {}
        self._multiprocess: bool | None = None
        self._numbers: dict[str, int] | None = None

    def site(self, insn: Instruction, *, timeout: float | None = 30.0) -> int:
        """Where this guest's kernel text holds ``insn`` (looked up once)."""
        if insn.mnemonic not in self._sites:
            require_kernel(self.s, insn.mnemonic)
            self._sites[insn.mnemonic] = find(self.s, insn, timeout=timeout)
        return self._sites[insn.mnemonic]

    def run(self, insn: Instruction, inputs: dict[str, int], *,
            address: int | None = None, timeout: float | None = 30.0) -> dict[str, int]:
        """Run ``insn`` once with ``inputs``; the registers right after it.

        Every register in :data:`GPRS` and the stack below rsp are restored before
        returning or raising; a step that does not end right after the instruction raises
        ProbeFault.
        """
        if address is None:
            address = self.site(insn, timeout=timeout)
        (after,) = self.run_many(address, insn.opcode, [inputs], what=insn.mnemonic,
                                 timeout=timeout)
        if isinstance(after, ProbeFault):
            raise after
        return after

    def run_many(self, address: int, code: bytes, inputs: Sequence[Mapping[str, int]], *,
                 outputs: Sequence[str] | None = None, what: str = "probe",
                 timeout: float | None = 30.0) -> list[dict[str, int] | ProbeFault]:
        """Run the instruction ``code`` at ``address`` once per entry of ``inputs``.

        One result per input: the registers right after the instruction (``outputs`` and
        rip, or every register), or the :class:`ProbeFault` it raised. Registers and the
        stack are saved once, put back after a fault and at the end, so a batch costs about
        four MI round trips per run instead of a dozen.
        """
        s = self.s
        saved = require_kernel(s, what)
        if s.read_memory(address, len(code), timeout=timeout) != code:
            raise Error(f"{what}: the bytes at {address:#x} are no longer "
                        f"{code.hex(' ')} (init text freed, or code patched)")
        stack_at = saved["rsp"] - STACK_GUARD
        stack = s.read_memory(stack_at, STACK_GUARD, timeout=timeout)
        wanted = None if outputs is None else (*outputs, "rip")
        thread = self._thread_id(timeout)
        results: list[dict[str, int] | ProbeFault] = []
        track = self.track_clocks and s.capabilities.monitor
        before = lapic_timer(s) if track else None
        try:
            for one in inputs:
                self.write_registers({**one, "rip": address})
                for _ in range(_STEP_TRIES):
                    self._raw_step(timeout, thread)
                    after = self._read_registers(wanted, timeout)
                    if after["rip"] != address:
                        break
                if after["rip"] == address + len(code):
                    results.append(after)
                    continue
                where = s.console(f"info symbol {after['rip']:#x}", timeout=timeout).strip()
                results.append(ProbeFault(
                    f"{what} at {address:#x} raised an exception: the step landed at "
                    f"{after['rip']:#x} ({where or 'no symbol'}) instead of the next "
                    "instruction. Every register and the stack below rsp were restored.",
                    after["rip"], where))
                self._restore(saved, stack_at, stack)
        finally:
            self._restore(saved, stack_at, stack)
            if before is not None:
                try:
                    moved = lapic_counted(before, lapic_timer(s))
                except Error:
                    moved = None
                self.moved.append({"insn": what, "lapic": moved})
        return results

    def write_registers(self, values: Mapping[str, int]) -> None:
        """Write several registers in one MI command, by number (GDB's flag types too)."""
        numbers = self._register_numbers()
        pairs = " ".join(f"{numbers[name]} {int(value) & (1 << 64) - 1:#x}"
                         for name, value in values.items())
        self.s.mi(f"-data-write-register-values x {pairs}")

    def _register_numbers(self) -> dict[str, int]:
        if self._numbers is None:
            self._numbers = {n: i for i, n in enumerate(self.s.register_names()) if n}
        return self._numbers

    def _read_registers(self, names: Sequence[str] | None,
                        timeout: float | None) -> dict[str, int]:
        """Registers by name, in one MI round trip (all of them for ``names=None``)."""
        if names is None:
            return {name: int(value) for name, value in self.s.registers().items()}
        numbers = self._register_numbers()
        wanted = {numbers[name]: name for name in names}
        result = self.s.mi("-data-list-register-values x " + " ".join(map(str, wanted)),
                           timeout=timeout)
        return {wanted[int(item["number"])]: int(item["value"], 16)
                for item in result.payload["register-values"]}

    def write_register(self, name: str, value: int) -> None:
        """Write a register by number: works for GDB's flag types (cr4, efer) too."""
        self.write_registers({name: value})

    def _thread_id(self, timeout: float | None) -> str:
        """The selected vCPU in the stub's own format (``p1.2`` multiprocess, else ``2``)."""
        s = self.s
        if self._multiprocess is None:
            self._multiprocess = "QCp" in s.console("maintenance packet qC", timeout=timeout)
        text = s.console("python t = gdb.selected_thread().ptid; print(t[0], t[1])",
                         timeout=timeout)
        pid, lwp = (int(x) for x in text.split())
        return f"p{pid:x}.{lwp:x}" if self._multiprocess else f"{lwp:x}"

    def _raw_step(self, timeout: float | None, thread: str | None = None) -> None:
        """One instruction of the selected vCPU, behind GDB's back (see the module doc)."""
        s = self.s
        thread = thread or self._thread_id(timeout)
        try:
            text = s.console(f"maintenance packet vCont;s:{thread}", timeout=timeout)
        finally:
            s.console("maintenance flush register-cache", timeout=timeout)
        reply = re.search(r'received: "(.*)"', text)
        if reply is None or reply.group(1)[:1] not in ("T", "S"):
            raise Error(f"the stub did not single-step (it answered {text.strip()!r})")

    def _restore(self, saved: dict[str, int], stack_at: int, stack: bytes) -> None:
        s = self.s
        now = {name: int(value) for name, value in s.registers().items()}
        for name in GPRS:
            if now[name] != saved[name]:
                self.write_register(name, saved[name])
        if s.read_memory(stack_at, len(stack)) != stack:
            s.write_memory(stack_at, stack)
            s.console("maintenance flush dcache")
        s.console("maintenance flush register-cache")  # also drops frames built mid-probe
        now = {name: int(value) for name, value in s.registers().items()}
        wrong = [name for name in GPRS if now[name] != saved[name]]
        if wrong:
            raise Error(f"could not restore {', '.join(wrong)} after a probe; the guest "
                        "state is changed: do not continue it")


def lapic_timer(s: Session) -> tuple[int, int]:
    """The LAPIC timer's current and initial count, from QEMU's ``info lapic`` (the guest
    does not run for it)."""
    regs = parse_info_lapic(s.monitor("info lapic"))
    return regs["TIMER_CCR"] & 0xFFFF_FFFF, regs["TIMER_ICR"] & 0xFFFF_FFFF


def lapic_counted(before: tuple[int, int], after: tuple[int, int]) -> int | None:
    """LAPIC counts between two reads of the down-counter (a periodic reload adds the
    initial count); None when the timer is stopped (initial count 0)."""
    (c1, icr), (c2, _) = before, after
    if icr == 0:
        return None
    return c1 - c2 if c2 <= c1 else c1 + (icr - c2)
