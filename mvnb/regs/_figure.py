"""Shared figure geometry: which field owns each bit, rows of 32 bits, colours, tooltips.

The static HTML figure and the interactive widget both draw a register the way the Intel
SDM draws it (Vol. 3A, Order Number 253668-068US, e.g. Figure 10-8): most significant bit
on the left, one row per 32 bits, reserved bits shaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import FieldSpec, RegisterSpec

__all__ = ["RESERVED_COLOR", "Segment", "field_color", "field_tooltip", "rows", "spec_tooltip"]

ROW_BITS = 32
RESERVED_COLOR = "#d9d9d9"
CHANGED_COLOR = "#ffd966"
PALETTE = ("#dbe9f6", "#e2f0d9", "#fbe5d6", "#ede2f6", "#fff2cc", "#d9f2f2")


@dataclass(frozen=True)
class Segment:
    """A run of adjacent bits in one row that belong to one field (or are reserved)."""

    msb: int
    lsb: int
    field: FieldSpec | None

    @property
    def width(self) -> int:
        return self.msb - self.lsb + 1


def rows(spec: RegisterSpec, row_bits: int = ROW_BITS) -> list[list[Segment]]:
    """The register as rows of segments, top row most significant, each msb → lsb."""
    out: list[list[Segment]] = []
    row_width = min(row_bits, spec.width)
    top = spec.width - 1
    while top >= 0:
        bottom = max(0, top - row_width + 1)
        segments: list[Segment] = []
        bit = top
        while bit >= bottom:
            owner = spec.field_at(bit)
            low = bit
            while low - 1 >= bottom and spec.field_at(low - 1) is owner:
                low -= 1
            segments.append(Segment(bit, low, owner))
            bit = low - 1
        out.append(segments)
        top = bottom - 1
    return out


def field_color(spec: RegisterSpec, fspec: FieldSpec | None) -> str:
    """Background colour of a field's cells (grey for reserved)."""
    if fspec is None:
        return RESERVED_COLOR
    index = next(i for i, f in enumerate(spec.fields) if f.name == fspec.name)
    return PALETTE[index % len(PALETTE)]


def field_tooltip(spec: RegisterSpec, fspec: FieldSpec | None, bit: int | None = None) -> str:
    """Hover text: field, bits, description, enum values, access and the reference."""
    if fspec is None:
        note = spec.reserved_note(bit) if bit is not None else ""
        where = f"bit {bit}: " if bit is not None else ""
        return f"{where}reserved{f' — {note}' if note else ''} (kept as read)"
    lines = [f"{fspec.name} [{fspec.bits_text}] ({fspec.access})"]
    if fspec.description:
        lines.append(fspec.description)
    lines.extend(
        f"  {e.value:#x} = {e.name}{f': {e.description}' if e.description else ''}"
        for e in fspec.enum
    )
    lines.append(str(spec.reference))
    return "\n".join(lines)


def spec_tooltip(spec: RegisterSpec) -> str:
    """Hover text for a register: title, location, access, volatility and reference."""
    where = spec.where
    lines = [f"{spec.name}: {spec.title}" if spec.title else spec.name]
    if spec.description:
        lines.append(spec.description)
    if where:
        lines.append(", ".join(where))
    flags = [spec.access] + (["volatile"] if spec.volatile else [])
    if spec.reset is not None:
        flags.append(f"reset {spec.reset:#x}")
    lines.append(", ".join(flags))
    if spec.side_effects:
        lines.append(f"side effects: {spec.side_effects}")
    lines.append(str(spec.reference))
    return "\n".join(lines)
