"""Firmware tables and physical memory of real guests under QEMU (issue 10), on each build.

One guest on ``-M pc`` (SeaBIOS) and one on ``-M microvm`` (QBoot on QEMU 7.2, SeaBIOS on
QEMU 10), each stopped at the first ``lapic_cal_handler`` hit, shared by the tests of this
module. Addresses the firmware chooses are read from the guest's boot log, not written here.
"""

from __future__ import annotations

import re
import warnings

import pytest

import mvnb
from mvnb import tables
from mvnb.gdb import physical

pytestmark = pytest.mark.live


def _boot(guest, machine):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return mvnb.boot_to(guest, "lapic_cal_handler", machine=machine)


@pytest.fixture(scope="module")
def pc(guest):
    vm, s, _ = _boot(guest, "pc")
    with vm:
        yield vm, s


@pytest.fixture(scope="module")
def microvm(guest):
    vm, s, _ = _boot(guest, "microvm")
    with vm:
        yield vm, s


def test_pc_mp_table(pc):
    _, s = pc
    pointer = tables.find_mp(s)
    assert pointer is not None and pointer.checksum_ok and pointer.findings == []
    assert 0xF0000 <= pointer.address < 0x100000 and pointer.address % 16 == 0
    table = tables.MPTable.read(s, pointer.table_address)
    assert table.findings == [] and table.checksum_ok, [str(f) for f in table.findings]
    assert table.header.signature == "PCMP"
    assert len(table.entries) == table.header.entry_count
    processors = table.processors
    assert len(processors) == 1 and processors[0].bsp and processors[0].enabled
    assert [(io.address, io.enabled) for io in table.ioapics] == [(0xFEC00000, True)]
    frame = table.to_frame()
    assert len(frame) == table.header.entry_count
    assert frame["kind"].tolist().count("processor") == 1
    assert "0xfec00000" in table._repr_html_()


@pytest.mark.parametrize("machine", ["pc", "microvm"])
def test_madt(machine, request, qemu_build):  # qemu_build: the fixture is looked up by name
    _, s = request.getfixturevalue(machine)
    found = tables.acpi_tables(s)
    assert found.rsdp is not None and found.rsdp.checksum_ok
    assert found.findings == []
    assert {"FACP", "APIC", "DSDT"} <= set(found)
    assert all(t.checksum_ok and not t.findings for t in found.values()), found.to_frame()
    madt = found["APIC"]
    assert isinstance(madt, tables.MADT) and madt.lapic_address == 0xFEE00000
    assert [(c.apic_id, c.enabled) for c in madt.local_apics] == [(0, True)]
    assert madt.ioapics[0].address == 0xFEC00000 and madt.ioapics[0].gsi_base == 0
    assert len(madt.to_frame()) == len(madt.entries)
    # Where the guest's boot log says they are: the firmware places them (qboot on QEMU
    # 7.2's microvm at 0xF34D0/0xEFF5C, SeaBIOS on QEMU 10's at the top of RAM).
    log = request.getfixturevalue(machine)[0].serial()
    rsdp = re.search(r"ACPI: RSDP 0x([0-9A-F]+)", log)
    apic = re.search(r"ACPI: APIC 0x([0-9A-F]+) ([0-9A-F]+)", log)
    assert rsdp and apic, "the boot log names no RSDP or MADT"
    assert found.rsdp.address == int(rsdp[1], 16)
    assert madt.address == int(apic[1], 16) and len(madt.raw) == int(apic[2], 16)
    assert ("XSDT" in found) == ("ACPI: XSDT " in log)
    if machine == "microvm":  # local APIC, two I/O APICs, LAPIC NMI on both versions
        assert len(madt.raw) == 0x52 and len(madt.ioapics) == 2


def test_microvm_mp_table_is_qboots_and_says_what_is_wrong(microvm):
    """QEMU 7.2's microvm firmware (QBoot) writes an MP table at 0x9FC00 whose entry_count
    it never sets; Linux uses the MADT there, other kernels would see no processor."""
    _, s = microvm
    pointer = tables.find_mp(s)
    if pointer is None:
        pytest.skip("this QEMU's microvm firmware wrote no MP table")
    table = tables.MPTable.read(s, pointer.table_address)
    if table.header.entry_count == len(table.entries) and not table.uncounted:
        assert table.findings == []
        return
    (finding,) = [f for f in table.findings if f.what == "entry_count"]
    assert str(len(table.uncounted)) in finding.note
    assert [p.bsp for p in table.uncounted if isinstance(p, tables.mp.ProcessorEntry)] == [True]


def test_physical_reads_agree_with_the_kernels_view(pc):
    """Through QEMU's physical mode, QEMU's xp and the kernel's direct map: the same bytes,
    and the kernel image's bytes where its page tables put them."""
    _, s = pc
    pointer = tables.find_mp(s)
    assert pointer is not None
    phymem = s.read_physical(pointer.address, 256)
    assert phymem == physical._xp(s, pointer.address, 256, 30)
    assert phymem == physical._direct_map(s, pointer.address, 256, 30)
    banner = int(s.eval("&linux_banner"))
    phys = int(s.eval("(unsigned long)&linux_banner - 0xffffffff80000000 + phys_base"))
    assert s.read_physical(phys, 64) == s.read_memory(banner, 64)
    assert s.read_physical(phys, 64).startswith(b"Linux version ")


def test_device_memory_and_holes_are_faults(pc):
    _, s = pc
    for address in (0xFEC00000, 0xFEE00000, 0x40000000):  # I/O APIC, LAPIC, past 512 MiB
        with pytest.raises(mvnb.FaultError) as info:
            s.read_physical(address, 16)
        assert info.value.address == address


def test_breakpoints_trip_after_physical_reads(pc):
    """The physical mode is off again: GDB's breakpoint writes go to virtual addresses."""
    _, s = pc
    loops = int(s.eval("lapic_cal_loops"))
    for _ in range(3):
        s.read_physical(0xF0000, 0x10000)
    # calibrate_APIC_clock calls lapic_cal_handler from its own loop as well as from the
    # tick, so the calibration's breakpoint is disabled while the tick is awaited.
    calibration = [b for b in s.breakpoints() if b.location == "lapic_cal_handler"]
    for b in calibration:
        b.disable()
    bp = s.break_at("timer_interrupt")  # a software breakpoint, inserted on resume
    try:
        stop = s.cont(timeout=30)
        assert stop.breakpoint is bp and stop.frame.function == "timer_interrupt"
    finally:
        bp.delete()
        for b in calibration:
            b.enable()
    stop = s.cont(timeout=30)
    assert stop.frame.function == "lapic_cal_handler" and int(s.eval("lapic_cal_loops")) > loops


def test_ioapics(pc, microvm):
    (io,) = tables.read_ioapics(pc[1])
    assert len(io.pins) == 24
    timer = io.pins[2]  # IRQ0 through the ISA override to GSI 2
    # IRQ0_VECTOR = ISA_IRQ_VECTOR(0) = 0x30 (arch/x86/include/asm/irq_vectors.h)
    assert timer["mask"] == "not_masked" and timer["vector"] == 0x30
    assert io.to_frame().loc[2, "vector"] == 0x30
    assert len(tables.read_ioapics(microvm[1])) == 2  # microvm: ioapic and ioapic2, 7.2 and 10
