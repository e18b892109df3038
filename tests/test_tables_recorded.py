"""Firmware tables QEMU 7.2 built, recorded from live guests (tests/data/README.md),
decoded without QEMU: SeaBIOS on ``-M pc``, QBoot and QEMU's ACPI on ``-M microvm``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mvnb.tables import MADT, RSDP, MPFloatingPointer, MPTable, decode_acpi

DATA = json.loads((Path(__file__).parent / "data" / "firmware_tables_qemu72.json").read_text())


def load(machine: str, what: str) -> tuple[bytes, int]:
    record = DATA[machine][what]
    return bytes.fromhex(record["hex"]), record["address"]


def test_seabios_mp_table():
    pointer = MPFloatingPointer.from_bytes(*load("pc", "mp_floating_pointer"))
    assert pointer.checksum_ok and pointer.findings == [] and pointer.spec_rev == 4
    table = MPTable.from_bytes(*load("pc", "mp_table"))
    assert table.address == pointer.table_address
    assert table.findings == [] and table.checksum_ok
    assert table.header.oem_id == "BOCHSCPU" and table.header.lapic_address == 0xFEE00000
    assert [(p.apic_id, p.bsp) for p in table.processors] == [(0, True)]
    assert [io.address for io in table.ioapics] == [0xFEC00000]
    assert len(table.entries) == table.header.entry_count


def test_qboot_mp_table_leaves_its_entries_uncounted():
    """QBoot (QEMU's microvm firmware) writes a full table but never sets entry_count."""
    table = MPTable.from_bytes(*load("microvm", "mp_table"))
    assert table.header.oem_id == "QBOOT   " and table.header.entry_count == 0
    assert table.entries == [] and table.checksum_ok
    (finding,) = table.findings
    assert finding.what == "entry_count" and finding.severity == "error"
    kinds = [e.kind for e in table.uncounted]
    assert kinds.count("processor") == 1 and kinds.count("ioapic") == 1
    assert table.uncounted[0].bsp


@pytest.mark.parametrize("machine", ["pc", "microvm"])
def test_qemu_madt_and_rsdp(machine):
    madt = decode_acpi(*load(machine, "madt"))
    assert isinstance(madt, MADT) and madt.checksum_ok and madt.findings == []
    assert [c.apic_id for c in madt.local_apics] == [0]
    assert madt.ioapics[0].address == 0xFEC00000
    rsdp = RSDP.from_bytes(*load(machine, "rsdp"))
    assert rsdp.checksum_ok and rsdp.oem_id == "BOCHS "
    if machine == "microvm":  # what the guest's boot log shows (shared/facts)
        assert (rsdp.address, madt.address, len(madt.raw)) == (0xF34D0, 0xEFF5C, 0x52)
        assert rsdp.xsdt_address == 0xEFFAE
        assert [io.address for io in madt.ioapics] == [0xFEC00000, 0xFEC10000]
