"""MP tables decoded from bytes built here from the MP spec 1.4 (no QEMU).

The Firecracker-shaped table follows shared/facts/mptable.md: for one vCPU, one processor
entry, an ISA bus, an I/O APIC (id 2, 0xFEC00000), 24 I/O interrupt entries, ExtINT to
LINT0 and NMI to LINT1: 29 entries, 288 bytes, but entry_count 30; an ACPI DSDT follows.
"""

from __future__ import annotations

import struct

import pandas as pd
import pytest

from mvnb.tables import MPFloatingPointer, MPTable
from mvnb.tables.mp import (
    BusEntry,
    IoApicEntry,
    IoInterruptEntry,
    LocalInterruptEntry,
    ProcessorEntry,
    UnknownEntry,
)

TABLE_ADDRESS = 0x9FC10


def processor(apic_id: int, flags: int) -> bytes:
    return struct.pack("<BBBBII8x", 0, apic_id, 0x14, flags, 0x000306C3, 0x0781ABFD)


def bus(bus_id: int, kind: bytes) -> bytes:
    return struct.pack("<BB6s", 1, bus_id, kind)


def ioapic(ident: int, address: int) -> bytes:
    return struct.pack("<BBBBI", 2, ident, 0x14, 1, address)


def interrupt(entry: int, kind: int, flags: int, bus_id: int, irq: int, dst: int,
              pin: int) -> bytes:
    return struct.pack("<BBHBBBB", entry, kind, flags, bus_id, irq, dst, pin)


def mp_table(entries: list[bytes], *, entry_count: int | None = None, oem: bytes = b"FC      ",
             product: bytes = b"000000000000", spec_rev: int = 4) -> bytes:
    """A configuration table with a valid checksum (Table 4-2)."""
    body = b"".join(entries)
    length = 44 + len(body)
    count = len(entries) if entry_count is None else entry_count
    header = bytearray(struct.pack("<4sHBB8s12sIHHIHBB", b"PCMP", length, spec_rev, 0, oem,
                                   product, 0, 0, count, 0xFEE00000, 0, 0, 0))
    header[7] = (-sum(header) - sum(body)) & 0xFF
    return bytes(header) + body


def firecracker_entries(cpus: int = 1) -> list[bytes]:
    out = [processor(i, 1 | (2 if i == 0 else 0)) for i in range(cpus)]
    out += [bus(0, b"ISA   "), ioapic(cpus + 1, 0xFEC00000)]
    out += [interrupt(3, 0, 0, 0, irq, cpus + 1, irq) for irq in range(24)]
    out += [interrupt(4, 3, 0, 0, 0, 0, 0), interrupt(4, 1, 0, 0, 0, 0xFF, 1)]
    return out


def dsdt_header(length: int = 0x1234) -> bytes:
    return struct.pack("<4sIBB6s8sI4sI", b"DSDT", length, 2, 0, b"FIRECK", b"FCVMDSDT", 1,
                       b"FCAT", 0x20190703)


def floating_pointer(table: int) -> bytes:
    raw = bytearray(struct.pack("<4sIBBBBB3x", b"_MP_", table, 1, 4, 0, 0, 0))
    raw[10] = -sum(raw) & 0xFF
    return bytes(raw)


def test_firecracker_table_reports_the_overrun_and_the_dsdt_past_it():
    table = mp_table(firecracker_entries(1), entry_count=30)
    assert len(table) == 288
    decoded = MPTable.from_bytes(table + dsdt_header(), TABLE_ADDRESS)
    assert len(decoded.entries) == 29 and decoded.header.entry_count == 30
    assert decoded.checksum_ok
    overrun = [f for f in decoded.findings if f.what == "entry_count"]
    assert len(overrun) == 1, decoded.findings
    finding = overrun[0]
    assert finding.offset == 288 and finding.address == TABLE_ADDRESS + 288
    assert "at most 29 entries" in finding.expected and "entry_count 30" in finding.found
    text = str(finding)
    assert "'DSDT'" in text and "Differentiated System Description Table" in text
    assert "0x44 = 68 ('D')" in text and "Unknown MP Config Entry 68" in text
    assert "|DSDT" in finding.context  # the ASCII column of the hex dump
    assert [type(e) for e in decoded.entries[:3]] == [ProcessorEntry, BusEntry, IoApicEntry]


def test_firecracker_table_entries_decode_by_the_spec():
    decoded = MPTable.from_bytes(mp_table(firecracker_entries(2)), TABLE_ADDRESS)
    assert decoded.findings == []
    cpus = decoded.processors
    assert [(c.apic_id, c.enabled, c.bsp) for c in cpus] == [(0, True, True), (1, True, False)]
    (io,) = decoded.ioapics
    assert (io.ioapic_id, io.address, io.enabled) == (3, 0xFEC00000, True)
    lint = [e for e in decoded.entries if isinstance(e, LocalInterruptEntry)]
    assert [(e.interrupt_type, e.destination, e.destination_pin) for e in lint] == [
        ("ExtINT", 0, 0), ("NMI", 0xFF, 1)]
    irqs = [e for e in decoded.entries if type(e) is IoInterruptEntry]
    assert [e.source_irq for e in irqs] == list(range(24))
    assert {(e.polarity, e.trigger) for e in irqs} == {("conforms", "conforms")}
    assert decoded.header.oem_id == "FC      " and decoded.header.base_table_length == 308


def test_frame_has_one_row_per_entry_and_renders_in_hex():
    decoded = MPTable.from_bytes(mp_table(firecracker_entries(1)), TABLE_ADDRESS)
    frame = decoded.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 29
    assert list(frame.columns[:3]) == ["offset", "type", "kind"]
    assert frame.loc[0, "kind"] == "processor" and frame.loc[0, "bsp"]
    assert str(frame["apic_id"].dtype) == "Int64"  # gaps do not turn integers into floats
    assert frame.loc[2, "address"] == 0xFEC00000
    html = decoded._repr_html_()
    assert "<table" in html and "0xfec00000" in html and "MP configuration table" in html


def test_checksum_signature_and_revision_findings():
    table = bytearray(mp_table(firecracker_entries(1)))
    table[50] ^= 0xFF
    decoded = MPTable.from_bytes(bytes(table), 0x1000)
    (finding,) = [f for f in decoded.findings if f.what == "checksum"]
    assert "sum to 0 mod 256" in finding.expected and finding.found.startswith("they sum to")
    bad = MPTable.from_bytes(b"PCNP" + mp_table(firecracker_entries(1), spec_rev=2)[4:], 0)
    whats = {f.what for f in bad.findings}
    assert {"signature", "spec revision", "checksum"} <= whats


def test_unknown_entry_type_is_shown_with_its_bytes_and_stops_the_walk():
    entries = firecracker_entries(1)
    entries[3] = b"Zq" + entries[3][2:]
    decoded = MPTable.from_bytes(mp_table(entries), 0x9FC10)
    assert len(decoded.entries) == 4 and isinstance(decoded.entries[3], UnknownEntry)
    (finding,) = [f for f in decoded.findings if f.what == "entry type"]
    assert finding.found == "90 ('Z')" and finding.offset == 44 + 20 + 8 + 8
    assert "[5a]" in finding.context and "Zq" in finding.context


def test_entries_past_entry_count_are_named():
    """QBoot (QEMU microvm's firmware) never sets entry_count: its entries are uncounted."""
    decoded = MPTable.from_bytes(mp_table(firecracker_entries(1), entry_count=0), 0x9FC10)
    assert decoded.entries == [] and len(decoded.uncounted) == 29
    (finding,) = decoded.findings
    assert finding.severity == "error" and "29 well-formed entries" in finding.note
    assert "1 processor" in finding.note and "24 io-interrupt" in finding.note
    assert list(decoded.to_frame()["counted"]) == [False] * 29


def test_entry_running_past_the_table_and_truncated_data():
    short = mp_table(firecracker_entries(1))[:100]
    decoded = MPTable.from_bytes(short, 0)
    assert any("truncated" in f.found for f in decoded.findings)
    assert MPTable.from_bytes(b"", 0).findings  # nothing at all: findings, no exception


def test_floating_pointer():
    pointer = MPFloatingPointer.from_bytes(floating_pointer(0xF5BB0), 0xF5BA0)
    assert pointer.checksum_ok and pointer.findings == []
    assert (pointer.address, pointer.table_address, pointer.spec_rev) == (0xF5BA0, 0xF5BB0, 4)
    assert "spec 1.4" in str(pointer) and "0xf5bb0" in pointer._repr_html_()
    broken = MPFloatingPointer.from_bytes(floating_pointer(0xF5BB0)[:10] + b"\0" * 6, 0)
    assert not broken.checksum_ok
    assert {f.what for f in broken.findings} >= {"checksum"}


@pytest.mark.parametrize("cpus", [1, 4, 16])
def test_base_table_length_follows_the_firecracker_formula(cpus):
    assert len(mp_table(firecracker_entries(cpus))) == 268 + 20 * cpus
