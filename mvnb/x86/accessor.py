"""``s.x86``: the x86 CPU under the debugger — LAPIC state, CPUID, MSRs, control
registers, the TSC.

The LAPIC comes from QEMU's ``info lapic`` and from the CPU's own reads of its registers
(:mod:`mvnb.x86.lapic_cpu`; Intel SDM Vol. 3A, Order Number 253668-068US, Chapter 10), in
the mode IA32_APIC_BASE says; CPUID, MSRs and the TSC are read by executing the guest's own
``cpuid`` / ``rdmsr`` / ``rdtsc`` once (:mod:`mvnb.x86.probe`); CR0, CR3, CR4, RFLAGS and
EFER decode from GDB's registers (Vol. 3A Section 2.5, 2.3). The accessor uses only the
session's public methods."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from ..errors import Error, GdbError, UnknownName, Unsupported
from ..gdb.extensions import register_session_accessor
from ..regs.cpuid import CpuidResult
from ..regs.lapic import LAPIC_REGISTERS, LapicSnapshot
from ..regs.registry import builtin_specs, get, names
from ..regs.spec import RegisterSpec
from ..regs.value import RegisterValue
from .lapic_cpu import LapicCpuReader
from .probe import CPUID, RDMSR, Prober
from .tsc import RDTSC

if TYPE_CHECKING:
    from ..gdb import Session
    from ..widgets import BitfieldWidget

__all__ = ["CONTROL_REGISTERS", "UNREADABLE", "X86"]

#: Registers decoded from GDB's register set by ``control_registers()``.
CONTROL_REGISTERS = ("CR0", "CR3", "CR4", "RFLAGS", "IA32_EFER")
#: Registers QEMU's ``info lapic`` does not show: only the CPU's own reads return them.
UNREADABLE = {
    "LAPIC_ID": "not in QEMU's 'info lapic' (the initial APIC ID is also CPUID.1:EBX[31:24])",
    "LAPIC_VERSION": "not in QEMU's 'info lapic'",
    "TMR": "not in QEMU's 'info lapic' (only '(level)' marks of ISR/IRR vectors)",
    "LVT_CMCI": "not in QEMU's 'info lapic'",
}
_MASK32 = 0xFFFF_FFFF
_SOURCES = ("auto", "monitor", "cpu")


@register_session_accessor("x86")
class X86:
    """The x86 helpers of one session: ``s.x86.lapic()``, ``s.x86.cpuid(1)``, ..."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self.prober = Prober(session)
        self._lapic_cpu = LapicCpuReader(self.prober)

    @property
    def lapic_mapping(self) -> int | None:
        """The LAPIC page's virtual address for CPU reads in xAPIC mode; None finds it
        (Linux's fixmap, else the page tables: :mod:`mvnb.x86.lapic_cpu`)."""
        return self._lapic_cpu.mapping

    @lapic_mapping.setter
    def lapic_mapping(self, address: int | None) -> None:
        self._lapic_cpu.mapping = None if address is None else int(address)

    def lapic(self, *, probe: bool = True, source: str = "auto",
              timeout: float | None = 30.0) -> LapicSnapshot:
        """Every LAPIC register of the selected vCPU now, decoded in the APIC's mode.

        ``source="auto"``: what QEMU's ``info lapic`` shows comes from there (the stop
        itself: the guest does not run), the rest (ID, Version, TMR, the CMCI LVT; in
        x2APIC mode the LDR) is read by the CPU: a load from the LAPIC page in xAPIC mode,
        ``rdmsr`` in x2APIC mode (:mod:`mvnb.x86.lapic_cpu`). ``"cpu"`` reads every register
        by the CPU; ``"monitor"`` only ``info lapic``. The mode comes from IA32_APIC_BASE
        (``rdmsr``, kept in the snapshot). Without QEMU's monitor, ``"auto"`` reads everything
        by the CPU. ``probe=False`` runs nothing in the guest (the monitor alone, mode
        unknown). ``snap.unread`` maps each register that could not be read to the reason;
        ``snap.x2apic`` says the mode. Layouts: SDM Vol. 3A Sections 10.4-10.6, 10.12.
        """
        s = self._s
        if source not in _SOURCES:
            raise ValueError(f"source must be one of {', '.join(_SOURCES)}, not {source!r}")
        if source == "cpu" and not probe:
            raise ValueError("source='cpu' reads by probes: it cannot go with probe=False")
        if s.running:
            raise Error("lapic(): the target is running; stop it first (interrupt())")
        text = None
        if source != "cpu" or not probe:
            try:
                text = s.monitor("info lapic", timeout=timeout)
            except Unsupported:
                if source == "monitor" or not probe:
                    raise
        stamp = datetime.datetime.now(datetime.UTC)
        location = s.frame()
        unread: dict[str, str] = {}
        base = None
        if probe:
            try:
                base = self.msr("IA32_APIC_BASE", timeout=timeout)
            except Error as error:
                unread["IA32_APIC_BASE"] = str(error)
        else:
            unread["IA32_APIC_BASE"] = "not probed (probe=False)"
        x2apic = None if base is None else bool(base["extd"])
        regs: dict[str, RegisterValue] = {}
        cpu = None
        if text is not None:
            shown = LapicSnapshot.from_text(text, x2apic=x2apic)
            regs.update(shown.items())
            unread.update(shown.unread)
            cpu = shown.cpu
        wanted = [n for n in LAPIC_REGISTERS if n not in regs]
        skipped = ("probe=False" if not probe
                   else "IA32_APIC_BASE, which says the mode, could not be read" if base is None
                   else "source='monitor'" if source == "monitor" else None)
        if skipped is None:
            try:
                got, missing = self._lapic_cpu.read(wanted, x2apic=bool(x2apic),
                                                    physical=int(base["base"]), timeout=timeout)
            except Error as error:  # e.g. the kernel has not mapped the LAPIC page yet
                got, missing = {}, dict.fromkeys(wanted, str(error))
            regs.update(got)
            for name in got:
                unread.pop(name, None)
            unread.update(missing)
        else:
            for name in wanted:
                why = f"not read by the CPU ({skipped})"
                unread.setdefault(name, f"{UNREADABLE[name]}; {why}" if name in UNREADABLE
                                  else why)
        ordered: dict[str, RegisterValue | int] = {
            n: regs[n] for n in LAPIC_REGISTERS if n in regs}
        if base is not None:
            ordered["IA32_APIC_BASE"] = base
        return LapicSnapshot(ordered, cpu=cpu, location=location, timestamp=stamp,
                             text=text, unread=unread, x2apic=x2apic)

    def lapic_read(self, register: int | str, *,
                   timeout: float | None = 30.0) -> RegisterValue:
        """One LAPIC register read by the selected vCPU now: ``lapic_read(0x30)`` (an MMIO
        offset) or ``lapic_read("LAPIC_VERSION")``.

        The mode comes from IA32_APIC_BASE.EXTD (one ``rdmsr``); xAPIC reads load from the
        LAPIC page, x2APIC reads use ``rdmsr 0x800 + offset / 16``; the value decodes in the
        mode's layout (x2APIC: ``X2APIC_ID``, ``X2APIC_LDR``, ``X2APIC_ICR``). Registers of
        several words (ISR, TMR, IRR, ICR) are read whole. Offsets that are no register's
        start raise ValueError (QEMU flags reads of undefined offsets in ESR).
        """
        name = _lapic_name(register)
        base = self.msr("IA32_APIC_BASE", timeout=timeout)
        values, unread = self._lapic_cpu.read([name], x2apic=bool(base["extd"]),
                                              physical=int(base["base"]), timeout=timeout)
        if name not in values:
            mode = "x2APIC" if base["extd"] else "xAPIC"
            raise Unsupported(f"cannot read {name} in {mode} mode: {unread[name]}")
        return values[name]

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


def _lapic_name(register: int | str) -> str:
    """The register a ``lapic_read`` argument names (an MMIO offset or a spec name)."""
    if isinstance(register, str):
        name = get(register).name
        if name not in LAPIC_REGISTERS:
            raise ValueError(f"{name} is not a LAPIC register lapic_read() reads (one of "
                             f"{', '.join(LAPIC_REGISTERS)})")
        return name
    for name in LAPIC_REGISTERS:
        if get(name).mmio_offset == register:
            return name
    near = [spec.name for spec in builtin_specs().values()
            if spec.family == "lapic" and register in spec.mmio_words[1:]]
    hint = (f"it is a later word of {near[0]}: lapic_read({near[0]!r}) reads it whole" if near
            else "reading an offset the SDM does not define sets ESR bit 7 on QEMU")
    raise ValueError(f"no LAPIC register starts at offset {register:#x} ({hint})")


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
