"""x86 register specs and decoded values: the LAPIC, MSRs, control registers and CPUID.

``mvnb.regs.decode("LVT_TIMER", 0x000300ec)`` reads like Figure 10-8 of the Intel SDM
Vol. 3A (Order Number 253668-068US; the APIC chapter is 10 there and 11 from 2022 on):
vector 236, masked, periodic. Every built-in register is also a module constant
(``mvnb.regs.TIMER_CCR``) holding its :class:`RegisterSpec`; specs are YAML files
(``mvnb/regs/specs/``, format in ``docs/register-specs.md``) and users load their own with
:func:`load`.
"""

from __future__ import annotations

from .codec import decode, encode
from .cpuid import CpuidResult
from .lapic import LapicSnapshot, parse_info_lapic
from .registry import get, load, names
from .spec import CpuidLocation, EnumValue, FieldSpec, Reference, RegisterSpec
from .value import FieldValue, RegisterValue

__all__ = [
    "APR",
    "CPUID_1_ECX",
    "CPUID_1_EDX",
    "CPUID_6_EAX",
    "CPUID_40000000_EAX",
    "CPUID_40000000_EBX",
    "CPUID_40000000_ECX",
    "CPUID_40000000_EDX",
    "CPUID_40000010_EAX",
    "CPUID_40000010_EBX",
    "CPUID_80000007_EDX",
    "CR0",
    "CR3",
    "CR4",
    "DFR",
    "EOI",
    "ESR",
    "IA32_APIC_BASE",
    "IA32_EFER",
    "IA32_TSC_DEADLINE",
    "ICR",
    "IOAPIC_REDTBL",
    "IRR",
    "ISR",
    "LAPIC_ID",
    "LAPIC_VERSION",
    "LDR",
    "LVT_CMCI",
    "LVT_ERROR",
    "LVT_LINT0",
    "LVT_LINT1",
    "LVT_PERF",
    "LVT_THERMAL",
    "LVT_TIMER",
    "PPR",
    "RFLAGS",
    "RRD",
    "SVR",
    "TIMER_CCR",
    "TIMER_DCR",
    "TIMER_ICR",
    "TMR",
    "TPR",
    "X2APIC_ICR",
    "X2APIC_ID",
    "X2APIC_LDR",
    "CpuidLocation",
    "CpuidResult",
    "EnumValue",
    "FieldSpec",
    "FieldValue",
    "LapicSnapshot",
    "Reference",
    "RegisterSpec",
    "RegisterValue",
    "decode",
    "encode",
    "get",
    "load",
    "names",
    "parse_info_lapic",
]

#: The built-in registers offered as module constants (``mvnb.regs.TIMER_CCR``). They are
#: looked up on first use (PEP 562), so ``import mvnb`` does not parse the YAML specs.
_CONSTANTS = frozenset(__all__[:__all__.index("CpuidLocation")])


def __getattr__(name: str) -> RegisterSpec:
    if name in _CONSTANTS:
        spec = get(name)
        globals()[name] = spec
        return spec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _CONSTANTS)
