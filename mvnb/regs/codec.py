"""Bit-level codec: pull field values out of a raw register value and put them back.

Split fields (the APIC timer's Divide Configuration Register keeps its value in bits 3, 1
and 0; Intel SDM Vol. 3A, Order Number 253668-068US, Section 10.5.4, Figure 10-10) are
assembled most significant range first. Reserved bits are never touched by :func:`encode`,
so ``encode(spec, decode(spec, raw).fields, base=raw) == raw`` exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .spec import FieldSpec, RegisterSpec

if TYPE_CHECKING:
    from .value import RegisterValue

__all__ = ["decode", "encode", "extract", "insert", "replace", "resolve"]


def extract(fspec: FieldSpec, raw: int) -> int:
    """The value of field ``fspec`` in ``raw`` (in place if the field says so)."""
    if fspec.in_place:
        return raw & fspec.mask
    value = 0
    for msb, lsb in fspec.bits:
        width = msb - lsb + 1
        value = (value << width) | ((raw >> lsb) & ((1 << width) - 1))
    return value


def insert(fspec: FieldSpec, raw: int, value: int) -> int:
    """``raw`` with field ``fspec`` set to ``value``; every other bit is kept."""
    if value < 0 or value > fspec.max_value():
        raise ValueError(
            f"value {value:#x} does not fit field {fspec.name!r} (bits {fspec.bits_text})"
        )
    if fspec.in_place:
        if value & ~fspec.mask:
            raise ValueError(
                f"field {fspec.name!r} reads in place (bits {fspec.bits_text}); "
                f"{value:#x} has bits outside them"
            )
        return (raw & ~fspec.mask) | value
    out = raw & ~fspec.mask
    shift = fspec.width
    for msb, lsb in fspec.bits:
        width = msb - lsb + 1
        shift -= width
        out |= ((value >> shift) & ((1 << width) - 1)) << lsb
    return out


def resolve(fspec: FieldSpec, value: int | str) -> int:
    """Turn an int or an enum name (``"periodic"``) into the field's integer value."""
    if isinstance(value, str):
        return fspec.enum_value(value)
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value.__index__())
    except AttributeError:
        raise TypeError(
            f"field {fspec.name!r} takes an int or an enum name, not {type(value).__name__}"
        ) from None


def encode(
    spec: RegisterSpec | str, fields: Mapping[str, int | str], *, base: int | None = None
) -> int:
    """Build a raw value from field values (ints or enum names).

    Bits not named in ``fields`` (reserved bits included) come from ``base``; without a
    base, from the spec's reset value, else zero.
    """
    if isinstance(spec, str):
        from .registry import get

        spec = get(spec)
    raw = base if base is not None else (spec.reset or 0)
    if raw < 0 or raw >> spec.width:
        raise ValueError(f"{spec.name}: base {raw:#x} does not fit in {spec.width} bits")
    for name, value in fields.items():
        fspec = spec.field(name)
        raw = insert(fspec, raw, resolve(fspec, value))
    return raw


def decode(spec: RegisterSpec | str, raw: int) -> RegisterValue:
    """Decode ``raw`` as register ``spec`` (a :class:`RegisterSpec` or a built-in name)."""
    from .registry import get
    from .value import RegisterValue

    return RegisterValue(get(spec), raw)


def replace(value: RegisterValue, **changes: int | str) -> RegisterValue:
    """A copy of ``value`` with the named fields changed (ints or enum names)."""
    return value.replace(**changes)
