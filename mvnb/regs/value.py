"""Decoded register values that print like the manual and behave like Python ints.

``decode("LVT_TIMER", 0x000300ec)["mask"]`` is a :class:`FieldValue`: an ``int`` that equals
1, knows its enum name (``masked``) and prints as ``1 (masked)`` (Intel SDM Vol. 3A, Order
Number 253668-068US, Section 10.5.1, Figure 10-8).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .codec import encode, extract
from .spec import FieldSpec, RegisterSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FieldValue", "RegisterValue"]

DIFF_COLUMNS = ["field", "before", "after", "before_enum", "after_enum"]


class FieldValue(int):
    """A field's value: an ``int`` with its :class:`FieldSpec` and enum name attached."""

    spec: FieldSpec

    def __new__(cls, spec: FieldSpec, value: int) -> FieldValue:
        self = super().__new__(cls, value)
        self.spec = spec
        return self

    @property
    def name(self) -> str:
        """The field's name."""
        return self.spec.name

    @property
    def enum(self) -> str | None:
        """The enum name of the value (``"masked"``), or None."""
        return self.spec.enum_name(int(self))

    @property
    def meaning(self) -> str:
        """The enum entry's description, or its name, or ""."""
        item = self.spec.enum_item(int(self))
        if item is None:
            return ""
        return item.description or item.name

    def number_text(self) -> str:
        """The number alone, in the field's preferred format."""
        value = int(self)
        if self.spec.format == "hex":
            return f"{value:#x}"
        if self.spec.format == "bin":
            return f"{value:#0{self.spec.width + 2}b}"
        return str(value)

    def __str__(self) -> str:
        enum = self.enum
        text = self.number_text()
        return f"{text} ({enum})" if enum else text

    def __repr__(self) -> str:
        return f"<FieldValue {self.spec.name}={self}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.enum == other
        return int(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = int.__hash__

    def __format__(self, format_spec: str) -> str:
        return str(self) if not format_spec else format(int(self), format_spec)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class RegisterValue:
    """A raw register value decoded by its :class:`RegisterSpec`.

    ``int(rv)`` is the raw value; ``rv["mask"]`` a :class:`FieldValue`; ``rv.fields`` the
    fields in spec order; ``rv.reserved`` the bits outside every field;
    ``rv.replace(mask=0, timer_mode="one_shot")`` a changed copy with reserved bits kept.
    """

    __slots__ = ("raw", "spec")

    def __init__(self, spec: RegisterSpec, raw: int) -> None:
        raw = int(raw)
        if raw < 0 or raw >> spec.width:
            raise ValueError(f"{spec.name}: {raw:#x} does not fit in {spec.width} bits")
        self.spec = spec
        self.raw = raw

    @property
    def name(self) -> str:
        """The register's name."""
        return self.spec.name

    @property
    def fields(self) -> dict[str, FieldValue]:
        """Field name → :class:`FieldValue`, in spec order."""
        return {f.name: FieldValue(f, extract(f, self.raw)) for f in self.spec.fields}

    @property
    def reserved(self) -> int:
        """The raw bits outside every field (kept as they are on encode)."""
        return self.raw & self.spec.reserved_mask

    def __getitem__(self, name: str) -> FieldValue:
        fspec = self.spec.field(name)
        return FieldValue(fspec, extract(fspec, self.raw))

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.spec.fields)

    def __iter__(self) -> Iterator[str]:
        return (f.name for f in self.spec.fields)

    def __int__(self) -> int:
        return self.raw

    def __index__(self) -> int:
        return self.raw

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RegisterValue):
            return self.spec == other.spec and self.raw == other.raw
        if isinstance(other, int):
            return self.raw == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.raw)  # equal to its raw int, so it must hash like it

    def replace(self, **changes: int | str) -> RegisterValue:
        """A copy with the named fields changed (ints or enum names)."""
        return RegisterValue(self.spec, encode(self.spec, changes, base=self.raw))

    def hex(self) -> str:
        """The raw value in hex, zero-padded to the register width."""
        return f"{self.raw:#0{(self.spec.width + 3) // 4 + 2}x}"

    def __format__(self, format_spec: str) -> str:
        return str(self) if not format_spec else format(self.raw, format_spec)

    def __repr__(self) -> str:
        return f"decode({self.spec.name!r}, {self.hex()})"

    def __str__(self) -> str:
        lines = [f"{self.spec.name} = {self.hex()}"]
        fields = self.fields
        pad = max((len(n) for n in fields), default=0)
        lines.extend(f"  {name:<{pad}} = {value}" for name, value in fields.items())
        if self.reserved:
            lines.append(f"  {'(reserved)':<{pad}} = {self.reserved:#x}")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self) if not cycle else repr(self))

    def _repr_html_(self) -> str:
        from .html import register_html

        return register_html(self)

    def to_frame(self) -> pd.DataFrame:
        """One row per field: bits, value, hex, enum name and description."""
        import pandas as pd

        rows = [
            {
                "field": name,
                "bits": value.spec.bits_text,
                "value": int(value),
                "hex": f"{int(value):#x}",
                "enum": value.enum,
                "description": value.spec.description,
            }
            for name, value in self.fields.items()
        ]
        return pd.DataFrame(rows).set_index("field")

    def diff(self, other: RegisterValue | int) -> pd.DataFrame:
        """The fields that change from this value (before) to ``other`` (after)."""
        import pandas as pd

        if not isinstance(other, RegisterValue):
            other = RegisterValue(self.spec, int(other))
        elif other.spec.name != self.spec.name:
            raise ValueError(f"cannot diff {self.spec.name} against {other.spec.name}")
        return pd.DataFrame(diff_rows(self, other), columns=DIFF_COLUMNS).set_index("field")


def diff_rows(old: RegisterValue, new: RegisterValue) -> list[dict[str, object]]:
    """Rows ``field, before, after, before_enum, after_enum`` for each changed field."""
    rows: list[dict[str, object]] = []
    before, after = old.fields, new.fields
    for name, value in after.items():
        if int(value) != int(before[name]):
            rows.append(
                {
                    "field": name,
                    "before": int(before[name]),
                    "after": int(value),
                    "before_enum": before[name].enum,
                    "after_enum": value.enum,
                }
            )
    if old.reserved != new.reserved:
        rows.append(
            {
                "field": "(reserved)",
                "before": old.reserved,
                "after": new.reserved,
                "before_enum": None,
                "after_enum": None,
            }
        )
    return rows
