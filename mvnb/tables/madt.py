"""The ACPI Multiple APIC Description Table ("APIC"), decoded.

ACPI 6.5 Section 5.2.12: after the header, the local APIC address (4 bytes) and flags
(bit 0 PCAT_COMPAT: dual 8259s present), then interrupt controller structures, each
``type, length, ...`` (Table 5.21): processor local APIC (5.2.12.2, type 0, 8 bytes), I/O
APIC (5.2.12.3, type 1, 12), interrupt source override (5.2.12.5, type 2, 10), NMI source
(5.2.12.6, type 3, 8), local APIC NMI (5.2.12.7, type 4, 6), local APIC address override
(5.2.12.8, type 5, 12), processor local x2APIC (5.2.12.12, type 9, 16), local x2APIC NMI
(5.2.12.13, type 10, 12). Polarity and trigger use the MPS INTI flags (Table 5.26).
Others are kept as raw bytes. Malformed structures become findings, never exceptions.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from . import render
from ._bytes import uint
from .acpi import HEADER_LENGTH, AcpiTable
from .findings import context
from .mp_entries import entry_row, inti_flags

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MADT",
    "InterruptSourceOverride",
    "IoApic",
    "LocalApic",
    "LocalApicAddressOverride",
    "LocalApicNmi",
    "LocalX2Apic",
    "LocalX2ApicNmi",
    "MadtEntry",
    "NmiSource",
    "UnknownMadtEntry",
]


@dataclasses.dataclass(frozen=True)
class MadtEntry:
    """One interrupt controller structure: its ``type``, ``length`` and ``offset``."""

    type: int
    length: int
    offset: int
    kind: ClassVar[str] = "unknown"
    size: ClassVar[int] = 2  # the length the spec gives this type

    def row(self) -> dict[str, Any]:
        return entry_row(self, {"offset": self.offset, "type": self.type, "kind": self.kind,
                                "length": self.length}, ("type", "length", "offset", "raw"))


@dataclasses.dataclass(frozen=True)
class LocalApic(MadtEntry):
    """Type 0: a processor and its local APIC (flags: bit 0 enabled, bit 1 online capable)."""

    processor_uid: int = 0
    apic_id: int = 0
    enabled: bool = False
    online_capable: bool = False
    kind: ClassVar[str] = "local-apic"
    size: ClassVar[int] = 8

    @classmethod
    def decode(cls, d: bytes, at: int) -> LocalApic:
        flags = uint(d, at + 4, 4) or 0
        return cls(d[at], d[at + 1], at, d[at + 2], d[at + 3], bool(flags & 1), bool(flags & 2))


@dataclasses.dataclass(frozen=True)
class IoApic(MadtEntry):
    """Type 1: an I/O APIC, its MMIO address and first global system interrupt."""

    ioapic_id: int = 0
    address: int = 0
    gsi_base: int = 0
    kind: ClassVar[str] = "ioapic"
    size: ClassVar[int] = 12

    @classmethod
    def decode(cls, d: bytes, at: int) -> IoApic:
        return cls(d[at], d[at + 1], at, d[at + 2], uint(d, at + 4, 4) or 0,
                   uint(d, at + 8, 4) or 0)


@dataclasses.dataclass(frozen=True)
class InterruptSourceOverride(MadtEntry):
    """Type 2: an ISA interrupt routed to another GSI, or with other polarity/trigger."""

    bus: int = 0
    source: int = 0
    gsi: int = 0
    polarity: str = ""
    trigger: str = ""
    kind: ClassVar[str] = "source-override"
    size: ClassVar[int] = 10

    @classmethod
    def decode(cls, d: bytes, at: int) -> InterruptSourceOverride:
        return cls(d[at], d[at + 1], at, d[at + 2], d[at + 3], uint(d, at + 4, 4) or 0,
                   *inti_flags(d, at + 8))


@dataclasses.dataclass(frozen=True)
class NmiSource(MadtEntry):
    """Type 3: a GSI that is a non-maskable interrupt source."""

    gsi: int = 0
    polarity: str = ""
    trigger: str = ""
    kind: ClassVar[str] = "nmi-source"
    size: ClassVar[int] = 8

    @classmethod
    def decode(cls, d: bytes, at: int) -> NmiSource:
        return cls(d[at], d[at + 1], at, uint(d, at + 4, 4) or 0, *inti_flags(d, at + 2))


@dataclasses.dataclass(frozen=True)
class LocalApicNmi(MadtEntry):
    """Type 4: which LINT input of a processor (0xFF: all) is wired to NMI."""

    processor_uid: int = 0
    polarity: str = ""
    trigger: str = ""
    lint: int = 0
    kind: ClassVar[str] = "local-apic-nmi"
    size: ClassVar[int] = 6

    @classmethod
    def decode(cls, d: bytes, at: int) -> LocalApicNmi:
        return cls(d[at], d[at + 1], at, d[at + 2], *inti_flags(d, at + 3), d[at + 5])


@dataclasses.dataclass(frozen=True)
class LocalApicAddressOverride(MadtEntry):
    """Type 5: the 64-bit local APIC address that replaces the header's."""

    address: int = 0
    kind: ClassVar[str] = "lapic-address-override"
    size: ClassVar[int] = 12

    @classmethod
    def decode(cls, d: bytes, at: int) -> LocalApicAddressOverride:
        return cls(d[at], d[at + 1], at, uint(d, at + 4, 8) or 0)


@dataclasses.dataclass(frozen=True)
class LocalX2Apic(MadtEntry):
    """Type 9: a processor with an x2APIC id (32 bits)."""

    x2apic_id: int = 0
    enabled: bool = False
    online_capable: bool = False
    processor_uid: int = 0
    kind: ClassVar[str] = "local-x2apic"
    size: ClassVar[int] = 16

    @classmethod
    def decode(cls, d: bytes, at: int) -> LocalX2Apic:
        flags = uint(d, at + 8, 4) or 0
        return cls(d[at], d[at + 1], at, uint(d, at + 4, 4) or 0, bool(flags & 1),
                   bool(flags & 2), uint(d, at + 12, 4) or 0)


@dataclasses.dataclass(frozen=True)
class LocalX2ApicNmi(MadtEntry):
    """Type 10: the x2APIC form of type 4 (uid 0xFFFFFFFF: all)."""

    processor_uid: int = 0
    polarity: str = ""
    trigger: str = ""
    lint: int = 0
    kind: ClassVar[str] = "local-x2apic-nmi"
    size: ClassVar[int] = 12

    @classmethod
    def decode(cls, d: bytes, at: int) -> LocalX2ApicNmi:
        return cls(d[at], d[at + 1], at, uint(d, at + 4, 4) or 0, *inti_flags(d, at + 2),
                   d[at + 8])


@dataclasses.dataclass(frozen=True)
class UnknownMadtEntry(MadtEntry):
    """A structure of a type mvnb does not decode, kept as bytes."""

    raw: bytes = b""

    def row(self) -> dict[str, Any]:
        return {**super().row(), "raw": self.raw[:24].hex(" ")}


_TYPES: dict[int, type[Any]] = {0: LocalApic, 1: IoApic, 2: InterruptSourceOverride,
                                3: NmiSource, 4: LocalApicNmi, 5: LocalApicAddressOverride,
                                9: LocalX2Apic, 10: LocalX2ApicNmi}
_FIXED = HEADER_LENGTH + 8  # header, local APIC address, flags


class MADT(AcpiTable):
    """The MADT: ``lapic_address``, ``pcat_compat``, ``entries``, ``findings``;
    ``to_frame()`` has one row per interrupt controller structure."""

    def _decode(self) -> None:
        self.lapic_address = uint(self.raw, HEADER_LENGTH, 4)
        flags = uint(self.raw, HEADER_LENGTH + 4, 4)
        self.flags = flags
        self.pcat_compat = bool(flags & 1) if flags is not None else None
        self.entries: list[MadtEntry] = []
        if self.signature != "APIC":
            self._add("signature", "'APIC'", repr(self.header.signature), 0)
        if len(self.raw) < _FIXED:
            self._add("length", f">= {_FIXED} bytes (header, local APIC address, flags)",
                      f"{len(self.raw)} bytes", 0)
            return
        at = _FIXED
        while at < len(self.raw):
            if at + 2 > len(self.raw):
                self._add("structure", "type and length bytes", "1 byte left", at,
                          context=context(self.raw, at, base=self.address))
                return
            kind, length = self.raw[at], self.raw[at + 1]
            entry_type = _TYPES.get(kind)
            if length < 2:
                self._add("structure length", ">= 2", str(length), at + 1,
                          context=context(self.raw, at, base=self.address),
                          note="a walker would loop here for ever or stop; the walk stops")
                return
            if at + length > len(self.raw):
                self._add("structure length", f"<= {len(self.raw) - at} (the table's end)",
                          str(length), at + 1, context=context(self.raw, at, base=self.address))
                return
            if entry_type is not None and length != entry_type.size:
                self._add("structure length", f"{entry_type.size} for {entry_type.kind}",
                          str(length), at + 1, context=context(self.raw, at, base=self.address),
                          severity="warning" if length > entry_type.size else "error")
            if entry_type is not None and length >= entry_type.size:
                self.entries.append(entry_type.decode(self.raw, at))
            else:
                self.entries.append(UnknownMadtEntry(kind, length, at,
                                                     self.raw[at : at + length]))
            at += length

    def of_kind(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.entries if type(e) is kind]

    @property
    def local_apics(self) -> list[LocalApic]:
        return self.of_kind(LocalApic)

    @property
    def ioapics(self) -> list[IoApic]:
        return self.of_kind(IoApic)

    def fields(self) -> list[tuple[str, Any, str]]:
        return [*super().fields(),
                ("lapic_address", self.lapic_address, "local APIC base"),
                ("flags", self.flags, "PCAT_COMPAT (8259s present)" if self.pcat_compat
                 else "no 8259s")]

    def to_frame(self) -> pd.DataFrame:
        """One row per interrupt controller structure: offset, type, kind, its fields."""
        return render.entries_frame([e.row() for e in self.entries])

    def _repr_html_(self) -> str:
        return render.madt_html(self)

    def __str__(self) -> str:
        counts: dict[str, int] = {}
        for e in self.entries:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in counts.items())
        return "\n".join([super().__str__().splitlines()[0] + f"; {summary}",
                          *(f"  {f}" for f in self.findings)])
