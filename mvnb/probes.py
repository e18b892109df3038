"""Register probes on a live session: LAPIC state, CPUID, MSRs, control registers.

``ProbesMixin`` is mixed into ``Session``. The LAPIC comes from QEMU's ``info lapic``
(Intel SDM Vol. 3A, Order Number 253668-068US, Chapter 10); CPUID and MSRs are read by
executing the guest's own ``cpuid`` / ``rdmsr`` instruction once (see :mod:`mvnb._probe`);
CR0, CR3, CR4, RFLAGS and EFER decode from GDB's registers (Vol. 3A Section 2.5, 2.3).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from . import _probe
from .errors import Error, GdbError, Unsupported
from .regs.cpuid import CpuidResult
from .regs.lapic import LapicSnapshot
from .regs.registry import get
from .regs.spec import RegisterSpec
from .regs.value import RegisterValue

if TYPE_CHECKING:
    from .session import Session
    from .widgets import BitfieldWidget

__all__ = ["CONTROL_REGISTERS", "UNREADABLE", "ProbeFault", "ProbesMixin"]

ProbeFault = _probe.ProbeFault
#: Registers decoded from GDB's register set by ``control_registers()``.
CONTROL_REGISTERS = ("CR0", "CR3", "CR4", "RFLAGS", "IA32_EFER")
#: LAPIC registers a snapshot cannot hold, and why.
UNREADABLE = {
    "LAPIC_ID": "not in QEMU's 'info lapic', and the LAPIC page is device memory GDB cannot "
                "read; the initial APIC ID is CPUID.1:EBX[31:24] (s.cpuid(1).ebx >> 24)",
    "LAPIC_VERSION": "not in QEMU's 'info lapic', and the LAPIC page is device memory GDB "
                     "cannot read",
}


class ProbesMixin:
    """Methods of ``Session`` that read registers the stub does not expose directly."""

    def lapic(self: Session, *, probe: bool = True,
              timeout: float | None = 30.0) -> LapicSnapshot:
        """The LAPIC now, from QEMU's ``info lapic``, with IA32_APIC_BASE read by ``rdmsr``.

        ``snap.location`` is the stop frame, ``snap.timestamp`` the host time (UTC), and
        ``snap.unread`` maps each register that could not be read to the reason (ID and
        Version never; IA32_APIC_BASE when the guest is not stopped in kernel mode or
        ``probe=False``). Register layouts: SDM Vol. 3A Section 10.4-10.6.
        """
        if self.running:
            raise Error("lapic(): the target is running; stop it first (interrupt())")
        text = self.monitor("info lapic", timeout=timeout)
        stamp = datetime.datetime.now(datetime.UTC)
        location = self.frame()
        base = LapicSnapshot.from_text(text)
        regs: dict[str, RegisterValue | int] = dict(base)
        unread = dict(UNREADABLE)
        if probe:
            try:
                regs["IA32_APIC_BASE"] = self.msr("IA32_APIC_BASE", timeout=timeout)
            except Error as error:
                unread["IA32_APIC_BASE"] = str(error)
        else:
            unread["IA32_APIC_BASE"] = "not probed (probe=False)"
        return LapicSnapshot(regs, cpu=base.cpu, location=location, timestamp=stamp,
                             text=text, unread=unread)

    def cpuid(self: Session, leaf: int, subleaf: int = 0, *,
              timeout: float | None = 30.0) -> CpuidResult:
        """CPUID as the guest sees it, by running a ``cpuid`` from its kernel text once.

        EAX = leaf, ECX = subleaf (SDM Vol. 2A, "CPUID—CPU Identification"); every
        register is restored and the next ``cont()`` resumes where the guest stopped.
        """
        after = _probe.execute(self, self._probe_site(_probe.CPUID, timeout),
                               _probe.CPUID, {"rax": leaf, "rcx": subleaf}, timeout=timeout)
        return CpuidResult(leaf, subleaf, *(after[r] & 0xFFFF_FFFF for r in _EAX_EDX))

    def rdmsr(self: Session, msr: int | str, *, timeout: float | None = 30.0) -> int:
        """An MSR's 64-bit value (``msr`` a number or a spec name), read by the guest's ``rdmsr``.

        EDX:EAX = MSR[ECX] (SDM Vol. 2B, "RDMSR"). An MSR the CPU refuses (#GP) raises
        ProbeFault after every register was restored. QEMU 7.2 under TCG returns 0 for an
        MSR it does not know instead of raising #GP.
        """
        number = _msr_number(msr)
        after = _probe.execute(self, self._probe_site(_probe.RDMSR, timeout),
                               _probe.RDMSR, {"rcx": number}, timeout=timeout)
        return (after["rdx"] & 0xFFFF_FFFF) << 32 | after["rax"] & 0xFFFF_FFFF

    def msr(self: Session, name: str | RegisterSpec, *,
            timeout: float | None = 30.0) -> RegisterValue:
        """An MSR decoded by its spec: ``msr("IA32_APIC_BASE")["base"]`` (SDM Vol. 4)."""
        spec = get(name)
        return RegisterValue(spec, self.rdmsr(_msr_number(spec), timeout=timeout))

    def control_registers(self: Session) -> dict[str, RegisterValue]:
        """CR0, CR3, CR4, RFLAGS and EFER decoded from GDB's registers (SDM Vol. 3A 2.5).

        Registers the stub does not show are left out (Firecracker's shows only RFLAGS).
        """
        regs = self.registers()
        out = {}
        for name in CONTROL_REGISTERS:
            spec = get(name)
            if spec.gdb_register in regs.index:
                out[name] = RegisterValue(spec, int(regs[spec.gdb_register]))
        if not out:
            raise Unsupported(f"the stub at {self.address} shows none of "
                              f"{', '.join(CONTROL_REGISTERS)}")
        return out

    def write_register(self: Session, name: str | RegisterSpec,
                       value: int | RegisterValue) -> RegisterValue:
        """Write a register GDB can reach (CR0, CR3, CR4, RFLAGS, EFER) and read it back.

        Raises Unsupported when the stub refuses the write or the value does not stick
        (QEMU may mask bits it does not implement, SDM Vol. 3A Section 2.5).
        """
        spec = get(name)
        if spec.gdb_register is None:
            raise Unsupported(f"{spec.name} is not a register GDB can write "
                              "(MSRs and LAPIC registers are read by probes only)")
        if self.running:
            raise Error(f"cannot write {spec.name}: the target is running; stop it first")
        raw = int(RegisterValue(spec, int(value)))
        try:
            _probe._write(self, spec.gdb_register, raw)
        except (GdbError, KeyError) as error:
            raise Unsupported(f"the stub at {self.address} cannot write "
                              f"${spec.gdb_register}: {error}") from None
        back = RegisterValue(spec, self.register(spec.gdb_register))
        if int(back) != raw:
            raise Unsupported(f"the stub took {spec.name} = {raw:#x} but it reads back "
                              f"{back.hex()}: the write was not applied as given")
        return back

    def register_widget(self: Session, name: str | RegisterSpec, *,
                        editable: bool = True) -> BitfieldWidget:
        """A BitfieldWidget of a control register or RFLAGS now, writing back on Write."""
        from .widgets import BitfieldWidget

        spec = get(name)
        value = self.control_registers().get(spec.name)
        if value is None:
            raise Unsupported(f"{spec.name} is not one of the registers this stub shows "
                              f"({', '.join(self.control_registers())})")

        def write(raw: int) -> None:
            self.write_register(spec, raw)

        return BitfieldWidget(value, editable=editable, on_write=write if editable else None)

    def _probe_site(self: Session, insn: _probe.Instruction, timeout: float | None) -> int:
        cache = self.__dict__.setdefault("_probe_cache", {})
        if insn.mnemonic not in cache:
            _probe.require_kernel(self, insn.mnemonic)
            cache[insn.mnemonic] = _probe.find(self, insn, timeout=timeout)
        return cache[insn.mnemonic]


_EAX_EDX = ("rax", "rbx", "rcx", "rdx")


def _msr_number(msr: int | str | RegisterSpec) -> int:
    if isinstance(msr, int):
        if not 0 <= msr <= 0xFFFF_FFFF:
            raise ValueError(f"an MSR number is 32 bits, not {msr:#x}")
        return msr
    spec = get(msr)
    if spec.msr is None:
        raise ValueError(f"{spec.name} is not an MSR (it has no msr number in its spec)")
    return spec.msr
