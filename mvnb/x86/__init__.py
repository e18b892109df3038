"""The x86 CPU under the debugger: ``s.x86`` (LAPIC, CPUID, MSRs, control registers, TSC),
the sampler's x86 column sources (``TIMER_CCR``, ``TIMER_ICR``, ``TIMER_DCR``, ``TSC``,
``PM_TIMER``) and what a stop costs the guest's clocks (``measure_observer``). LAPIC
registers the monitor does not show are read by the CPU itself (``lapic_cpu``, ``mmio``,
``paging``).

Importing this package registers the ``x86`` session accessor; ``import mvnb`` does that.
"""

from __future__ import annotations

from .accessor import CONTROL_REGISTERS, UNREADABLE, X86
from .lapic import LAPIC_TIMER_REGISTERS, TIMER_CCR, TIMER_DCR, TIMER_ICR, LapicColumn
from .lapic_cpu import LapicCpuReader
from .mmio import Load, MmioLoader, decode_load
from .observer import measure_observer
from .paging import find_mapping, translate
from .pmtimer import IN_DX, PM_TIMER, PM_TIMER_MASK, PmTimerColumn
from .probe import CPUID, RDMSR, Instruction, Prober
from .tsc import RDTSC, TSC, TscReader

__all__ = [
    "CONTROL_REGISTERS",
    "CPUID",
    "IN_DX",
    "LAPIC_TIMER_REGISTERS",
    "PM_TIMER",
    "PM_TIMER_MASK",
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
    "PmTimerColumn",
    "Prober",
    "TscReader",
    "decode_load",
    "find_mapping",
    "measure_observer",
    "translate",
]
