"""Every LAPIC register as the guest's CPU reads it: MMIO loads in xAPIC mode, ``rdmsr`` in
x2APIC mode.

QEMU's ``info lapic`` shows neither the APIC ID, the Version nor the TMR, and no debugger
can read the LAPIC page (:mod:`mvnb.x86.mmio`). The CPU itself can, in the mode the APIC is
in (IA32_APIC_BASE.EXTD, Intel SDM Vol. 3A, Order Number 253668-068US, Section 10.12.1):

- **xAPIC**: a 32-bit load from the LAPIC's virtual mapping plus the register's offset
  (Section 10.4.1, Table 10-1). The mapping is found, in this order: ``address=`` given by
  the caller (``s.x86.lapic_mapping``); Linux's fixmap ``APIC_BASE``, i.e.
  ``__fix_to_virt(FIX_APIC_BASE)`` = FIXADDR_TOP - (FIX_APIC_BASE << PAGE_SHIFT) with the
  x86-64 FIXADDR_TOP of arch/x86/include/asm/fixmap.h; else a search of the page tables
  (:func:`mvnb.x86.paging.find_mapping`). Each is checked to map IA32_APIC_BASE's physical
  base before use, so a guest stopped before its kernel mapped the page gets a clear error.
- **x2APIC**: ``rdmsr 0x800 + offset / 16`` (Section 10.12.1.2, Table 10-6); no mapping
  needed. The ICR is one 64-bit MSR; APR, DFR and RRD do not exist.

Only registers the SDM defines are read: QEMU sets ESR bit 7 (illegal register address)
on a read of any other offset or MSR (hw/intc/apic.c, ``apic_register_read``), and raises
#GP for the MSRs. The CMCI LVT is read only when the Version register counts seven LVT
entries (Section 10.5.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import Error, GdbError, ProbeFault, Unsupported
from ..regs.lapic import NOT_IN_X2APIC, layout
from ..regs.registry import get
from ..regs.value import RegisterValue
from .mmio import MmioLoader
from .paging import find_mapping, translate
from .probe import RDMSR

if TYPE_CHECKING:
    from .probe import Prober

__all__ = ["LINUX_FIXADDR_TOP", "LapicCpuReader", "word_plan"]

#: x86-64 Linux: round_up(VSYSCALL_ADDR + PAGE_SIZE, PMD_SIZE) - PAGE_SIZE
#: (arch/x86/include/asm/fixmap.h; VSYSCALL_ADDR = -10UL << 20).
LINUX_FIXADDR_TOP = 0xFFFF_FFFF_FF7F_F000
#: The LVT entries a Version register must count before the CMCI LVT exists (max_lvt >= 6).
CMCI_MIN_LVT = 6
_U32 = 0xFFFF_FFFF


def word_plan(name: str, *, x2apic: bool) -> list[int]:
    """Where the CPU reads register ``name``: MMIO offsets (xAPIC) or MSR numbers (x2APIC).

    Registers wider than 32 bits take one read per word (ISR, TMR, IRR: eight), except the
    x2APIC ICR, one 64-bit MSR. Raises KeyError with the reason for a register the mode
    does not have.
    """
    spec = get(name)
    if spec.access == "wo":
        raise KeyError(f"{spec.name} is write-only")
    if not x2apic:
        if spec.mmio_offset is None:
            raise KeyError(f"{spec.name} has no xAPIC offset")
        return list(spec.mmio_words)
    if spec.name in NOT_IN_X2APIC or spec.msr is None:
        raise KeyError(NOT_IN_X2APIC.get(spec.name, f"{spec.name} has no x2APIC MSR"))
    if spec.width == 64:
        return [spec.msr]
    return [spec.msr + i for i in range(max(1, spec.width // 32))]


class LapicCpuReader:
    """LAPIC registers of the selected vCPU, read by that vCPU (one instance per session)."""

    def __init__(self, prober: Prober) -> None:
        self.prober = prober
        self.mmio = MmioLoader(prober)
        #: The LAPIC page's virtual address in xAPIC mode when the caller knows it (a
        #: kernel that maps it elsewhere than Linux's fixmap); None finds it.
        self.mapping: int | None = None
        self._found: dict[int, int] = {}

    def read(self, names: Iterable[str], *, x2apic: bool, physical: int,
             timeout: float | None = 30.0) -> tuple[dict[str, RegisterValue], dict[str, str]]:
        """Registers by name, decoded in the mode's layout, and the ones that could not be
        read with the reason. ``physical`` is IA32_APIC_BASE's base (xAPIC mode)."""
        plans: dict[str, list[int]] = {}
        unread: dict[str, str] = {}
        for name in names:
            try:
                plans[get(name).name] = word_plan(name, x2apic=x2apic)
            except KeyError as why:
                unread[get(name).name] = why.args[0]
        cmci = plans.pop("LVT_CMCI", None)
        if cmci is not None and "LAPIC_VERSION" not in plans:
            plans["LAPIC_VERSION"] = word_plan("LAPIC_VERSION", x2apic=x2apic)
        words = self._words(plans, x2apic, physical, timeout)
        values: dict[str, RegisterValue] = {}
        for name, plan in plans.items():
            faults = [w for w in (words[p] for p in plan) if isinstance(w, ProbeFault)]
            if faults:
                unread[name] = str(faults[0])
                continue
            raw = sum(int(words[p]) << (32 * i) for i, p in enumerate(plan))
            values[name] = RegisterValue(layout(name, x2apic=x2apic), raw)
        if cmci is not None:
            version = values.get("LAPIC_VERSION")
            if version is None:
                unread["LVT_CMCI"] = "the Version register, which says whether it exists, " \
                                     "could not be read"
            elif version["max_lvt"] < CMCI_MIN_LVT:
                unread["LVT_CMCI"] = (f"this APIC has no CMCI LVT (Version max_lvt = "
                                      f"{int(version['max_lvt'])}: "
                                      f"{int(version['max_lvt']) + 1} LVT entries)")
            else:
                more = self._words({"LVT_CMCI": cmci}, x2apic, physical, timeout)
                if isinstance(more[cmci[0]], ProbeFault):
                    unread["LVT_CMCI"] = str(more[cmci[0]])
                else:
                    values["LVT_CMCI"] = RegisterValue(get("LVT_CMCI"), int(more[cmci[0]]))
        return values, unread

    def _words(self, plans: dict[str, list[int]], x2apic: bool, physical: int,
               timeout: float | None) -> dict[int, int | ProbeFault]:
        """Every offset (xAPIC) or MSR (x2APIC) of ``plans`` read once, in one batch."""
        where = list(dict.fromkeys(p for plan in plans.values() for p in plan))
        if not where:
            return {}
        if x2apic:
            site = self.prober.site(RDMSR, timeout=timeout)
            runs = self.prober.run_many(site, RDMSR.opcode, [{"rcx": m} for m in where],
                                        outputs=("rax", "rdx"), what="rdmsr",
                                        timeout=timeout)
            return {m: r if isinstance(r, ProbeFault) else (r["rdx"] & _U32) << 32 | r["rax"] & _U32
                    for m, r in zip(where, runs, strict=True)}
        base = self.virtual_base(physical, timeout=timeout)
        reads = self.mmio.read([base + offset for offset in where], timeout=timeout)
        return dict(zip(where, reads, strict=True))

    def virtual_base(self, physical: int, *, timeout: float | None = 30.0) -> int:
        """The virtual address of the LAPIC page at ``physical``, checked to map it."""
        s = self.prober.s
        if self.mapping is not None:
            self._check(self.mapping, physical, "s.x86.lapic_mapping", timeout)
            return self.mapping
        if physical in self._found:
            try:
                self._check(self._found[physical], physical, "the address found before",
                            timeout)
                return self._found[physical]
            except Error:
                del self._found[physical]
        linux = _linux_apic_base(s, timeout)
        if linux is not None:
            self._check(linux, physical, "Linux's fixmap APIC_BASE "
                        "(__fix_to_virt(FIX_APIC_BASE)); Linux maps the LAPIC there in "
                        "register_lapic_address(), arch/x86/kernel/apic/apic.c", timeout)
            self._found[physical] = linux
            return linux
        try:
            found = find_mapping(s, physical, timeout=timeout)
        except Unsupported as error:
            raise Error(f"cannot find where the kernel maps the LAPIC page ({physical:#x}): "
                        f"{error}. Set s.x86.lapic_mapping to its virtual address") from None
        if found is None:
            raise Error(f"the LAPIC page (physical {physical:#x}) is not mapped in the current "
                        "page tables (searched the kernel half from CR3): the kernel has not "
                        "mapped it yet; stop the guest later, or set s.x86.lapic_mapping")
        self._found[physical] = found
        return found

    def _check(self, virtual: int, physical: int, what: str, timeout: float | None) -> None:
        try:
            maps_to = translate(self.prober.s, virtual, timeout=timeout)
        except Unsupported:
            return  # no QEMU monitor: an unmapped address comes back as a ProbeFault
        if maps_to is None:
            raise Error(f"the LAPIC page (physical {physical:#x}) is not mapped at {virtual:#x} "
                        f"({what}) yet: stop the guest after its kernel mapped it")
        if maps_to & ~0xFFF != physical:
            raise Error(f"{virtual:#x} ({what}) maps {maps_to:#x}, not the LAPIC page at "
                        f"{physical:#x}")


def _linux_apic_base(s, timeout: float | None) -> int | None:
    """Linux's ``APIC_BASE`` from the ``FIX_APIC_BASE`` enumerator, or None for other kernels."""
    try:
        (index,) = s.eval_many(["(long)FIX_APIC_BASE"], timeout=timeout)
    except GdbError:
        return None
    if not isinstance(index, int) or not 0 < index < 1 << 20:
        return None
    return LINUX_FIXADDR_TOP - (index << 12)
