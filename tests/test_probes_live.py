"""Session probes on the real Debian 6.1 guest under QEMU microvm (TCG) and real GDB.

One guest per module, stopped at the first ``lapic_cal_handler`` hit (the ``calibrating``
fixture); the tests run in file order and each leaves the guest stopped at a
``lapic_cal_handler`` hit with every register as it found them.
"""

from __future__ import annotations

import pytest

import mvnb
from mvnb.errors import Error, ProbeFault
from mvnb.regs import parse_info_lapic
from mvnb.x86 import probe
from mvnb.x86.lapic_cpu import LINUX_FIXADDR_TOP
from mvnb.x86.mmio import MOV_RDI, MmioLoader, decode_load, find_load
from mvnb.x86.paging import find_mapping, translate

pytestmark = pytest.mark.live

UD2 = probe.Instruction("ud2", b"\x0f\x0b", ())


def _loops(s: mvnb.Session) -> int:
    return int(s.eval_many(["lapic_cal_loops"])[0])


def _next_hit_is_the_next_tick(s: mvnb.Session) -> None:
    """cont() reaches the next lapic_cal_handler hit, with lapic_cal_loops one higher."""
    before = _loops(s)
    (bp,) = [b for b in s.breakpoints() if b.location == "lapic_cal_handler"]
    hits = bp.hits
    stop = s.cont(timeout=30)
    assert stop.breakpoint is bp and stop.frame is not None
    assert stop.frame.function == "lapic_cal_handler"
    assert _loops(s) == before + 1
    assert bp.hits == hits + 1


def test_lapic_at_the_first_hit_agrees_with_info_lapic(calibrating):
    _, s = calibrating
    assert s.frame().function == "lapic_cal_handler" and _loops(s) == -1
    plain = s.x86.lapic(probe=False)
    assert plain.text == s.monitor("info lapic")  # guest time stands still while stopped
    assert plain.x2apic is None and "probe=False" in plain.unread["TMR"]
    assert set(plain.unread) == {"IA32_APIC_BASE", "LAPIC_ID", "LAPIC_VERSION", "TMR", "LVT_CMCI"}
    snap = s.x86.lapic()
    for name, raw in parse_info_lapic(snap.text).items():
        assert int(snap[name]) == raw, name
    # The probes (an rdmsr, then ten loads: ID, Version, TMR) ran the vCPU for one step
    # each, and QEMU's virtual clock ran with it for the host time of each step: the timer
    # counted down (how far depends on the host's load: docs/probes.md), without a reload.
    after = parse_info_lapic(s.monitor("info lapic"))
    assert {k: v for k, v in after.items() if int(snap[k]) != v}.keys() <= {"TIMER_CCR"}
    assert 0 <= int(snap["TIMER_CCR"]) - after["TIMER_CCR"] < int(snap["TIMER_ICR"])
    timer = snap["LVT_TIMER"]
    assert timer["timer_mode"].enum == "periodic" and timer["mask"].enum == "masked"
    assert timer["vector"] == 236 and snap.divisor == 16
    assert snap.cpu == 0 and snap.location.function == "lapic_cal_handler"
    assert snap.timestamp.tzinfo is not None
    base = snap["IA32_APIC_BASE"]
    assert base["bsp"] == 1 and base["en"].enum == "enabled" and base["base"] == 0xFEE00000
    # ID, Version and TMR come from the CPU's own reads; QEMU's APIC has no CMCI LVT.
    assert set(snap.unread) == {"LVT_CMCI"} and "max_lvt = 5" in snap.unread["LVT_CMCI"]
    assert int(snap["LAPIC_VERSION"]) == 0x00050014 and snap.x2apic is False


def test_cpuid_as_the_guest_sees_it(calibrating):
    _, s = calibrating
    leaf1 = s.x86.cpuid(1)
    assert leaf1.decode()["edx"]["apic"] == 1 and leaf1.edx >> 9 & 1
    # the default CPU model (qemu64) has no x2APIC bit on any QEMU; -cpu max on QEMU 10 has
    assert leaf1.decode()["ecx"]["x2apic"] == 0
    hv = s.x86.cpuid(0x40000000)
    assert hv.vendor == "TCGTCGTCGTCG" and hv.eax >= 0x40000001
    assert s.x86.cpuid(0).vendor in ("GenuineIntel", "AuthenticAMD")


def test_a_probe_restores_everything_and_the_next_cont_is_the_next_tick(calibrating):
    _, s = calibrating
    regs = s.registers()
    rsp = int(regs["rsp"])
    stack = s.read_memory(rsp - 256, 512)
    frame = s.frame()
    s.x86.cpuid(1)
    s.x86.rdmsr(0x1B)
    assert (s.registers() == regs).all()
    assert s.read_memory(rsp - 256, 512) == stack
    assert s.frame() == frame
    _next_hit_is_the_next_tick(s)


def test_msr_apic_base_and_efer(calibrating):
    _, s = calibrating
    base = s.x86.msr("IA32_APIC_BASE")
    assert base["bsp"] == 1 and base["en"].enum == "enabled"
    assert base["extd"].enum == "xapic" and base["base"] == 0xFEE00000
    assert s.x86.rdmsr("IA32_APIC_BASE") == int(base) == 0xFEE00900
    efer = s.x86.msr("IA32_EFER")
    assert efer["lma"] == 1 and int(efer) == s.register("efer")
    with pytest.raises(mvnb.UnknownName, match="CR0 is not an MSR"):
        s.x86.rdmsr("CR0")
    _next_hit_is_the_next_tick(s)


def test_a_faulting_instruction_restores_everything(calibrating):
    """#UD from a ``ud2`` (a BUG() site) stands in for #GP: QEMU 7.2 TCG reads unknown
    MSRs as 0 instead of raising #GP, so no rdmsr faults on this guest."""
    _, s = calibrating
    regs = s.registers()
    rsp = int(regs["rsp"])
    stack = s.read_memory(rsp - 256, 512)
    with pytest.raises(ProbeFault, match="raised an exception") as info:
        s.x86.prober.run(UD2, {})
    assert "asm_exc_invalid_op" in info.value.where
    assert (s.registers() == regs).all()
    assert s.read_memory(rsp - 256, 512) == stack
    _next_hit_is_the_next_tick(s)


def test_gdb_stepi_probe_would_report_the_same_breakpoint_again(calibrating):
    """Why probes step behind GDB's back: with ``stepi`` and a restored pc, GDB does not
    step over the breakpoint at the pc (the pc is not its last stop pc) and reports it
    again without the guest moving (GDB 13.1, shared/facts/x86-apic.md)."""
    _, s = calibrating
    loops = _loops(s)
    regs = s.registers()
    site = s.x86.prober.site(probe.CPUID)
    s.set("$rax", 1)
    s.set("$rip", site)
    s.stepi(timeout=10)
    for name in probe.GPRS:
        s.x86.prober.write_register(name, int(regs[name]))
    stop = s.cont(timeout=30)
    assert stop.frame.function == "lapic_cal_handler" and _loops(s) == loops  # same tick
    _next_hit_is_the_next_tick(s)


def test_control_registers_decode_and_write_back(calibrating):
    _, s = calibrating
    regs = s.x86.control_registers()
    assert set(regs) == {"CR0", "CR3", "CR4", "RFLAGS", "IA32_EFER"}
    assert regs["CR0"]["pg"] == 1 and regs["CR0"]["pe"] == 1
    assert regs["IA32_EFER"]["lma"] == 1 and regs["CR4"]["pae"] == 1
    cr0 = regs["CR0"]
    widget = s.x86.register_widget("CR0")
    widget.toggle(3)  # CR0.TS
    widget.write()
    assert s.x86.control_registers()["CR0"]["ts"] == (not cr0["ts"])
    assert s.x86.write_register("CR0", cr0) == cr0
    cr4 = regs["CR4"]
    assert s.x86.write_register("CR4", cr4.replace(tsd=1))["tsd"] == 1
    assert s.x86.write_register("CR4", cr4) == cr4
    flags = regs["RFLAGS"]
    assert s.x86.write_register("RFLAGS", flags.replace(cf=1 - flags["cf"]))["cf"] != flags["cf"]
    assert s.x86.write_register("RFLAGS", flags) == flags
    with pytest.raises(mvnb.errors.Unsupported, match="not a register GDB can write"):
        s.x86.write_register("IA32_APIC_BASE", 0xFEE00900)
    _next_hit_is_the_next_tick(s)


def test_every_lapic_register_read_by_the_cpu(calibrating):
    """ID, Version and TMR, which 'info lapic' lacks, and all the rest, by loads from the
    LAPIC page; the Version register is QEMU's 0x00050014 (hw/intc/apic.c: version 0x14,
    six LVT entries), the value the seed investigation patched two kernels to see."""
    _, s = calibrating
    assert int(s.x86.lapic_read(0x30)) == 0x00050014
    version = s.x86.lapic_read("LAPIC_VERSION")
    assert (version["version"], version["max_lvt"]) == (0x14, 5)
    text = s.monitor("info lapic")
    cpu = s.x86.lapic(source="cpu")
    assert cpu.x2apic is False and cpu.text is None and set(cpu.unread) == {"LVT_CMCI"}
    shown = parse_info_lapic(text)
    for name, raw in shown.items():
        if name != "TIMER_CCR":  # it counts down while the loads run
            assert int(cpu[name]) == raw, name
    assert 0 <= shown["TIMER_CCR"] - int(cpu["TIMER_CCR"]) < int(cpu["TIMER_ICR"])
    assert cpu["LAPIC_ID"]["id"] == s.x86.cpuid(1).ebx >> 24 == 0
    assert int(cpu["ESR"]) == 0  # no load touched an offset QEMU does not implement
    assert {"TMR", "LAPIC_ID", "LAPIC_VERSION"} <= set(cpu)
    with pytest.raises(ValueError, match="later word of ISR"):
        s.x86.lapic_read(0x110)
    _next_hit_is_the_next_tick(s)


def test_the_lapic_mapping_from_linux_fixmap_and_from_the_page_tables(calibrating):
    _, s = calibrating
    fixmap = LINUX_FIXADDR_TOP - (int(s.eval("(long)FIX_APIC_BASE")) << 12)
    assert translate(s, fixmap) == 0xFEE00000
    assert find_mapping(s, 0xFEE00000) == fixmap  # the kernel-independent route agrees
    # Linux's own reader encodes APIC_BASE as its displacement: mov APIC_BASE(%rdi),%eax
    load = find_load(s)
    assert s.console(f"info symbol {load.address:#x}").startswith("native_apic_mem_read")
    assert load.base == "rdi" and load.disp % (1 << 64) == fixmap
    # Any `mov (%rdi),%eax` in kernel text reads the same register.
    anywhere = decode_load(MOV_RDI.opcode, probe.find(s, MOV_RDI))
    assert MmioLoader(s.x86.prober, anywhere).read([fixmap + 0x30, fixmap + 0x20]) == [
        0x00050014, 0]
    # A mapping the caller gives is checked: one page below is the I/O APIC (FIX_IO_APIC_BASE_0).
    s.x86.lapic_mapping = fixmap - 0x1000
    try:
        with pytest.raises(Error, match="maps 0xfec00000, not the LAPIC page"):
            s.x86.lapic_read(0x30)
    finally:
        s.x86.lapic_mapping = None
    _next_hit_is_the_next_tick(s)


def test_lapic_reads_before_the_kernel_maps_the_lapic(boot):
    _, s, _ = boot("start_kernel")
    with pytest.raises(Error, match=r"not mapped at 0x[0-9a-f]+ \(Linux's fixmap APIC_BASE"):
        s.x86.lapic_read(0x30)
    assert find_mapping(s, 0xFEE00000) is None
    snap = s.x86.lapic()  # QEMU's view is there; what only the CPU reads is not, and why
    assert "LVT_TIMER" in snap and "LAPIC_VERSION" not in snap
    assert "not mapped" in snap.unread["LAPIC_VERSION"]


def test_probes_refuse_outside_the_kernel_and_while_running(guest):
    with mvnb.Qemu(guest) as vm:  # paused at reset: real mode, no kernel yet
        s = vm.session()
        with pytest.raises(Error, match="not in 64-bit mode"):
            s.x86.cpuid(1)
        with pytest.raises(Error, match="not in 64-bit mode"):
            s.x86.msr("IA32_APIC_BASE")
        snap = s.x86.lapic()
        assert "IA32_APIC_BASE" not in snap and "64-bit" in snap.unread["IA32_APIC_BASE"]
        s.cont(wait=False)
        try:
            assert s.running
            with pytest.raises(Error, match="running"):
                s.x86.rdmsr(0x1B)
        finally:
            s.interrupt(timeout=10)


def test_unknown_register_names_list_close_matches(calibrating):
    # Before: s.x86.msr("NO_SUCH_MSR") raised a plain KeyError.
    _, s = calibrating
    where = s.register("rip")
    with pytest.raises(mvnb.UnknownName, match="no MSR named 'NO_SUCH_MSR'") as info:
        s.x86.msr("NO_SUCH_MSR")
    assert isinstance(info.value, mvnb.Error) and isinstance(info.value, KeyError)
    with pytest.raises(mvnb.UnknownName) as info:
        s.x86.msr("IA32_APIC_BAS")
    assert info.value.matches == ("IA32_APIC_BASE",)
    with pytest.raises(mvnb.UnknownName, match="did you mean ICR, CR4, CR3, CR0"):
        s.x86.write_register("CR5", 0)
    with pytest.raises(mvnb.UnknownName, match="did you mean RFLAGS"):
        s.x86.register_widget("RFLAG")
    assert s.register("rip") == where  # nothing ran in the guest
