"""x2APIC end to end on QEMU 10 (issue 11): who decides the APIC's mode, and every LAPIC
register read by the CPU in the mode it ends up in.

Linux 6.1 (arch/x86/kernel/apic/apic.c): ``enable_IR_x2apic`` prepares interrupt
remapping and calls ``try_to_enable_x2apic(ir_stat)`` (inlined); without remapping in x2APIC
mode it keeps the APIC in xAPIC mode unless the hypervisor vouches for x2APIC
(``x86_init.hyper.x2apic_available``), printing "x2apic: IRQ remapping doesn't support
X2APIC mode". With remapping it sets ``x2apic_mode = 1`` and then IA32_APIC_BASE.EXTD
(``__x2apic_enable``). Each test boots its own guest: the machines differ.
"""

from __future__ import annotations

import dataclasses

import pytest

import mvnb
from mvnb.regs import parse_info_lapic

pytestmark = [pytest.mark.live,
              pytest.mark.qemu("10", reason="QEMU 7.2's TCG has no x2APIC (CPUID.01H:ECX[21] "
                                            "is 0 even with -cpu max)")]

X2APIC = 1 << 21  # CPUID.01H:ECX[21], SDM Vol. 2A, CPUID, Table 3-10
IOMMU = ["-device", "intel-iommu,intremap=on,eim=on"]
VERSION = 0x00050014  # QEMU hw/intc/apic.c: version 0x14, APIC_LVT_NB - 1 = 5 in 23:16
#: Registers that change by themselves between two reads (the timer counts down).
VOLATILE = {"TIMER_CCR", "ISR", "IRR"}


def _cpu_reads_agree_with_info_lapic(s: mvnb.Session, x2apic: bool) -> mvnb.regs.LapicSnapshot:
    """A snapshot read wholly by the CPU matches QEMU's own view, register by register."""
    text = s.monitor("info lapic")
    cpu = s.x86.lapic(source="cpu")
    assert cpu.x2apic is x2apic and cpu.text is None
    shown = parse_info_lapic(text, x2apic=x2apic)
    for name, raw in shown.items():
        if name in VOLATILE or (x2apic and name == "APR"):
            continue
        assert int(cpu[name]) == raw, name
    assert 0 <= shown["TIMER_CCR"] - int(cpu["TIMER_CCR"]) < int(cpu["TIMER_ICR"])
    assert int(cpu["ESR"]) == 0  # no read touched an offset or MSR the SDM does not define
    assert int(cpu["LAPIC_VERSION"]) == VERSION and cpu["LAPIC_VERSION"]["max_lvt"] == 5
    return cpu


def test_microvm_offers_x2apic_but_linux_keeps_xapic(guest, qemu_build):
    # From start_kernel on, boot_to's guard against a failed TSC calibration on microvm is
    # gone (mvnb/vm/boot.py): skip that calibration from the start, as its retry would.
    khz = mvnb.vm.host_tsc_khz()
    if khz:
        guest = dataclasses.replace(guest, cmdline=f"{guest.cmdline} tsc_early_khz={khz}")
    vm, s, _ = mvnb.boot_to(guest, "start_kernel", qemu=qemu_build,
                            extra_args=["-cpu", "max"])
    with vm:
        _microvm_decision(vm, s)


def _microvm_decision(vm: mvnb.Qemu, s: mvnb.Session) -> None:
    assert s.x86.cpuid(1).ecx & X2APIC
    wp = s.watch("x2apic_mode")
    decision = s.hbreak("try_to_enable_x2apic")
    stop = s.cont(timeout=60)
    assert stop.breakpoint is decision
    # No interrupt remapping on microvm: irq_remapping_prepare() failed (remap_mode < 0),
    # and no hypervisor that Linux knows vouches for x2APIC under TCG.
    assert int(s.eval("remap_mode")) < 0
    assert "bool_x86_init_noop" in s.console("print x86_init.hyper.x2apic_available")
    decision.delete()
    calibration = s.hbreak("lapic_cal_handler")
    stop = s.cont(timeout=60)
    # x2apic_disable() writes 0 over 0: the watchpoint never reports a change.
    assert stop.breakpoint is calibration and wp.hits == 0
    assert int(s.eval("x2apic_mode")) == 0
    vm.wait_serial(r"x2apic: IRQ remapping doesn't support X2APIC mode", timeout=5)
    base = s.x86.msr("IA32_APIC_BASE")
    assert base["extd"].enum == "xapic" and base["en"].enum == "enabled"
    # xAPIC mode: the Version register comes from a load of the LAPIC page by the CPU.
    assert int(s.x86.lapic_read(0x30)) == VERSION
    cpu = _cpu_reads_agree_with_info_lapic(s, x2apic=False)
    assert cpu["LAPIC_ID"]["id"] == s.x86.cpuid(1).ebx >> 24
    # SeaBIOS (QEMU 10's microvm firmware) leaves LINT0 unmasked ExtINT; qboot masks it.
    assert cpu["LVT_LINT0"]["mask"].enum == "not_masked"


def test_q35_with_interrupt_remapping_switches_to_x2apic(boot):
    vm, s, _ = boot("start_kernel", machine="q35", extra_args=["-cpu", "max", *IOMMU])
    assert int(s.eval("x2apic_mode")) == 0
    wp = s.watch("x2apic_mode")
    stop = s.cont(timeout=60)
    assert stop.reason == "watchpoint-trigger" and stop.breakpoint is wp
    assert stop.raw["value"] == {"old": "0", "new": "1"}
    trace = s.backtrace()
    assert stop.frame.function in ("x2apic_enable", "try_to_enable_x2apic")
    decided = trace[trace["function"] == "try_to_enable_x2apic"]
    assert decided["args"].iloc[0] == {"remap_mode": "1"}  # IRQ_REMAP_X2APIC_MODE
    assert "enable_IR_x2apic" in trace["function"].tolist()
    # Linux sets the variable first, then IA32_APIC_BASE.EXTD (__x2apic_enable).
    assert s.x86.msr("IA32_APIC_BASE")["extd"].enum == "xapic"
    wp.delete()
    s.hbreak("lapic_cal_handler")
    stop = s.cont(timeout=60)
    assert stop.frame.function == "lapic_cal_handler"
    vm.wait_serial(r"x2apic enabled", timeout=5)
    base = s.x86.msr("IA32_APIC_BASE")
    assert base["extd"].enum == "x2apic" and base["en"].enum == "enabled"
    assert base["base"] == 0xFEE00000
    # x2APIC mode: the registers come from rdmsr 0x800 + offset / 16.
    assert int(s.x86.lapic_read(0x30)) == VERSION
    snap = s.x86.lapic()
    assert snap.x2apic is True and set(snap.unread) == {"DFR", "LVT_CMCI"}
    assert snap["LAPIC_ID"].spec.name == "X2APIC_ID" and snap["LDR"].spec.name == "X2APIC_LDR"
    x2apic_id = int(snap["LAPIC_ID"])
    assert x2apic_id == s.x86.cpuid(0xB).edx  # CPUID.0BH:EDX is the x2APIC ID
    assert int(snap["LDR"]) == (x2apic_id >> 4) << 16 | 1 << (x2apic_id & 0xF)  # SDM 10.12.10.2
    assert snap["ICR"].spec.name == "X2APIC_ICR"
    cpu = _cpu_reads_agree_with_info_lapic(s, x2apic=True)
    assert set(cpu.unread) == {"APR", "DFR", "LVT_CMCI"}
    with pytest.raises(mvnb.errors.Unsupported, match="no DFR"):
        s.x86.lapic_read("DFR")
