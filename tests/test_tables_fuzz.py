"""Decoding never raises on malformed bytes: random, mutated and truncated tables give
findings (hypothesis)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from test_tables_acpi import madt_bytes
from test_tables_mp import dsdt_header, firecracker_entries, mp_table

from mvnb.tables import RSDP, MPFloatingPointer, MPTable, decode_acpi
from mvnb.tables.findings import Finding

FIRECRACKER = mp_table(firecracker_entries(2), entry_count=31) + dsdt_header()
MADT_BYTES = madt_bytes()
RSDP_BYTES = struct.pack("<8sB6sBI", b"RSD PTR ", 0, b"BOCHS ", 2, 0xEFFAE) + \
    struct.pack("<IQB3x", 36, 0xEFFAE, 0)


def exercise(obj: object) -> None:
    """Everything a notebook does with a decoded object must work too."""
    str(obj)
    repr(obj)
    obj._repr_html_()  # type: ignore[attr-defined]
    obj.to_frame()  # type: ignore[attr-defined]
    findings = obj.findings  # type: ignore[attr-defined]
    assert isinstance(findings, list) and all(isinstance(f, Finding) for f in findings)
    for finding in findings:
        assert str(finding)


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for at, value in edits:
        out[at % len(out)] = value
    return bytes(out[:cut])


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_random_bytes(data):
    for decoder in (MPTable.from_bytes, MPFloatingPointer.from_bytes, decode_acpi,
                    RSDP.from_bytes):
        exercise(decoder(data, 0x1000))
    exercise(decode_acpi(b"APIC" + data, 0))
    exercise(decode_acpi(b"XSDT" + data, 0))
    exercise(MPTable.from_bytes(b"PCMP" + data, 0))


@settings(max_examples=300, deadline=None)
@given(edits, st.integers(0, len(FIRECRACKER)))
def test_mutated_and_truncated_mp_tables(changes, cut):
    data = mutate(FIRECRACKER, changes, cut)
    table = MPTable.from_bytes(data, 0x9FC10)
    exercise(table)
    if cut < 44:
        assert table.findings  # a truncated header is always reported


@settings(max_examples=300, deadline=None)
@given(edits, st.integers(0, len(MADT_BYTES)))
def test_mutated_and_truncated_madts(changes, cut):
    data = mutate(MADT_BYTES, changes, cut)
    table = decode_acpi(data, 0xEFF5C)
    exercise(table)
    if cut < len(MADT_BYTES) and not changes:
        assert table.findings  # shorter than its length field says


@settings(max_examples=200, deadline=None)
@given(edits, st.integers(0, len(RSDP_BYTES)))
def test_mutated_and_truncated_rsdp(changes, cut):
    exercise(RSDP.from_bytes(mutate(RSDP_BYTES, changes, cut), 0xF34D0))
