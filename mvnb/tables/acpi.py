"""ACPI: the RSDP, the generic table header, the XSDT/RSDT walk, and ``acpi_tables``.

Layouts from the ACPI Specification 6.5: the RSDP (Section 5.2.5.3, Table 5.3) is found
on 16-byte boundaries in the first KiB of the EBDA or in 0xE0000-0xFFFFF (5.2.5.1); every
other table starts with the 36-byte system description table header (5.2.6, Table 5.4),
whose bytes sum to 0 over ``length``; the XSDT (5.2.8) lists 64-bit table addresses, the
RSDT (5.2.7) 32-bit ones; the FADT (5.2.9, Table 5.9) points at the DSDT (``DSDT`` at
offset 40, ``X_DSDT`` at 140). Tables mvnb knows are decoded further: "APIC" is a
:class:`~mvnb.tables.madt.MADT`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..errors import FaultError
from . import render
from ._bytes import ACPI_SIGNATURES, text, uint
from ._scan import paragraphs
from .findings import Finding, checksum

if TYPE_CHECKING:
    import pandas as pd

    from ..gdb import Session

__all__ = ["RSDP", "AcpiTable", "AcpiTables", "RootTable", "SDTHeader", "acpi_tables",
           "find_rsdp", "read_table"]

HEADER_LENGTH = 36
_MAX_LENGTH = 1 << 20  # larger "tables" are taken as garbage lengths, not read


# -- RSDP -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RSDP:
    """The Root System Description Pointer (Table 5.3)."""

    address: int
    oem_id: str | None
    revision: int
    rsdt_address: int
    length: int | None
    xsdt_address: int | None
    checksum_ok: bool
    extended_checksum_ok: bool | None
    findings: list[Finding]
    raw: bytes = dataclasses.field(repr=False)

    @classmethod
    def from_bytes(cls, data: bytes, address: int = 0) -> RSDP:
        findings = []
        raw = bytes(data[:36])
        if raw[:8] != b"RSD PTR ":
            findings.append(Finding("signature", "'RSD PTR '", repr(raw[:8]), 0, address))
        if len(raw) < 20:
            findings.append(Finding("length", "20 bytes (ACPI 1.0) or more",
                                    f"{len(raw)} bytes"))
        first = checksum(raw[:20])
        if first:
            findings.append(Finding("checksum", "the first 20 bytes sum to 0 mod 256",
                                    f"they sum to {first:#04x}", 8, address + 8))
        revision = uint(raw, 15, 1) or 0
        length = xsdt = None
        extended_ok = None
        if revision >= 2:
            length = uint(raw, 20, 4)
            xsdt = uint(raw, 24, 8)
            if length is None or length < 36 or length > len(raw):
                findings.append(Finding("length", "36 bytes (ACPI 2.0+)", str(length), 20,
                                        address + 20))
            else:
                total = checksum(raw[:length])
                extended_ok = total == 0
                if total:
                    findings.append(Finding("extended checksum", f"the {length} bytes sum to 0",
                                            f"they sum to {total:#04x}", 32, address + 32))
        return cls(address, text(raw, 9, 6), revision, uint(raw, 16, 4) or 0, length, xsdt,
                   first == 0 and len(raw) >= 20, extended_ok, findings, raw)

    def fields(self) -> list[tuple[str, Any, str]]:
        return [
            ("address", self.address, "physical"),
            ("oem_id", self.oem_id, ""),
            ("revision", self.revision, "ACPI 2.0+" if self.revision >= 2 else "ACPI 1.0"),
            ("rsdt_address", self.rsdt_address, ""),
            ("length", self.length, ""),
            ("xsdt_address", self.xsdt_address, ""),
            ("checksum", self.checksum_ok, "valid" if self.checksum_ok else "INVALID"),
        ]

    def to_frame(self) -> pd.DataFrame:
        return render.fields_frame(self.fields())

    def _repr_html_(self) -> str:
        return render.rsdp_html(self)


def find_rsdp(session: Session, *, timeout: float | None = 30.0) -> RSDP | None:
    """The RSDP, searched where ACPI 6.5 Section 5.2.5.1 says; None when there is none."""
    try:
        ebda = (uint(session.read_physical(0x40E, 2, timeout=timeout), 0, 2) or 0) << 4
    except FaultError:
        ebda = 0
    areas = ([(ebda, 1024)] if ebda else []) + [(0xE0000, 0x20000)]
    for address, data in paragraphs(session, areas, b"RSD PTR ", 36, timeout=timeout):
        rsdp = RSDP.from_bytes(data, address)
        if rsdp.checksum_ok:
            return rsdp
    return None


# -- tables -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SDTHeader:
    """The system description table header (Table 5.4); None where the data ended."""

    signature: str | None
    length: int | None
    revision: int | None
    checksum: int | None
    oem_id: str | None
    oem_table_id: str | None
    oem_revision: int | None
    creator_id: str | None
    creator_revision: int | None

    @classmethod
    def from_bytes(cls, data: bytes) -> SDTHeader:
        return cls(text(data, 0, 4), uint(data, 4, 4), uint(data, 8, 1), uint(data, 9, 1),
                   text(data, 10, 6), text(data, 16, 8), uint(data, 24, 4), text(data, 28, 4),
                   uint(data, 32, 4))


class AcpiTable:
    """An ACPI table with its header checked; subclasses decode the body."""

    def __init__(self, address: int, data: bytes) -> None:
        self.address = address
        self.header = SDTHeader.from_bytes(data)
        length = self.header.length
        self.raw = bytes(data[:length] if length is not None and length >= 0 else data)
        self.findings: list[Finding] = []
        if len(data) < HEADER_LENGTH:
            self._add("header", f"{HEADER_LENGTH} bytes", f"{len(data)} bytes (truncated)")
        if length is not None and length < HEADER_LENGTH:
            self._add("length", f">= {HEADER_LENGTH} (the header)", str(length), 4)
        elif length is not None and length > len(data):
            self._add("length", f"{length} bytes to read", f"{len(data)} bytes (truncated)", 4)
        self.checksum_ok = len(self.raw) >= HEADER_LENGTH and checksum(self.raw) == 0
        if len(self.raw) >= HEADER_LENGTH and not self.checksum_ok:
            self._add("checksum", f"the {len(self.raw)} bytes sum to 0 mod 256",
                      f"they sum to {checksum(self.raw):#04x}", 9)
        self._decode()

    @classmethod
    def from_bytes(cls, data: bytes, address: int = 0) -> AcpiTable:
        """Decode ``data`` (the table at physical ``address``); never raises on bad bytes."""
        return cls(address, data)

    def _decode(self) -> None:
        """Subclasses decode the body here."""

    def _add(self, what: str, expected: str, found: str, offset: int | None = None,
             **kw: Any) -> None:
        address = self.address + offset if offset is not None else None
        self.findings.append(Finding(what, expected, found, offset, address, **kw))

    @property
    def signature(self) -> str:
        return self.header.signature or "????"

    @property
    def body(self) -> bytes:
        return self.raw[HEADER_LENGTH:]

    def fields(self) -> list[tuple[str, Any, str]]:
        """(field, value, meaning) rows of the header."""
        h = self.header
        return [
            ("address", self.address, "physical"),
            ("signature", h.signature, ACPI_SIGNATURES.get(h.signature or "", "")),
            ("length", h.length, "bytes"),
            ("revision", h.revision, ""),
            ("checksum", h.checksum, "valid" if self.checksum_ok else "INVALID"),
            ("oem_id", h.oem_id, ""),
            ("oem_table_id", h.oem_table_id, ""),
            ("oem_revision", h.oem_revision, ""),
            ("creator_id", h.creator_id, ""),
            ("creator_revision", h.creator_revision, ""),
        ]

    def row(self) -> dict[str, Any]:
        """One row for a list of tables."""
        h = self.header
        return {"signature": h.signature, "address": self.address, "length": h.length,
                "revision": h.revision, "oem_id": h.oem_id, "oem_table_id": h.oem_table_id,
                "checksum_ok": self.checksum_ok, "findings": len(self.findings)}

    def to_frame(self) -> pd.DataFrame:
        """The header fields (subclasses: one row per entry)."""
        return render.fields_frame(self.fields())

    def _repr_html_(self) -> str:
        return render.acpi_table_html(self)

    def __str__(self) -> str:
        lines = [f"ACPI {self.signature} at {self.address:#x}: {self.header.length} bytes, "
                 f"OEM {self.header.oem_id!r} {self.header.oem_table_id!r}, checksum "
                 + ("valid" if self.checksum_ok else "INVALID")]
        return "\n".join([*lines, *(f"  {f}" for f in self.findings)])

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.signature} at {self.address:#x} "
                f"findings={len(self.findings)}>")


class RootTable(AcpiTable):
    """The XSDT (64-bit entries) or RSDT (32-bit entries): the addresses of the others."""

    def _decode(self) -> None:
        width = 8 if self.header.signature == "XSDT" else 4
        body = self.body
        if len(body) % width:
            self._add("length", f"a multiple of {width} bytes of entries",
                      f"{len(body)} bytes", HEADER_LENGTH)
        self.entries = [uint(body, at, width) or 0 for at in range(0, len(body) - width + 1,
                                                                   width)]

    def to_frame(self) -> pd.DataFrame:
        return render.entries_frame([{"entry": i, "address": a}
                                     for i, a in enumerate(self.entries)])


def _decoder(signature: str | None) -> type[AcpiTable]:
    from .madt import MADT

    return {"APIC": MADT, "XSDT": RootTable, "RSDT": RootTable}.get(signature or "", AcpiTable)


def decode(data: bytes, address: int = 0) -> AcpiTable:
    """The table in ``data``, decoded by its signature (MADT, XSDT/RSDT, else generic)."""
    return _decoder(text(data, 0, 4)).from_bytes(data, address)


def read_table(session: Session, address: int, *, timeout: float | None = 30.0) -> AcpiTable:
    """Read the table at physical ``address`` (its header says how long) and decode it."""
    head = session.read_physical(address, HEADER_LENGTH, timeout=timeout)
    length = uint(head, 4, 4) or 0
    if HEADER_LENGTH < length <= _MAX_LENGTH:
        try:
            head = session.read_physical(address, length, timeout=timeout)
        except FaultError:
            pass  # decoded from the header alone: a "truncated" finding says so
    return decode(head, address)


class AcpiTables(dict[str, AcpiTable]):
    """signature → table (a second table of one signature is "SSDT#2"); ``rsdp``, the
    ``findings`` of the walk (pointers that could not be read), ``to_frame()``."""

    def __init__(self, rsdp: RSDP | None) -> None:
        super().__init__()
        self.rsdp = rsdp
        self.findings: list[Finding] = []

    def add(self, table: AcpiTable) -> None:
        key, n = table.signature, 1
        while key in self:
            n += 1
            key = f"{table.signature}#{n}"
        self[key] = table

    def to_frame(self) -> pd.DataFrame:
        """One row per table: signature, address, length, revision, OEM, checksum."""
        return render.entries_frame([{"key": k, **t.row()} for k, t in self.items()])

    def _repr_html_(self) -> str:
        return render.acpi_tables_html(self)


def acpi_tables(session: Session, *, timeout: float | None = 30.0) -> AcpiTables:
    """Every ACPI table the RSDP leads to: the XSDT (or RSDT), the tables it lists, and the
    DSDT the FADT points at. Empty (with ``rsdp`` None) when the guest has no RSDP."""
    rsdp = find_rsdp(session, timeout=timeout)
    tables = AcpiTables(rsdp)
    if rsdp is None:
        return tables
    root_address = rsdp.xsdt_address if rsdp.revision >= 2 and rsdp.xsdt_address else \
        rsdp.rsdt_address
    pending = [root_address]
    seen: set[int] = set()
    while pending:
        address = pending.pop(0)
        if not address or address in seen:
            continue
        seen.add(address)
        try:
            table = read_table(session, address, timeout=timeout)
        except FaultError as error:
            tables.findings.append(Finding("table pointer", "a readable table",
                                           f"unreadable memory ({error})", None, address))
            continue
        tables.add(table)
        if isinstance(table, RootTable):
            pending += table.entries
        elif table.signature == "FACP":
            x_dsdt = uint(table.raw, 140, 8)
            pending.append(x_dsdt or uint(table.raw, 40, 4) or 0)
    return tables
