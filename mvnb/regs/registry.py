"""The table of known registers: the built-in specs plus any a user registers.

Built-ins live in ``mvnb/regs/specs/*.yaml`` (local APIC, MSRs, control registers, CPUID
leaves, the I/O APIC's redirection entries); :func:`load` reads a user's own file the same way.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SpecError, UnknownName
from .loader import load_file
from .spec import RegisterSpec

__all__ = ["builtin_specs", "find_cpuid", "get", "load", "names"]

SPEC_DIR = Path(__file__).with_name("specs")
BUILTIN_FILES = ("lapic.yaml", "msr.yaml", "control.yaml", "cpuid.yaml", "ioapic.yaml")

_registry: dict[str, RegisterSpec] = {}
_builtin: dict[str, RegisterSpec] = {}


def builtin_specs() -> dict[str, RegisterSpec]:
    """Every built-in spec by name (loaded once)."""
    if not _builtin:
        for fname in BUILTIN_FILES:
            for name, spec in load_file(SPEC_DIR / fname).items():
                if name in _builtin:
                    raise SpecError(
                        f"{SPEC_DIR / fname}: register {name}: duplicate of the one in "
                        f"{_builtin[name].source}"
                    )
                _builtin[name] = spec
        _registry.update(_builtin)
    return dict(_builtin)


def get(name: str | RegisterSpec) -> RegisterSpec:
    """The spec called ``name`` (case-insensitive); UnknownName lists close names."""
    if isinstance(name, RegisterSpec):
        return name
    builtin_specs()
    key = str(name).upper()
    try:
        return _registry[key]
    except KeyError:
        raise UnknownName.among(
            "register spec", name, _registry,
            "mvnb.regs.names() lists them; mvnb.regs.load(path, register=True) adds your own",
        ) from None


def names() -> list[str]:
    """Names of every known register."""
    builtin_specs()
    return list(_registry)


def load(path: str | Path, *, register: bool = False) -> dict[str, RegisterSpec]:
    """Load a user's spec file; with ``register=True`` also make its names known to get()."""
    specs = load_file(path)
    if register:
        builtin_specs()
        for name, spec in specs.items():
            old = _registry.get(name)
            if old is not None and old != spec:
                raise SpecError(
                    f"{path}: register {name}: a different register of that name is already "
                    f"known (from {old.source}); rename yours"
                )
        _registry.update(specs)
    return specs


def find_cpuid(leaf: int, reg: str, subleaf: int = 0) -> RegisterSpec | None:
    """The spec of CPUID output register ``reg`` of ``leaf``/``subleaf``, or None."""
    builtin_specs()
    for spec in _registry.values():
        loc = spec.cpuid
        if (
            loc is not None
            and loc.leaf == leaf
            and loc.reg == reg
            and (loc.subleaf is None or loc.subleaf == subleaf)
        ):
            return spec
    return None
