"""``s.x86``: the x86 CPU under the debugger — LAPIC state, CPUID, MSRs, control
registers, the TSC.

The LAPIC comes from QEMU's ``info lapic`` (Intel SDM Vol. 3A, Order Number 253668-068US,
Chapter 10); CPUID, MSRs and the TSC are read by executing the guest's own ``cpuid`` /
``rdmsr`` / ``rdtsc`` once (:mod:`mvnb.x86.probe`); CR0, CR3, CR4, RFLAGS and EFER decode
from GDB's registers (Vol. 3A Section 2.5, 2.3). The accessor uses only the session's
public methods.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from ..errors import Error, GdbError, UnknownName, Unsupported
from ..gdb.extensions import register_session_accessor
from ..regs.cpuid import CpuidResult
from ..regs.lapic import LapicSnapshot
from ..regs.registry import get, names
from ..regs.spec import RegisterSpec
from ..regs.value import RegisterValue
from .probe import CPUID, RDMSR, Prober
from .tsc import RDTSC

if TYPE_CHECKING:
    from ..gdb import Session
    from ..widgets import BitfieldWidget

__all__ = ["CONTROL_REGISTERS", "UNREADABLE", "X86"]

#: Registers decoded from GDB's register set by ``control_registers()``.
CONTROL_REGISTERS = ("CR0", "CR3", "CR4", "RFLAGS", "IA32_EFER")
#: LAPIC registers a snapshot cannot hold, and why.
UNREADABLE = {
    "LAPIC_ID": "not in QEMU's 'info lapic', and the LAPIC page is device memory GDB cannot "
                "read; the initial APIC ID is CPUID.1:EBX[31:24] (s.x86.cpuid(1).ebx >> 24)",
    "LAPIC_VERSION": "not in QEMU's 'info lapic', and the LAPIC page is device memory GDB "
                     "cannot read",
}
_MASK32 = 0xFFFF_FFFF


@register_session_accessor("x86")
class X86:
    """The x86 helpers of one session: ``s.x86.lapic()``, ``s.x86.cpuid(1)``, ..."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self.prober = Prober(session)

    def lapic(self, *, probe: bool = True, timeout: float | None = 30.0) -> LapicSnapshot:
        """The LAPIC now, from QEMU's ``info lapic``, with IA32_APIC_BASE read by ``rdmsr``.

        ``snap.location`` is the stop frame, ``snap.timestamp`` the host time (UTC), and
        ``snap.unread`` maps each register that could not be read to the reason (ID and
        Version never; IA32_APIC_BASE when the guest is not stopped in kernel mode or
        ``probe=False``). Register layouts: SDM Vol. 3A Section 10.4-10.6.
        """
        s = self._s
        if s.running:
            raise Error("lapic(): the target is running; stop it first (interrupt())")
        text = s.monitor("info lapic", timeout=timeout)
        stamp = datetime.datetime.now(datetime.UTC)
        location = s.frame()
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

    def cpuid(self, leaf: int, subleaf: int = 0, *,
              timeout: float | None = 30.0) -> CpuidResult:
        """CPUID as the guest sees it, by running a ``cpuid`` from its kernel text once.

        EAX = leaf, ECX = subleaf (SDM Vol. 2A, "CPUID—CPU Identification"); every
        register is restored and the next ``cont()`` resumes where the guest stopped.
        """
        after = self.prober.run(CPUID, {"rax": leaf, "rcx": subleaf}, timeout=timeout)
        return CpuidResult(leaf, subleaf, *(after[r] & _MASK32 for r in _EAX_EDX))

    def rdmsr(self, msr: int | str, *, timeout: float | None = 30.0) -> int:
        """An MSR's 64-bit value (``msr`` a number or a spec name), read by the guest's ``rdmsr``.

        EDX:EAX = MSR[ECX] (SDM Vol. 2B, "RDMSR"). An MSR the CPU refuses (#GP) raises
        ProbeFault after every register was restored. QEMU 7.2 under TCG returns 0 for an
        MSR it does not know instead of raising #GP.
        """
        number = _msr_number(msr)
        after = self.prober.run(RDMSR, {"rcx": number}, timeout=timeout)
        return (after["rdx"] & _MASK32) << 32 | after["rax"] & _MASK32

    def msr(self, name: str | RegisterSpec, *,
            timeout: float | None = 30.0) -> RegisterValue:
        """An MSR decoded by its spec: ``msr("IA32_APIC_BASE")["base"]`` (SDM Vol. 4)."""
        spec = _msr_spec(name)
        return RegisterValue(spec, self.rdmsr(_msr_number(spec), timeout=timeout))

    def tsc(self, *, address: int | None = None, timeout: float | None = 10.0) -> int:
        """The guest's TSC now, by one ``rdtsc`` executed in the stopped guest (EDX:EAX)."""
        after = self.prober.run(RDTSC, {}, address=address, timeout=timeout)
        return ((after["rdx"] & _MASK32) << 32) | (after["rax"] & _MASK32)

    def control_registers(self) -> dict[str, RegisterValue]:
        """CR0, CR3, CR4, RFLAGS and EFER decoded from GDB's registers (SDM Vol. 3A 2.5).

        Registers the stub does not show are left out (Firecracker's shows only RFLAGS).
        """
        regs = self._s.registers()
        out = {}
        for name in CONTROL_REGISTERS:
            spec = get(name)
            if spec.gdb_register in regs.index:
                out[name] = RegisterValue(spec, int(regs[spec.gdb_register]))
        if not out:
            raise Unsupported(f"the stub at {self._s.address} shows none of "
                              f"{', '.join(CONTROL_REGISTERS)}")
        return out

    def write_register(self, name: str | RegisterSpec,
                       value: int | RegisterValue) -> RegisterValue:
        """Write a register GDB can reach (CR0, CR3, CR4, RFLAGS, EFER) and read it back.

        Raises Unsupported when the stub refuses the write or the value does not stick
        (QEMU may mask bits it does not implement, SDM Vol. 3A Section 2.5).
        """
        s = self._s
        spec = get(name)
        if spec.gdb_register is None:
            raise Unsupported(f"{spec.name} is not a register GDB can write "
                              "(MSRs and LAPIC registers are read by probes only)")
        if s.running:
            raise Error(f"cannot write {spec.name}: the target is running; stop it first")
        raw = int(RegisterValue(spec, int(value)))
        try:
            self.prober.write_register(spec.gdb_register, raw)
        except (GdbError, KeyError) as error:
            raise Unsupported(f"the stub at {s.address} cannot write "
                              f"${spec.gdb_register}: {error}") from None
        back = RegisterValue(spec, s.register(spec.gdb_register))
        if int(back) != raw:
            raise Unsupported(f"the stub took {spec.name} = {raw:#x} but it reads back "
                              f"{back.hex()}: the write was not applied as given")
        return back

    def register_widget(self, name: str | RegisterSpec, *,
                        editable: bool = True) -> BitfieldWidget:
        """A BitfieldWidget of a control register or RFLAGS now, writing back on Write."""
        from ..widgets import BitfieldWidget

        spec = get(name)
        value = self.control_registers().get(spec.name)
        if value is None:
            raise Unsupported(f"{spec.name} is not one of the registers this stub shows "
                              f"({', '.join(self.control_registers())})")

        def write(raw: int) -> None:
            self.write_register(spec, raw)

        return BitfieldWidget(value, editable=editable, on_write=write if editable else None)

    def __repr__(self) -> str:
        return f"<mvnb.x86 accessor of {self._s!r}>"


_EAX_EDX = ("rax", "rbx", "rcx", "rdx")


def _msr_number(msr: int | str | RegisterSpec) -> int:
    if isinstance(msr, int):
        if not 0 <= msr <= 0xFFFF_FFFF:
            raise ValueError(f"an MSR number is 32 bits, not {msr:#x}")
        return msr
    number = _msr_spec(msr).msr
    assert number is not None
    return number


def _msr_spec(name: str | RegisterSpec) -> RegisterSpec:
    """The spec of an MSR; UnknownName lists the MSRs with a spec when ``name`` is none."""
    msrs = [n for n in names() if get(n).msr is not None]
    hint = (f"{len(msrs)} MSRs have a spec, e.g. IA32_APIC_BASE, IA32_EFER and the x2APIC "
            "registers (LVT_TIMER ...); rdmsr(number) reads any other")
    try:
        spec = get(name)
    except UnknownName:
        raise UnknownName.among("MSR", str(name), msrs, hint) from None
    if spec.msr is None:
        raise UnknownName(f"{spec.name} is not an MSR (its spec has no msr number); {hint}",
                          spec.name)
    return spec
