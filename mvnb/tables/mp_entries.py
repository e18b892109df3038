"""The base and extended entries of an MP configuration table (MP spec 1.4).

Base entries (Section 4.3): processor (Table 4-4, 20 bytes), bus (4-6), I/O APIC (4-7),
I/O interrupt (4-8, 4-9) and local interrupt (4-11), 8 bytes each; the interrupt flags'
polarity is bits 1:0 and trigger mode bits 3:2 (Table 4-10). Extended entries (Chapter 5)
carry their own length byte. Each decodes from bytes the walker in :mod:`.mp` has already
checked to be there.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ._bytes import text, uint

__all__ = [
    "BASE_ENTRIES",
    "INTERRUPT_TYPES",
    "POLARITY",
    "TRIGGER",
    "BusEntry",
    "ExtendedEntry",
    "IoApicEntry",
    "IoInterruptEntry",
    "LocalInterruptEntry",
    "MPEntry",
    "ProcessorEntry",
    "UnknownEntry",
]

INTERRUPT_TYPES = {0: "INT", 1: "NMI", 2: "SMI", 3: "ExtINT"}
POLARITY = {0: "conforms", 1: "active-high", 2: "reserved", 3: "active-low"}
TRIGGER = {0: "conforms", 1: "edge", 2: "reserved", 3: "level"}


def inti_flags(data: bytes, at: int) -> tuple[str, str]:
    """Polarity and trigger mode of the 16-bit INTI flags at ``at`` (MP spec Table 4-10;
    the MADT uses the same encoding, ACPI 6.5 Table 5.50)."""
    flags = uint(data, at, 2) or 0
    return POLARITY[flags & 3], TRIGGER[(flags >> 2) & 3]


def entry_row(entry: Any, head: dict[str, Any], skip: tuple[str, ...]) -> dict[str, Any]:
    """One table row: ``head``, then the entry's own dataclass fields but ``skip``."""
    out = dict(head)
    for field in dataclasses.fields(entry):
        if field.name not in skip:
            out[field.name] = getattr(entry, field.name)
    return out


@dataclasses.dataclass(frozen=True)
class MPEntry:
    """A base entry: its ``type`` byte and its ``offset`` in the table."""

    type: int
    offset: int
    kind: ClassVar[str] = "unknown"
    length: ClassVar[int] = 0

    def row(self) -> dict[str, Any]:
        """The entry as one table row (offset, type, kind, then its own fields)."""
        return entry_row(self, {"offset": self.offset, "type": self.type, "kind": self.kind},
                         ("type", "offset", "raw"))


@dataclasses.dataclass(frozen=True)
class ProcessorEntry(MPEntry):
    """Type 0 (Table 4-4): one processor's local APIC."""

    apic_id: int = 0
    apic_version: int = 0
    enabled: bool = False
    bsp: bool = False
    cpu_signature: int = 0
    feature_flags: int = 0
    kind: ClassVar[str] = "processor"
    length: ClassVar[int] = 20

    @classmethod
    def decode(cls, data: bytes, at: int) -> ProcessorEntry:
        flags = data[at + 3]
        return cls(0, at, data[at + 1], data[at + 2], bool(flags & 1), bool(flags & 2),
                   uint(data, at + 4, 4) or 0, uint(data, at + 8, 4) or 0)


@dataclasses.dataclass(frozen=True)
class BusEntry(MPEntry):
    """Type 1 (Table 4-6): a bus and its type string ("ISA   ", "PCI   ")."""

    bus_id: int = 0
    bus_type: str = ""
    kind: ClassVar[str] = "bus"
    length: ClassVar[int] = 8

    @classmethod
    def decode(cls, data: bytes, at: int) -> BusEntry:
        return cls(1, at, data[at + 1], text(data, at + 2, 6) or "")


@dataclasses.dataclass(frozen=True)
class IoApicEntry(MPEntry):
    """Type 2 (Table 4-7): an I/O APIC."""

    ioapic_id: int = 0
    ioapic_version: int = 0
    enabled: bool = False
    address: int = 0
    kind: ClassVar[str] = "ioapic"
    length: ClassVar[int] = 8

    @classmethod
    def decode(cls, data: bytes, at: int) -> IoApicEntry:
        return cls(2, at, data[at + 1], data[at + 2], bool(data[at + 3] & 1),
                   uint(data, at + 4, 4) or 0)


@dataclasses.dataclass(frozen=True)
class IoInterruptEntry(MPEntry):
    """Type 3 (Tables 4-8, 4-9): a bus interrupt wired to an I/O APIC input."""

    interrupt_type: str = ""
    polarity: str = ""
    trigger: str = ""
    source_bus: int = 0
    source_irq: int = 0
    destination: int = 0  # I/O APIC id (0xFF: all)
    destination_pin: int = 0  # INTIN#
    kind: ClassVar[str] = "io-interrupt"
    length: ClassVar[int] = 8

    @classmethod
    def decode(cls, data: bytes, at: int) -> IoInterruptEntry:
        return cls(data[at], at, INTERRUPT_TYPES.get(data[at + 1], f"reserved {data[at + 1]}"),
                   *inti_flags(data, at + 2), data[at + 4], data[at + 5],
                   data[at + 6], data[at + 7])


@dataclasses.dataclass(frozen=True)
class LocalInterruptEntry(IoInterruptEntry):
    """Type 4 (Table 4-11): an interrupt wired to a local APIC's LINTIN# (0xFF: all)."""

    kind: ClassVar[str] = "local-interrupt"


@dataclasses.dataclass(frozen=True)
class UnknownEntry(MPEntry):
    """An entry of a type the spec does not define: its bytes up to the table's end."""

    raw: bytes = b""
    kind: ClassVar[str] = "unknown"

    def row(self) -> dict[str, Any]:
        return {**super().row(), "raw": self.raw[:20].hex(" ")}


#: Entry type → class, for the types the spec defines.
BASE_ENTRIES: dict[int, type[Any]] = {0: ProcessorEntry, 1: BusEntry, 2: IoApicEntry,
                                       3: IoInterruptEntry, 4: LocalInterruptEntry}


@dataclasses.dataclass(frozen=True)
class ExtendedEntry:
    """An extended entry (Chapter 5): type, length and bytes (128 system address space
    mapping, 129 bus hierarchy descriptor, 130 compatibility bus address space modifier)."""

    type: int
    offset: int
    length: int
    raw: bytes = dataclasses.field(repr=False)

    NAMES: ClassVar[dict[int, str]] = {128: "system-address-space", 129: "bus-hierarchy",
                                       130: "compat-bus-address-space"}

    @property
    def kind(self) -> str:
        return self.NAMES.get(self.type, "unknown")

    def row(self) -> dict[str, Any]:
        return {"offset": self.offset, "type": self.type, "kind": f"extended {self.kind}",
                "raw": self.raw.hex(" ")}
