"""Load and validate register spec files (YAML; format in ``docs/register-specs.md``).

Every problem is a :class:`mvnb.errors.SpecError` naming the file and the register (and the
field), so a typo in a user's own spec says where it is: overlapping fields, bits past the
register width, duplicate names, enum values that do not fit, unknown keys.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .spec import (
    ACCESS,
    CPUID_REGS,
    FORMATS,
    CpuidLocation,
    EnumValue,
    FieldSpec,
    Reference,
    RegisterSpec,
)

__all__ = ["load_file", "parse_specs"]

_REG_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_LOWER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_FILE_KEYS = {"family", "title", "description", "reference", "registers"}
_REG_KEYS = {
    "name",
    "title",
    "description",
    "mmio_offset",
    "msr",
    "cpuid",
    "gdb_register",
    "width",
    "reset",
    "access",
    "volatile",
    "side_effects",
    "reference",
    "fields",
}
_FIELD_KEYS = {"name", "bits", "description", "access", "enum", "in_place", "reserved", "format"}
_REF_KEYS = {"document", "edition", "section", "figure", "table", "note"}


def load_file(path: str | Path) -> dict[str, RegisterSpec]:
    """Read one YAML spec file into ``{name: RegisterSpec}`` (in file order)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read register spec file: {exc.strerror}") from exc
    import yaml  # here, not at import: ``import mvnb`` parses no spec until one is used

    # libyaml's parser where PyYAML was built with it (about ten times faster than the pure one)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    return parse_specs(doc, source=str(path))


def parse_specs(doc: Any, *, source: str = "<string>") -> dict[str, RegisterSpec]:
    """Validate a parsed YAML document and build its register specs."""
    if not isinstance(doc, Mapping):
        raise SpecError(f"{source}: a spec file is a mapping with a 'registers' list")
    _check_keys(doc, _FILE_KEYS, source, "the file")
    regs = doc.get("registers")
    if not isinstance(regs, list) or not regs:
        raise SpecError(f"{source}: 'registers' must be a non-empty list")
    family = str(doc.get("family") or Path(source).stem)
    default_ref = doc.get("reference") or {}
    if not isinstance(default_ref, Mapping):
        raise SpecError(f"{source}: the file's 'reference' must be a mapping")
    out: dict[str, RegisterSpec] = {}
    for i, item in enumerate(regs):
        where = f"{source}: register #{i + 1}"
        if not isinstance(item, Mapping):
            raise SpecError(f"{where}: each register is a mapping")
        name = item.get("name")
        if not isinstance(name, str) or not _REG_NAME.match(name):
            raise SpecError(f"{where}: name {name!r} must be upper case (e.g. LVT_TIMER)")
        where = f"{source}: register {name}"
        if name in out:
            raise SpecError(f"{where}: duplicate register name {name}")
        out[name] = _register(item, where, family, default_ref, source)
    return out


def _check_keys(item: Mapping[str, Any], allowed: set[str], source: str, what: str) -> None:
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise SpecError(
            f"{source}: {what}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _int(value: Any, where: str, what: str, *, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{where}: {what} must be a non-negative integer, not {value!r}")
    return value


def _register(
    item: Mapping[str, Any],
    where: str,
    family: str,
    default_ref: Mapping[str, Any],
    source: str,
) -> RegisterSpec:
    _check_keys(item, _REG_KEYS, where, "register")
    width = _int(item.get("width"), where, "width", optional=False)
    assert width is not None
    if not 1 <= width <= 4096:
        raise SpecError(f"{where}: width {width} must be between 1 and 4096 bits")
    access = item.get("access", "rw")
    if access not in ACCESS:
        raise SpecError(f"{where}: access {access!r} must be one of {', '.join(ACCESS)}")
    reset = _int(item.get("reset"), where, "reset")
    if reset is not None and reset >> width:
        raise SpecError(f"{where}: reset value {reset:#x} does not fit in {width} bits")
    fields, notes = _fields(item.get("fields") or [], where, width, access)
    return RegisterSpec(
        name=item["name"],
        width=width,
        fields=fields,
        reference=_reference(item.get("reference"), default_ref, where),
        title=str(item.get("title") or ""),
        description=_text(item.get("description")),
        family=family,
        mmio_offset=_int(item.get("mmio_offset"), where, "mmio_offset"),
        msr=_int(item.get("msr"), where, "msr"),
        cpuid=_cpuid(item.get("cpuid"), where),
        gdb_register=item.get("gdb_register"),
        reset=reset,
        access=access,
        volatile=bool(item.get("volatile", False)),
        side_effects=item.get("side_effects"),
        reserved_notes=notes,
        source=source,
    )


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value else ""


def _reference(value: Any, default: Mapping[str, Any], where: str) -> Reference:
    if value is not None and not isinstance(value, Mapping):
        raise SpecError(f"{where}: reference must be a mapping (document, edition, section ...)")
    merged = {**default, **(value or {})}
    _check_keys(merged, _REF_KEYS, where, "reference")
    for key in ("document", "edition"):
        if not merged.get(key):
            raise SpecError(
                f"{where}: reference needs a {key!r} (set it on the register or at the top "
                "of the file); chapter numbers move between editions, so name the edition"
            )
    if not any(merged.get(k) for k in ("section", "figure", "table")):
        raise SpecError(f"{where}: reference needs a section, figure or table")
    return Reference(**{k: (None if v is None else str(v)) for k, v in merged.items()})


def _cpuid(value: Any, where: str) -> CpuidLocation | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"leaf", "subleaf", "reg"}:
        raise SpecError(f"{where}: cpuid must be a mapping with leaf, reg and optional subleaf")
    leaf = _int(value.get("leaf"), where, "cpuid leaf", optional=False)
    reg = str(value.get("reg", "")).lower()
    if reg not in CPUID_REGS:
        raise SpecError(f"{where}: cpuid reg {value.get('reg')!r} must be one of eax/ebx/ecx/edx")
    assert leaf is not None
    return CpuidLocation(leaf=leaf, reg=reg, subleaf=_int(value.get("subleaf"), where, "subleaf"))


def _bits(value: Any, where: str) -> tuple[tuple[int, int], ...]:
    def one(part: Any) -> tuple[int, int]:
        if isinstance(part, int) and not isinstance(part, bool):
            return (part, part)
        if (
            isinstance(part, list)
            and len(part) in (1, 2)
            and all(isinstance(p, int) and not isinstance(p, bool) for p in part)
        ):
            msb, lsb = part[0], part[-1]
            if msb < lsb:
                raise SpecError(f"{where}: bits {part} must be [msb, lsb] with msb >= lsb")
            return (msb, lsb)
        raise SpecError(f"{where}: bits {value!r} must be N, [msb, lsb] or a list of those")

    if isinstance(value, list) and any(isinstance(p, list) for p in value):
        ranges = tuple(one(p) for p in value)
    else:
        ranges = (one(value),)
    if any(lsb < 0 for _, lsb in ranges):
        raise SpecError(f"{where}: bits {value!r} must not be negative")
    return ranges


def _fields(
    items: Any, where: str, width: int, reg_access: str
) -> tuple[tuple[FieldSpec, ...], tuple[tuple[tuple[int, int], str], ...]]:
    if not isinstance(items, list):
        raise SpecError(f"{where}: fields must be a list")
    fields: list[FieldSpec] = []
    notes: list[tuple[tuple[int, int], str]] = []
    owner: dict[int, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise SpecError(f"{where}: field #{i + 1} must be a mapping")
        _check_keys(item, _FIELD_KEYS, where, f"field {item.get('name', f'#{i + 1}')}")
        name = item.get("name")
        fwhere = f"{where}: field {name}"
        bits = _bits(item.get("bits"), fwhere)
        for msb, lsb in bits:
            if msb >= width:
                raise SpecError(
                    f"{fwhere}: bits [{msb}, {lsb}] go past the register's width of {width} bits"
                )
            for bit in range(lsb, msb + 1):
                if bit in owner:
                    raise SpecError(f"{fwhere}: bit {bit} overlaps field {owner[bit]}")
                owner[bit] = str(name)
        if item.get("reserved"):
            notes.extend((r, _text(item.get("description"))) for r in bits)
            continue
        if not isinstance(name, str) or not _LOWER_NAME.match(name) or keyword.iskeyword(name):
            raise SpecError(
                f"{fwhere}: field names are lower case identifiers (not Python keywords)"
            )
        if any(f.name == name for f in fields):
            raise SpecError(f"{fwhere}: duplicate field name {name}")
        access = item.get("access", "ro" if reg_access == "ro" else "rw")
        if access not in ACCESS:
            raise SpecError(f"{fwhere}: access {access!r} must be one of {', '.join(ACCESS)}")
        fmt = item.get("format", "hex" if item.get("in_place") else "dec")
        if fmt not in FORMATS:
            raise SpecError(f"{fwhere}: format {fmt!r} must be one of {', '.join(FORMATS)}")
        in_place = bool(item.get("in_place", False))
        if in_place and (len(bits) > 1 or item.get("enum")):
            raise SpecError(f"{fwhere}: a split field or an enum field cannot read in place")
        nbits = sum(m - lo + 1 for m, lo in bits)
        fields.append(
            FieldSpec(
                name=name,
                bits=bits,
                description=_text(item.get("description")),
                access=access,
                enum=_enum(item.get("enum"), fwhere, nbits),
                in_place=in_place,
                format=fmt,
            )
        )
    return tuple(fields), tuple(notes)


def _enum(value: Any, where: str, nbits: int) -> tuple[EnumValue, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: enum must map values to names")
    out: list[EnumValue] = []
    for key, entry in value.items():
        if isinstance(key, bool) or not isinstance(key, int) or key < 0:
            raise SpecError(f"{where}: enum key {key!r} must be a non-negative integer")
        if key >> nbits:
            raise SpecError(
                f"{where}: enum value {key:#x} does not fit in the field's {nbits} bits"
            )
        if isinstance(entry, Mapping):
            name, desc = entry.get("name"), _text(entry.get("description"))
        else:
            name, desc = entry, ""
        if isinstance(name, bool):
            raise SpecError(
                f"{where}: enum name for {key:#x} read as {name}: YAML takes on/off/yes/no "
                "for booleans, so quote the name"
            )
        if not isinstance(name, str) or not _LOWER_NAME.match(name):
            raise SpecError(f"{where}: enum name {name!r} must be a lower case identifier")
        if any(e.name == name for e in out):
            raise SpecError(f"{where}: duplicate enum name {name}")
        out.append(EnumValue(value=key, name=name, description=desc))
    return tuple(out)
