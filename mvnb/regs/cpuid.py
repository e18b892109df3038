"""CPUID results as the guest sees them: a mapping of eax..edx that decodes itself.

Bit meanings come from the CPUID specs in ``specs/cpuid.yaml`` (Intel SDM Vol. 2A, Order
Number 253666-068US, "CPUID—CPU Identification", Tables 3-8, 3-10 and 3-11); the
hypervisor vendor signature of leaf 0x40000000 is EBX, ECX, EDX as ASCII (Linux
Documentation/virt/kvm/x86/cpuid.rst), the CPU vendor of leaf 0 is EBX, EDX, ECX.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .registry import find_cpuid
from .value import RegisterValue

__all__ = ["CpuidResult"]

_REGS = ("eax", "ebx", "ecx", "edx")
_SIGNATURE_ORDER = {0x0: ("ebx", "edx", "ecx"), 0x40000000: ("ebx", "ecx", "edx")}


class CpuidResult(Mapping[str, int]):
    """The four output registers of ``cpuid`` for one leaf/subleaf.

    ``r["edx"]`` and ``r.edx`` are plain ints; ``r.decode()`` gives the registers with a
    spec as :class:`RegisterValue`; ``r.vendor`` spells the signature of leaf 0 and
    0x40000000 (``"TCGTCGTCGTCG"`` under QEMU TCG).
    """

    __slots__ = ("eax", "ebx", "ecx", "edx", "leaf", "subleaf")

    def __init__(self, leaf: int, subleaf: int, eax: int, ebx: int, ecx: int, edx: int) -> None:
        self.leaf = int(leaf)
        self.subleaf = int(subleaf)
        for name, value in zip(_REGS, (eax, ebx, ecx, edx), strict=True):
            value = int(value)
            if not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"CPUID {name} must be a 32-bit value, not {value:#x}")
            setattr(self, name, value)

    def __getitem__(self, name: str) -> int:
        if name not in _REGS:
            raise KeyError(f"CPUID results are eax, ebx, ecx and edx, not {name!r}")
        return int(getattr(self, name))

    def __iter__(self) -> Iterator[str]:
        return iter(_REGS)

    def __len__(self) -> int:
        return 4

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CpuidResult):
            return (self.leaf, self.subleaf, *self.values()) == (
                other.leaf,
                other.subleaf,
                *other.values(),
            )
        if isinstance(other, Mapping):
            return dict(self) == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.leaf, self.subleaf, *self.values()))

    def decode(self) -> dict[str, RegisterValue]:
        """Register name → decoded value, for the registers this leaf has a spec for."""
        out: dict[str, RegisterValue] = {}
        for name in _REGS:
            spec = find_cpuid(self.leaf, name, self.subleaf)
            if spec is not None:
                out[name] = RegisterValue(spec, self[name])
        return out

    def flags(self) -> list[str]:
        """Names of the single-bit features that are set, over every decoded register."""
        return [
            fname
            for value in self.decode().values()
            for fname, fval in value.fields.items()
            if fval.spec.width == 1 and int(fval)
        ]

    @property
    def vendor(self) -> str:
        """The vendor signature (leaf 0: "GenuineIntel"; 0x40000000: "KVMKVMKVM" ...)."""
        order = _SIGNATURE_ORDER.get(self.leaf)
        if order is None:
            raise ValueError(
                f"CPUID leaf {self.leaf:#x} has no vendor signature; "
                "use leaf 0x0 (CPU vendor) or 0x40000000 (hypervisor)"
            )
        raw = b"".join(self[r].to_bytes(4, "little") for r in order)
        return raw.rstrip(b"\0").decode("ascii", errors="replace")

    def __repr__(self) -> str:
        regs = ", ".join(f"{r}={self[r]:#010x}" for r in _REGS)
        return f"CpuidResult(leaf={self.leaf:#x}, subleaf={self.subleaf:#x}, {regs})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))
        if not cycle and self.leaf in _SIGNATURE_ORDER:
            p.text(f"  vendor {self.vendor!r}")
        flags = self.flags()
        if not cycle and flags:
            p.text("\n  flags: " + " ".join(flags))

    def _repr_html_(self) -> str:
        from .html import cpuid_html

        return cpuid_html(self)
