"""Physical reads: QEMU's memory map (recorded ``info mtree -f``) guards them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mvnb.errors import FaultError
from mvnb.gdb.physical import check_readable, parse_mtree

DATA = Path(__file__).parent / "data"


def test_pc_memory_map():
    regions = parse_mtree((DATA / "info_mtree_f_pc_qemu72.txt").read_text())
    names = {r.name.split(" @")[0] for r in regions}
    assert {"pc.ram", "pc.bios", "ioapic", "apic-msi", "hpet"} <= names
    assert all(r.start <= r.end for r in regions)
    bios = next(r for r in regions if r.start == 0xF0000)
    assert bios.kind == "rom" and bios.readable  # SeaBIOS's F segment, write-protected
    check_readable(regions, 0xF5BA0, 16)
    check_readable(regions, 0xE0000, 0x20000)  # spans ram and rom regions


@pytest.mark.parametrize(("address", "what"), [
    (0xFEC00000, "device memory \\(ioapic, i/o\\)"),
    (0xFEE00030, "device memory \\(apic-msi"),
    (0x30000000, "no memory at physical 0x30000000"),
])
def test_devices_and_holes_are_refused(address, what):
    regions = parse_mtree((DATA / "info_mtree_f_microvm_qemu72.txt").read_text())
    with pytest.raises(FaultError, match=what) as info:
        check_readable(regions, address, 4)
    assert info.value.address == address


def test_a_range_running_into_a_hole():
    regions = parse_mtree((DATA / "info_mtree_f_microvm_qemu72.txt").read_text())
    end = max(r.end for r in regions if r.kind == "ram" and r.start == 0x100000)
    with pytest.raises(FaultError) as info:
        check_readable(regions, end - 7, 16)
    assert info.value.address == end + 1


def test_only_the_memory_address_space_counts():
    regions = parse_mtree((DATA / "info_mtree_f_microvm_qemu72.txt").read_text())
    assert not any(r.name in ("pit", "serial") for r in regions)  # those are the I/O space
