"""Intel MultiProcessor Specification 1.4 tables: the floating pointer and the
configuration table with its base and extended entries.

Layouts from the MP Specification 1.4 (May 1997): the floating pointer (Section 4.1, Table
4-1), the configuration table header (4.2, Table 4-2) and the base entries (4.3: processor
4-4, bus 4-6, I/O APIC 4-7, I/O interrupt 4-8 and 4-9, local interrupt 4-11, decoded in
:mod:`.mp_entries`); extended entries (Chapter 5) are walked by their length byte. The
search for the floating pointer follows Section 4: the first KiB of the EBDA (segment at
0x40E), else the last KiB of base memory, then 0xF0000-0xFFFFF, on 16-byte boundaries.

``MPTable.from_bytes`` never raises on malformed bytes: what does not check out becomes a
:class:`~mvnb.tables.findings.Finding`. Firecracker's tables since late 2023 announce one
entry more than they hold, and the byte past their end is the "D" of a DSDT: the decoder
says so instead of walking into it (see shared/facts/mptable.md).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..errors import FaultError
from . import render
from ._bytes import describe, text, uint
from ._scan import paragraphs
from .findings import Finding, checksum, context
from .mp_entries import (
    BASE_ENTRIES,
    BusEntry,
    ExtendedEntry,
    IoApicEntry,
    IoInterruptEntry,
    LocalInterruptEntry,
    MPEntry,
    ProcessorEntry,
    UnknownEntry,
)

if TYPE_CHECKING:
    import pandas as pd

    from ..gdb import Session

__all__ = [
    "BusEntry",
    "IoApicEntry",
    "IoInterruptEntry",
    "LocalInterruptEntry",
    "MPEntry",
    "MPFloatingPointer",
    "MPHeader",
    "MPTable",
    "ProcessorEntry",
    "UnknownEntry",
    "find_mp",
]

HEADER_LENGTH = 44
_PAST = 48  # bytes read past the table's end, to name what lies there
_MAX_TABLE = 0x10000  # base_table_length and extended_table_length are 16-bit
SPEC_REVISIONS = {1: "1.1", 4: "1.4"}


# -- the floating pointer -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MPFloatingPointer:
    """The 16-byte MP floating pointer structure (MP spec 1.4, Table 4-1)."""

    address: int
    table_address: int
    length: int  # in 16-byte paragraphs
    spec_rev: int
    checksum: int
    feature1: int  # 0: a configuration table is present; else a default configuration
    feature2: int  # bit 7: IMCR present (PIC mode)
    checksum_ok: bool
    findings: list[Finding]
    raw: bytes = dataclasses.field(repr=False)

    @classmethod
    def from_bytes(cls, data: bytes, address: int = 0) -> MPFloatingPointer:
        findings: list[Finding] = []
        raw = bytes(data[:16])
        if len(raw) < 16:
            findings.append(Finding("floating pointer length", "16 bytes",
                                    f"{len(raw)} bytes"))
        if raw[:4] != b"_MP_":
            findings.append(Finding("signature", "'_MP_'", repr(raw[:4]), 0, address))
        total = checksum(raw)
        if total:
            findings.append(Finding("checksum", "the 16 bytes sum to 0 mod 256",
                                    f"they sum to {total:#04x}", 10, address + 10))
        length = uint(raw, 8, 1) or 0
        if length != 1:
            findings.append(Finding("length", "1 (paragraph)", str(length), 8, address + 8))
        rev = uint(raw, 9, 1) or 0
        if rev not in SPEC_REVISIONS:
            findings.append(Finding("spec revision", "1 (1.1) or 4 (1.4)", str(rev), 9,
                                    address + 9, severity="warning"))
        table = uint(raw, 4, 4) or 0
        feature1 = uint(raw, 11, 1) or 0
        if table == 0 and feature1 == 0:
            findings.append(Finding("configuration", "a table address or a default "
                                    "configuration type (feature byte 1)", "neither", 4,
                                    address + 4))
        return cls(address, table, length, rev, uint(raw, 10, 1) or 0, feature1,
                   uint(raw, 12, 1) or 0, total == 0 and len(raw) == 16, findings, raw)

    @property
    def imcr(self) -> bool:
        """The IMCR is present: the system starts in PIC mode (feature byte 2, bit 7)."""
        return bool(self.feature2 & 0x80)

    def fields(self) -> list[tuple[str, Any, str]]:
        """(field, value, meaning) rows."""
        return [
            ("address", self.address, "where the structure was found"),
            ("table_address", self.table_address, "the configuration table"
             + (" (none: default configuration)" if not self.table_address else "")),
            ("length", self.length, "paragraphs"),
            ("spec_rev", self.spec_rev, SPEC_REVISIONS.get(self.spec_rev, "unknown")),
            ("checksum", self.checksum, "valid" if self.checksum_ok else "INVALID"),
            ("feature1", self.feature1, "table present" if not self.feature1
             else f"default configuration {self.feature1}"),
            ("feature2", self.feature2, "IMCR present (PIC mode)" if self.imcr
             else "virtual wire mode"),
        ]

    def to_frame(self) -> pd.DataFrame:
        return render.fields_frame(self.fields())

    def _repr_html_(self) -> str:
        return render.floating_pointer_html(self)

    def __str__(self) -> str:
        state = "valid" if not self.findings else f"{len(self.findings)} findings"
        spec = SPEC_REVISIONS.get(self.spec_rev, f"revision {self.spec_rev}")
        return (f"MP floating pointer at {self.address:#x}: table at {self.table_address:#x}, "
                f"spec {spec}, {state}")


# -- the configuration table ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MPHeader:
    """The configuration table header (Table 4-2); fields the data did not reach are None."""

    signature: str | None
    base_table_length: int | None
    spec_rev: int | None
    checksum: int | None
    oem_id: str | None
    product_id: str | None
    oem_table_pointer: int | None
    oem_table_size: int | None
    entry_count: int | None
    lapic_address: int | None
    extended_table_length: int | None
    extended_table_checksum: int | None

    @classmethod
    def from_bytes(cls, data: bytes) -> MPHeader:
        return cls(text(data, 0, 4), uint(data, 4, 2), uint(data, 6, 1), uint(data, 7, 1),
                   text(data, 8, 8), text(data, 16, 12), uint(data, 28, 4), uint(data, 32, 2),
                   uint(data, 34, 2), uint(data, 36, 4), uint(data, 40, 2), uint(data, 42, 1))


class MPTable:
    """A decoded MP configuration table: ``header``, base ``entries``, ``extended``
    entries, ``findings``; ``to_frame()`` has one row per entry."""

    def __init__(self, address: int, data: bytes) -> None:
        self.address = address
        self.raw = bytes(data)
        self.header = MPHeader.from_bytes(self.raw)
        self.entries: list[MPEntry] = []
        self.uncounted: list[MPEntry] = []  # well-formed entries past entry_count
        self.extended: list[ExtendedEntry] = []
        self.findings: list[Finding] = []
        self._check_header()
        self._walk_base()
        self._walk_extended()

    @classmethod
    def from_bytes(cls, data: bytes, address: int = 0) -> MPTable:
        """Decode ``data``, the table at physical ``address``; bytes past the table's end
        are used to name what lies there."""
        return cls(address, data)

    @classmethod
    def read(cls, session: Session, address: int, *, timeout: float | None = 30.0) -> MPTable:
        """Read the table at physical ``address`` (and a little past its end) and decode it."""
        head = session.read_physical(address, HEADER_LENGTH, timeout=timeout)
        header = MPHeader.from_bytes(head)
        size = min((header.base_table_length or 0) + (header.extended_table_length or 0),
                   _MAX_TABLE * 2)
        size = max(size, HEADER_LENGTH)
        for extra in (_PAST, 0):
            try:
                return cls(address, session.read_physical(address, size + extra,
                                                          timeout=timeout))
            except FaultError:
                continue
        return cls(address, head)

    # -- checks --------------------------------------------------------------------------

    def _add(self, what: str, expected: str, found: str, offset: int | None = None, **kw: Any
             ) -> None:
        address = self.address + offset if offset is not None else None
        self.findings.append(Finding(what, expected, found, offset, address, **kw))

    @property
    def base_length(self) -> int:
        """base_table_length, bounded by the bytes at hand."""
        return min(self.header.base_table_length or 0, len(self.raw))

    def _check_header(self) -> None:
        h = self.header
        if len(self.raw) < HEADER_LENGTH:
            self._add("header", f"{HEADER_LENGTH} bytes", f"{len(self.raw)} bytes (truncated)")
        if h.signature != "PCMP":
            self._add("signature", "'PCMP'", repr(h.signature), 0)
        if h.spec_rev is not None and h.spec_rev not in SPEC_REVISIONS:
            self._add("spec revision", "1 (1.1) or 4 (1.4)", str(h.spec_rev), 6,
                      severity="warning")
        length = h.base_table_length
        if length is not None and length < HEADER_LENGTH:
            self._add("base_table_length", f">= {HEADER_LENGTH} (the header)", str(length), 4)
        elif length is not None and length > len(self.raw):
            self._add("base_table_length", f"{length} bytes to read",
                      f"{len(self.raw)} bytes (truncated)", 4)
        elif length is not None:
            total = checksum(self.raw[:length])
            if total:
                self._add("checksum", f"the {length} bytes of the base table sum to 0 mod 256",
                          f"they sum to {total:#04x}", 7)

    def _walk_base(self) -> None:
        count = self.header.entry_count
        end = self.header.base_table_length
        if count is None or end is None:
            return
        at = HEADER_LENGTH
        for index in range(count):
            if at >= end:
                self._overrun(index, count, at)
                return
            if at >= len(self.raw):
                self._add("entry", f"entry {index + 1} of {count}",
                          f"the data ends at offset {len(self.raw):#x}", at)
                return
            kind = self.raw[at]
            entry_type = BASE_ENTRIES.get(kind)
            if entry_type is None:
                self._unknown(index, count, at)
                return
            if at + entry_type.length > end:
                self._add("entry length", f"{entry_type.length} bytes for a {entry_type.kind} "
                          f"entry (entry {index + 1} of {count})",
                          f"{end - at} bytes before base_table_length ends", at,
                          context=context(self.raw, at, base=self.address))
                return
            if at + entry_type.length > len(self.raw):
                self._add("entry", f"entry {index + 1} of {count} ({entry_type.length} bytes)",
                          f"the data ends at offset {len(self.raw):#x}", at)
                return
            self.entries.append(entry_type.decode(self.raw, at))
            at += entry_type.length
        if at < end <= len(self.raw):
            self._uncounted(count, at, end)

    def _uncounted(self, count: int, at: int, end: int) -> None:
        """Bytes left inside base_table_length after ``count`` entries: entries that
        entry_count leaves out (QBoot's table, QEMU microvm: entry_count 0), or padding."""
        start = at
        while at < end and self.raw[at] in BASE_ENTRIES:
            entry_type = BASE_ENTRIES[self.raw[at]]
            if at + entry_type.length > end:
                break
            self.uncounted.append(entry_type.decode(self.raw, at))
            at += entry_type.length
        kinds: dict[str, int] = {}
        for entry in self.uncounted:
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in kinds.items())
        note = (f"they hold {len(self.uncounted)} well-formed entries ({summary}) that a "
                "walker trusting entry_count never sees" if self.uncounted else
                f"they look like {describe(self.raw[start:end])}")
        if at < end and self.uncounted:
            note += f"; then {end - at} bytes of {describe(self.raw[at:end])}"
        self._add("entry_count", f"{count} entries filling base_table_length {end}",
                  f"{end - start} bytes left after entry {count}", start,
                  context=context(self.raw, start, base=self.address), note=note,
                  severity="error" if self.uncounted else "warning")

    def _overrun(self, index: int, count: int, at: int) -> None:
        past = self.raw[at : at + 36]
        what_lies = describe(past) if past else "bytes that were not read"
        note = f"past base_table_length lies {what_lies}"
        if past:
            byte = past[0]
            shown = f" ({chr(byte)!r})" if 32 <= byte < 127 else ""
            note += (f"; its first byte {byte:#04x} = {byte}{shown}, read as an entry type by "
                     "a walker that trusts entry_count, is "
                     + (f"a {BASE_ENTRIES[byte].kind} entry" if byte in BASE_ENTRIES else
                        f"no entry type (\"Unknown MP Config Entry {byte}\")"))
        self._add("entry_count", f"at most {index} entries (what base_table_length "
                  f"{self.header.base_table_length} holds)",
                  f"entry_count {count}: entry {index + 1} would start at offset {at:#x}, "
                  "past the table's end", at,
                  context=context(self.raw, at, base=self.address), note=note)

    def _unknown(self, index: int, count: int, at: int) -> None:
        byte = self.raw[at]
        shown = f" ({chr(byte)!r})" if 32 <= byte < 127 else ""
        self.entries.append(UnknownEntry(byte, at, self.raw[at : self.base_length]))
        self._add("entry type", "0-4 (processor, bus, I/O APIC, I/O interrupt, local "
                  f"interrupt) for entry {index + 1} of {count}", f"{byte}{shown}", at,
                  context=context(self.raw, at, base=self.address),
                  note=f"its length is unknown, so the walk stops; the bytes there look like "
                  f"{describe(self.raw[at : at + 36])}")

    def _walk_extended(self) -> None:
        length = self.header.extended_table_length or 0
        start = self.header.base_table_length
        if not length or start is None:
            return
        data = self.raw[start : start + length]
        if len(data) < length:
            self._add("extended table", f"{length} bytes", f"{len(data)} bytes (truncated)",
                      start)
            return
        total = (checksum(data) + (self.header.extended_table_checksum or 0)) & 0xFF
        if total:
            self._add("extended checksum", "extended entries plus the checksum byte sum to 0",
                      f"{total:#04x}", 42)
        at = 0
        while at + 2 <= len(data):
            size = data[at + 1]
            if size < 2 or at + size > len(data):
                self._add("extended entry length", f"2..{len(data) - at}", str(size),
                          start + at, context=context(self.raw, start + at, base=self.address))
                return
            self.extended.append(ExtendedEntry(data[at], start + at, size,
                                               data[at : at + size]))
            at += size

    # -- views ---------------------------------------------------------------------------

    def of_kind(self, kind: type[MPEntry]) -> list[Any]:
        return [e for e in self.entries if type(e) is kind]

    @property
    def processors(self) -> list[ProcessorEntry]:
        return self.of_kind(ProcessorEntry)

    @property
    def ioapics(self) -> list[IoApicEntry]:
        return self.of_kind(IoApicEntry)

    @property
    def checksum_ok(self) -> bool:
        return not any(f.what in ("checksum", "extended checksum") for f in self.findings)

    def fields(self) -> list[tuple[str, Any, str]]:
        """(field, value, meaning) rows of the header."""
        h = self.header
        return [
            ("address", self.address, "physical"),
            ("signature", h.signature, ""),
            ("base_table_length", h.base_table_length, "bytes: header and base entries"),
            ("spec_rev", h.spec_rev, SPEC_REVISIONS.get(h.spec_rev or -1, "unknown")),
            ("checksum", h.checksum, "valid" if self.checksum_ok else "INVALID"),
            ("oem_id", h.oem_id, ""),
            ("product_id", h.product_id, ""),
            ("oem_table_pointer", h.oem_table_pointer, ""),
            ("oem_table_size", h.oem_table_size, ""),
            ("entry_count", h.entry_count, f"{len(self.entries)} decoded"),
            ("lapic_address", h.lapic_address, "local APIC base"),
            ("extended_table_length", h.extended_table_length, ""),
            ("extended_table_checksum", h.extended_table_checksum, ""),
        ]

    def to_frame(self) -> pd.DataFrame:
        """One row per entry (base, then extended): offset, type, kind and its fields;
        with a ``counted`` column when base_table_length holds entries past entry_count."""
        rows = []
        for counted, entries in ((True, self.entries), (False, self.uncounted),
                                 (True, self.extended)):
            for entry in entries:
                row = entry.row()
                if self.uncounted:
                    row = {"offset": row.pop("offset"), "type": row.pop("type"),
                           "kind": row.pop("kind"), "counted": counted, **row}
                rows.append(row)
        return render.entries_frame(rows)

    def _repr_html_(self) -> str:
        return render.mp_table_html(self)

    def __str__(self) -> str:
        h = self.header
        lines = [f"MP configuration table at {self.address:#x}: {h.signature!r}, "
                 f"{h.base_table_length} bytes, {h.entry_count} entries announced, "
                 f"{len(self.entries)} decoded, OEM {h.oem_id!r} product {h.product_id!r}"]
        lines += [f"  {f}" for f in self.findings]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<MPTable at {self.address:#x} entries={len(self.entries)} "
                f"findings={len(self.findings)}>")


# -- the search -------------------------------------------------------------------------------

def _areas(session: Session, timeout: float | None) -> list[tuple[int, int]]:
    """Where Section 4 says to look: EBDA's first KiB (or base memory's last), the BIOS ROM."""
    try:
        bda = session.read_physical(0x40E, 8, timeout=timeout)
    except FaultError:
        bda = b""
    ebda = (uint(bda, 0, 2) or 0) << 4
    base_kib = uint(bda, 5, 2) or 0  # 0x413: base memory in KiB
    first = (ebda, 1024) if ebda else ((base_kib or 640) * 1024 - 1024, 1024)
    return [first, (0xF0000, 0x10000)]


def find_mp(session: Session, *, timeout: float | None = 30.0) -> MPFloatingPointer | None:
    """The MP floating pointer, searched where the MP spec says; None when there is none
    (QEMU's microvm has none). A pointer whose checksum fails is returned, with its
    findings, only when no valid one exists."""
    suspect: MPFloatingPointer | None = None
    for address, data in paragraphs(session, _areas(session, timeout), b"_MP_", 16,
                                    timeout=timeout):
        pointer = MPFloatingPointer.from_bytes(data, address)
        if pointer.checksum_ok:
            return pointer
        if suspect is None and pointer.length == 1:
            suspect = pointer
    return suspect
