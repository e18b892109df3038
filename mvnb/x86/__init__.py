"""The x86 CPU under the debugger: ``s.x86`` (LAPIC, CPUID, MSRs, control registers, TSC)
and the sampler's x86 column sources (``TIMER_CCR``, ``TIMER_ICR``, ``TIMER_DCR``, ``TSC``).
LAPIC registers the monitor does not show are read by the CPU itself (``lapic_cpu``,
``mmio``, ``paging``).

Importing this package registers the ``x86`` session accessor; ``import mvnb`` does that.
"""

from __future__ import annotations

from .accessor import CONTROL_REGISTERS, UNREADABLE, X86
from .lapic import LAPIC_TIMER_REGISTERS, TIMER_CCR, TIMER_DCR, TIMER_ICR, LapicColumn
from .lapic_cpu import LapicCpuReader
from .mmio import Load, MmioLoader, decode_load
from .paging import find_mapping, translate
from .probe import CPUID, RDMSR, Instruction, Prober
from .tsc import RDTSC, TSC, TscReader

__all__ = [
    "CONTROL_REGISTERS",
    "CPUID",
    "LAPIC_TIMER_REGISTERS",
    "RDMSR",
    "RDTSC",
    "TIMER_CCR",
    "TIMER_DCR",
    "TIMER_ICR",
    "TSC",
    "UNREADABLE",
    "X86",
    "Instruction",
    "LapicColumn",
    "LapicCpuReader",
    "Load",
    "MmioLoader",
    "Prober",
    "TscReader",
    "decode_load",
    "find_mapping",
    "translate",
]
