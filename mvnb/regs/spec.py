"""Register and field specifications: what a register's bits mean and where it lives.

A :class:`RegisterSpec` is a frozen, hashable description of one register (the LVT Timer,
IA32_APIC_BASE, CPUID.1:EDX ...) with its :class:`FieldSpec` bit fields, enum values and the
manual reference it was written from (for the local APIC: Intel SDM Vol. 3A, Chapter 10
"Advanced Programmable Interrupt Controller" in editions up to 2021, Chapter 11 later; every
:class:`Reference` names its edition). Specs come from YAML files; see
``docs/register-specs.md`` and :mod:`mvnb.regs.loader`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import UnknownName

if TYPE_CHECKING:
    from .value import RegisterValue

__all__ = ["CpuidLocation", "EnumValue", "FieldSpec", "Reference", "RegisterSpec"]

ACCESS = ("rw", "ro", "wo")
FORMATS = ("dec", "hex", "bin")
CPUID_REGS = ("eax", "ebx", "ecx", "edx")


@dataclass(frozen=True)
class Reference:
    """Where a register's layout is documented: document, edition and section/figure/table."""

    document: str
    edition: str
    section: str | None = None
    figure: str | None = None
    table: str | None = None
    note: str | None = None

    def __str__(self) -> str:
        parts = [f"{self.document} ({self.edition})"]
        if self.section:
            parts.append(f"Section {self.section}")
        if self.figure:
            parts.append(f"Figure {self.figure}")
        if self.table:
            parts.append(f"Table {self.table}")
        text = ", ".join(parts)
        return f"{text}; {self.note}" if self.note else text


@dataclass(frozen=True)
class EnumValue:
    """One named value of an enumerated field (``1 → masked``)."""

    value: int
    name: str
    description: str = ""


@dataclass(frozen=True)
class CpuidLocation:
    """A CPUID output register: leaf, subleaf (None when the leaf has none) and register."""

    leaf: int
    reg: str
    subleaf: int | None = None

    def __str__(self) -> str:
        sub = "" if self.subleaf is None else f",ECX={self.subleaf:#x}"
        return f"CPUID.(EAX={self.leaf:#x}{sub}):{self.reg.upper()}"


@dataclass(frozen=True)
class FieldSpec:
    """A named bit field.

    ``bits`` holds ``(msb, lsb)`` ranges, most significant part of the field value first, so a
    split field such as the DCR's divide value (register bits 3, 1, 0) is
    ``((3, 3), (1, 0))``. An ``in_place`` field reads as ``raw & mask`` rather than shifted
    down (IA32_APIC_BASE's base reads 0xFEE00000, not 0xFEE00).
    """

    name: str
    bits: tuple[tuple[int, int], ...]
    description: str = ""
    access: str = "rw"
    enum: tuple[EnumValue, ...] = ()
    in_place: bool = False
    format: str = "dec"

    @property
    def width(self) -> int:
        """Number of bits in the field value."""
        return sum(msb - lsb + 1 for msb, lsb in self.bits)

    @property
    def mask(self) -> int:
        """The field's bits within the register."""
        mask = 0
        for msb, lsb in self.bits:
            mask |= ((1 << (msb - lsb + 1)) - 1) << lsb
        return mask

    @property
    def lsb(self) -> int:
        """The lowest register bit the field occupies."""
        return min(lsb for _, lsb in self.bits)

    @property
    def msb(self) -> int:
        """The highest register bit the field occupies."""
        return max(msb for msb, _ in self.bits)

    @property
    def bits_text(self) -> str:
        """The bits as the SDM writes them: ``18:17``, ``16``, ``3,1:0``."""
        return ",".join(str(m) if m == lo else f"{m}:{lo}" for m, lo in self.bits)

    def max_value(self) -> int:
        """The largest value the field can hold (in place: the mask itself)."""
        return self.mask if self.in_place else (1 << self.width) - 1

    def enum_name(self, value: int) -> str | None:
        """The enum name for ``value``, or None."""
        for item in self.enum:
            if item.value == value:
                return item.name
        return None

    def enum_item(self, value: int) -> EnumValue | None:
        """The enum entry for ``value``, or None."""
        for item in self.enum:
            if item.value == value:
                return item
        return None

    def enum_value(self, name: str) -> int:
        """The value named ``name``; raises ValueError listing the names that exist."""
        for item in self.enum:
            if item.name == name:
                return item.value
        names = ", ".join(item.name for item in self.enum) or "(none: the field has no enum)"
        raise ValueError(f"field {self.name!r} has no value named {name!r}; names: {names}")


@dataclass(frozen=True)
class RegisterSpec:
    """A register: its fields, where it lives, its reset value and its reference.

    Hashable, so a spec can be a dictionary key or a sampler column source; it carries
    ``mmio_offset`` (xAPIC: offset from the LAPIC base), ``msr`` (for LAPIC registers the
    x2APIC MSR), ``cpuid``, ``gdb_register``, ``width`` and ``volatile``.
    """

    name: str
    width: int
    fields: tuple[FieldSpec, ...]
    reference: Reference
    title: str = ""
    description: str = ""
    family: str = ""
    mmio_offset: int | None = None
    msr: int | None = None
    cpuid: CpuidLocation | None = None
    gdb_register: str | None = None
    reset: int | None = None
    access: str = "rw"
    volatile: bool = False
    side_effects: str | None = None
    reserved_notes: tuple[tuple[tuple[int, int], str], ...] = ()
    source: str = field(default="", compare=False)

    @property
    def where(self) -> list[str]:
        """Where the register lives: MMIO offset, MSR, CPUID leaf, GDB register."""
        out = []
        if self.mmio_offset is not None:
            out.append(f"MMIO offset {self.mmio_offset:#05x}")
        if self.msr is not None:
            out.append(f"MSR {self.msr:#x}")
        if self.cpuid is not None:
            out.append(str(self.cpuid))
        if self.gdb_register is not None:
            out.append(f"GDB ${self.gdb_register}")
        return out

    def __repr__(self) -> str:
        loc = f", {', '.join(self.where)}" if self.where else ""
        return f"<RegisterSpec {self.name}: {self.title or self.name}, {self.width} bits{loc}>"

    @property
    def mask(self) -> int:
        """All bits of the register."""
        return (1 << self.width) - 1

    @property
    def field_mask(self) -> int:
        """Bits covered by some field."""
        mask = 0
        for f in self.fields:
            mask |= f.mask
        return mask

    @property
    def reserved_mask(self) -> int:
        """Bits outside every field: reserved, preserved on encode."""
        return self.mask & ~self.field_mask

    @property
    def mmio_words(self) -> tuple[int, ...]:
        """MMIO offsets of the 32-bit words, least significant first (16-byte stride)."""
        if self.mmio_offset is None:
            return ()
        return tuple(self.mmio_offset + 0x10 * i for i in range(max(1, self.width // 32)))

    def field(self, name: str) -> FieldSpec:
        """The field called ``name``; UnknownName lists close names and every field."""
        for f in self.fields:
            if f.name == name:
                return f
        names = [f.name for f in self.fields]
        raise UnknownName.among(f"field of {self.name}", name, names,
                                f"fields: {', '.join(names)}")

    def field_at(self, bit: int) -> FieldSpec | None:
        """The field holding register bit ``bit``, or None for a reserved bit."""
        for f in self.fields:
            if (f.mask >> bit) & 1:
                return f
        return None

    def reserved_note(self, bit: int) -> str:
        """The spec's note on reserved bit ``bit`` ("reads as 1"), or ""."""
        for (msb, lsb), note in self.reserved_notes:
            if lsb <= bit <= msb:
                return note
        return ""

    def decode(self, raw: int) -> RegisterValue:
        """Decode ``raw`` with this spec (see :func:`mvnb.regs.decode`)."""
        from .value import RegisterValue

        return RegisterValue(self, raw)

    def _repr_html_(self) -> str:
        from .html import spec_html

        return spec_html(self)
