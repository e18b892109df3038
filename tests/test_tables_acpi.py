"""ACPI tables decoded from bytes built here from the ACPI 6.5 spec (no QEMU)."""

from __future__ import annotations

import struct

from mvnb.tables import MADT, RSDP, AcpiTable, AcpiTables, RootTable, decode_acpi
from mvnb.tables._bytes import describe
from mvnb.tables.madt import InterruptSourceOverride, LocalApic, LocalApicNmi


def sdt(signature: bytes, body: bytes, revision: int = 1) -> bytes:
    """A table with the 36-byte header (Table 5.4) and a valid checksum."""
    header = bytearray(struct.pack("<4sIBB6s8sI4sI", signature, 36 + len(body), revision, 0,
                                   b"BOCHS ", b"BXPC    ", 1, b"BXPC", 1))
    header[9] = (-sum(header) - sum(body)) & 0xFF
    return bytes(header) + body


def madt_bytes(extra: bytes = b"") -> bytes:
    """Shaped like QEMU 7.2 microvm's: one CPU, two I/O APICs, LINT1 as NMI (0x52 bytes)."""
    body = struct.pack("<II", 0xFEE00000, 1)
    body += struct.pack("<BBBBI", 0, 8, 0, 0, 1)
    body += struct.pack("<BBBBII", 1, 12, 0, 0, 0xFEC00000, 0)
    body += struct.pack("<BBBBII", 1, 12, 1, 0, 0xFEC10000, 24)
    body += struct.pack("<BBBHB", 4, 6, 0xFF, 0, 1)
    return sdt(b"APIC", body + extra)


def test_madt_decodes_every_structure():
    madt = decode_acpi(madt_bytes(), 0xEFF5C)
    assert isinstance(madt, MADT) and len(madt.raw) == 0x52
    assert madt.checksum_ok and madt.findings == []
    assert madt.lapic_address == 0xFEE00000 and madt.pcat_compat
    (cpu,) = madt.local_apics
    assert isinstance(cpu, LocalApic) and (cpu.apic_id, cpu.enabled) == (0, True)
    assert [(io.ioapic_id, io.address, io.gsi_base) for io in madt.ioapics] == [
        (0, 0xFEC00000, 0), (1, 0xFEC10000, 24)]
    (nmi,) = madt.of_kind(LocalApicNmi)
    assert (nmi.processor_uid, nmi.lint) == (0xFF, 1)
    frame = madt.to_frame()
    assert list(frame["kind"]) == ["local-apic", "ioapic", "ioapic", "local-apic-nmi"]
    assert str(frame["address"].dtype) == "Int64"
    html = madt._repr_html_()
    assert "0xfec10000" in html and "ACPI MADT" in html


def test_interrupt_source_override_flags():
    iso = struct.pack("<BBBBIH", 2, 10, 0, 9, 9, 0b1111)  # active low, level
    madt = decode_acpi(madt_bytes(iso), 0)
    (entry,) = madt.of_kind(InterruptSourceOverride)
    assert (entry.source, entry.gsi, entry.polarity, entry.trigger) == (9, 9, "active-low",
                                                                        "level")


def test_madt_structure_length_problems_are_findings():
    zero = madt_bytes(b"\x00\x00")
    madt = decode_acpi(zero, 0x1000)
    (finding,) = [f for f in madt.findings if f.what == "structure length"]
    assert finding.expected == ">= 2" and finding.found == "0"
    too_long = madt_bytes(struct.pack("<BB", 0, 40))
    assert any("the table's end" in f.expected for f in decode_acpi(too_long, 0).findings)
    odd = madt_bytes(struct.pack("<BBBBIxx", 0, 10, 1, 1, 1))  # a local APIC of 10 bytes
    found = decode_acpi(odd, 0)
    assert any(f.what == "structure length" and f.severity == "warning" for f in found.findings)
    assert len(found.local_apics) == 2


def test_checksum_and_truncation():
    data = bytearray(madt_bytes())
    data[50] ^= 1
    madt = decode_acpi(bytes(data), 0)
    assert not madt.checksum_ok and any(f.what == "checksum" for f in madt.findings)
    short = decode_acpi(madt_bytes()[:60], 0)
    assert any("truncated" in f.found for f in short.findings)


def test_root_tables_and_generic_tables():
    xsdt = decode_acpi(sdt(b"XSDT", struct.pack("<QQ", 0xEFE00, 0xEFF5C)), 0xEFFAE)
    assert isinstance(xsdt, RootTable) and xsdt.entries == [0xEFE00, 0xEFF5C]
    rsdt = decode_acpi(sdt(b"RSDT", struct.pack("<II", 0x1FFE1964, 0x1FFE19D8)), 0)
    assert rsdt.entries == [0x1FFE1964, 0x1FFE19D8]
    dsdt = decode_acpi(sdt(b"DSDT", b"\x10\x20" * 10, revision=2), 0xEFD00)
    assert type(dsdt) is AcpiTable and dsdt.checksum_ok and dsdt.signature == "DSDT"
    tables = AcpiTables(None)
    for table in (xsdt, dsdt, dsdt):
        tables.add(table)
    assert list(tables) == ["XSDT", "DSDT", "DSDT#2"]
    assert list(tables.to_frame()["signature"]) == ["XSDT", "DSDT", "DSDT"]
    assert "no RSDP found" in tables._repr_html_()


def test_rsdp():
    head = bytearray(struct.pack("<8sB6sBI", b"RSD PTR ", 0, b"BOCHS ", 2, 0))
    head[8] = -sum(head) & 0xFF
    tail = bytearray(struct.pack("<IQB3x", 36, 0xEFFAE, 0))
    tail[12] = (-sum(head) - sum(tail)) & 0xFF
    rsdp = RSDP.from_bytes(bytes(head + tail), 0xF34D0)
    assert rsdp.checksum_ok and rsdp.extended_checksum_ok and rsdp.findings == []
    assert (rsdp.revision, rsdp.xsdt_address, rsdp.oem_id) == (2, 0xEFFAE, "BOCHS ")
    broken = RSDP.from_bytes(bytes(head[:8]) + b"\0" * 28, 0)
    assert not broken.checksum_ok and broken.findings


def test_describe_names_what_lies_somewhere():
    assert "'DSDT'" in describe(sdt(b"DSDT", b"")) and "length 36" in describe(sdt(b"DSDT", b""))
    assert describe(b"_MP_" + b"\0" * 12).startswith("an MP floating pointer")
    assert describe(b"\0" * 8) == "8 zero bytes"
    assert describe(b"") == "nothing that was read"
