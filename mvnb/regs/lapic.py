"""The local APIC as QEMU's monitor shows it: ``info lapic`` parsed into decoded registers.

GDB cannot read the LAPIC page (it is per-CPU device memory), but QEMU's ``info lapic``
prints every LVT, the timer, SVR, ICR, ESR, ISR/IRR and the priority registers. The format
is QEMU's ``x86_cpu_dump_local_apic_state`` (target/i386/cpu-dump.c), the same in QEMU 7.2
and 10.0 (recorded texts of both in tests/data; docs/qemu-versions.md). Register layouts:
Intel SDM Vol. 3A, Order Number 253668-068US, Chapter 10 (Chapter 11 in editions from 2022
on). ``info lapic`` shows neither the APIC ID, the Version nor the TMR (only the "(level)"
marks of vectors pending or in service): ``s.x86.lapic()`` has the CPU read those
(:mod:`mvnb.x86.lapic_cpu`), and a snapshot holds any of :data:`LAPIC_REGISTERS`.

The text does not say whether the APIC is in x2APIC mode, and in that mode its DFR and LDR
fields are not the registers: QEMU 10 prints its xAPIC ``log_dest``/``dest_mode`` fields,
while the x2APIC LDR (MSR 0x80D, SDM Section 10.12.10.2) is a separate value it does not
print (hw/intc/apic.c ``extended_log_dest``), and DFR does not exist in x2APIC mode. Pass
``x2apic=True`` (IA32_APIC_BASE.EXTD) to leave them out instead of misreading them. In x2APIC
mode the ID, LDR and ICR have other layouts (``X2APIC_ID``, ``X2APIC_LDR``, ``X2APIC_ICR`` in
specs/lapic.yaml; :func:`layout` picks the one of a mode).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import UnknownName, Unsupported
from .registry import get
from .spec import RegisterSpec
from .value import RegisterValue, diff_rows

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LAPIC_REGISTERS",
    "NOT_IN_X2APIC",
    "SNAPSHOT_REGISTERS",
    "X2APIC_LAYOUTS",
    "X2APIC_UNREAD",
    "LapicSnapshot",
    "layout",
    "parse_info_lapic",
]

#: QEMU's LVT labels → mvnb register names.
QEMU_LVT_NAMES = {
    "LVT0": "LVT_LINT0",
    "LVT1": "LVT_LINT1",
    "LVTPC": "LVT_PERF",
    "LVTERR": "LVT_ERROR",
    "LVTTHMR": "LVT_THERMAL",
    "LVTT": "LVT_TIMER",
}
#: Registers a snapshot holds, in display order.
SNAPSHOT_REGISTERS = (
    "LVT_TIMER",
    "TIMER_DCR",
    "TIMER_ICR",
    "TIMER_CCR",
    "LVT_LINT0",
    "LVT_LINT1",
    "LVT_PERF",
    "LVT_THERMAL",
    "LVT_ERROR",
    "SVR",
    "ESR",
    "ICR",
    "ISR",
    "IRR",
    "TPR",
    "APR",
    "PPR",
    "LDR",
    "DFR",
)
#: Every register a snapshot can hold, in display order: what ``info lapic`` shows plus
#: the ID, the Version, the TMR and the CMCI LVT, which only the CPU's own reads return.
LAPIC_REGISTERS = (
    "LAPIC_ID", "LAPIC_VERSION",
    "LVT_TIMER", "TIMER_DCR", "TIMER_ICR", "TIMER_CCR",
    "LVT_LINT0", "LVT_LINT1", "LVT_PERF", "LVT_THERMAL", "LVT_ERROR", "LVT_CMCI",
    "SVR", "ESR", "ICR", "ISR", "TMR", "IRR", "TPR", "APR", "PPR", "LDR", "DFR",
)
#: Registers whose bits mean something else in x2APIC mode → the spec of that layout
#: (SDM Vol. 3A 10.12.1.2 Table 10-6, 10.12.9, 10.12.10.1).
X2APIC_LAYOUTS = {"LAPIC_ID": "X2APIC_ID", "LDR": "X2APIC_LDR", "ICR": "X2APIC_ICR"}
#: Registers with no x2APIC MSR (SDM Vol. 3A 10.12.1.2, Table 10-6), and why.
NOT_IN_X2APIC = {
    "APR": "x2APIC mode has no APR (no MSR 0x809 in SDM Vol. 3A Table 10-6)",
    "DFR": "x2APIC mode has no DFR (SDM Vol. 3A Section 10.12.1.2)",
    "RRD": "x2APIC mode has no remote read register (SDM Vol. 3A Table 10-6)",
}

_HEX = r"0x([0-9a-fA-F]+)"
_CPU = re.compile(r"dumping local APIC state for CPU\s+(\d+)")
_LVT = re.compile(r"^(LVT0|LVT1|LVTPC|LVTERR|LVTTHMR|LVTT)\s+" + _HEX)
_TIMER = re.compile(
    r"^Timer\s+DCR=" + _HEX + r" \(divide by (\d+)\) initial_count = (\d+) current_count = (\d+)"
)
_SIMPLE = re.compile(r"^(SPIV|ICR|ICR2|ESR)\s+" + _HEX)
_VECTORS = re.compile(r"^(ISR|IRR)\s+(.*)$")
_PRIO = re.compile(
    r"^APR "
    + _HEX
    + r" TPR "
    + _HEX
    + r" DFR "
    + _HEX
    + r" LDR "
    + _HEX
    + r"(?:\(cluster \d+: id \d+\))? PPR "
    + _HEX
)


#: Why a snapshot taken in x2APIC mode holds no LDR or DFR (see the module docstring).
X2APIC_UNREAD = {
    "LDR": "x2APIC mode: QEMU's 'info lapic' prints the xAPIC logical ID, not the x2APIC LDR "
           "(MSR 0x80D)",
    "DFR": "x2APIC mode: there is no DFR (SDM Vol. 3A Section 10.12.1.2)",
}


def layout(name: str, *, x2apic: bool) -> RegisterSpec:
    """The spec that decodes register ``name`` in the APIC's mode (x2APIC: ID, LDR, ICR differ)."""
    spec = get(name)
    return get(X2APIC_LAYOUTS[spec.name]) if x2apic and spec.name in X2APIC_LAYOUTS else spec


def parse_info_lapic(text: str, *, x2apic: bool = False) -> dict[str, int]:
    """Raw register values from QEMU's ``info lapic`` text, keyed by mvnb register name.

    DFR and LDR are rebuilt as a register read returns them (QEMU prints the 4-bit model
    and the 8-bit logical ID); ISR and IRR become 256-bit values, bit N for vector N.
    ICR is the 64-bit value (ICR2 in bits 63:32), the x2APIC ICR layout too. With
    ``x2apic=True`` (the APIC is in x2APIC mode) DFR and LDR are left out: the text's
    fields are not those registers then (module docstring).
    """
    if "local apic state not available" in text:
        raise Unsupported(
            "QEMU reports no local APIC state for this CPU (machine without an APIC, "
            "or the APIC is disabled in QEMU's configuration)"
        )
    out: dict[str, int] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _LVT.match(line):
            out[QEMU_LVT_NAMES[m[1]]] = int(m[2], 16)
        elif m := _TIMER.match(line):
            out["TIMER_DCR"] = int(m[1], 16)
            out["TIMER_ICR"] = int(m[3])
            out["TIMER_CCR"] = int(m[4])
        elif m := _SIMPLE.match(line):
            out[m[1]] = int(m[2], 16)
        elif m := _VECTORS.match(line):
            out[m[1]] = _vector_bits(m[2])
        elif m := _PRIO.match(line):
            apr, tpr, dfr, ldr, ppr = (int(g, 16) for g in m.groups())
            out.update(APR=apr, TPR=tpr, PPR=ppr, LDR=ldr << 24, DFR=(dfr << 28) | 0x0FFFFFFF)
    if "SPIV" in out:
        out["SVR"] = out.pop("SPIV")
    if "ICR" in out or "ICR2" in out:
        out["ICR"] = (out.pop("ICR2", 0) << 32) | out.get("ICR", 0)
    wanted = [n for n in SNAPSHOT_REGISTERS if not (x2apic and n in X2APIC_UNREAD)]
    missing = [name for name in wanted if name not in out]
    if missing:
        head = "\n".join(text.strip().splitlines()[:4]) or "(empty)"
        raise ValueError(
            "not QEMU 'info lapic' output (missing " + ", ".join(missing) + "); it began:\n" + head
        )
    return {name: out[name] for name in wanted}


def _vector_bits(rest: str) -> int:
    bits = 0
    for token in rest.split():
        if token == "(none)":
            continue
        number = token.split("(", 1)[0]
        if number.isdigit() and int(number) < 256:
            bits |= 1 << int(number)
        else:
            raise ValueError(f"unexpected ISR/IRR entry {token!r} in 'info lapic' output")
    return bits


class LapicSnapshot(Mapping[str, RegisterValue]):
    """The LAPIC registers of one CPU at one moment, decoded; a mapping name → value.

    ``snap["LVT_TIMER"]["timer_mode"]`` is ``1 (periodic)``; ``snap.to_frame()`` has one
    row per field; ``snap.diff(later)`` the fields that changed.
    """

    def __init__(
        self,
        registers: Mapping[str, RegisterValue | int],
        *,
        cpu: int | None = None,
        location: Any = None,
        timestamp: Any = None,
        text: str | None = None,
        unread: Mapping[str, str] | None = None,
        x2apic: bool | None = None,
    ) -> None:
        self._regs: dict[str, RegisterValue] = {}
        for name, value in registers.items():
            spec = get(name)
            self._regs[spec.name] = (
                value if isinstance(value, RegisterValue) else RegisterValue(spec, value)
            )
        self.cpu = cpu
        self.location = location
        self.timestamp = timestamp
        self.text = text
        #: Registers the snapshot could not hold, each with the reason.
        self.unread: dict[str, str] = dict(unread or {})
        #: True in x2APIC mode, False in xAPIC mode, None when the caller did not say.
        self.x2apic = x2apic

    @classmethod
    def from_text(cls, text: str, location: Any = None, timestamp: Any = None, *,
                  x2apic: bool | None = None) -> LapicSnapshot:
        """Parse QEMU's ``info lapic`` output (``Session.lapic()`` calls this).

        ``x2apic``: whether the APIC is in x2APIC mode (IA32_APIC_BASE.EXTD); in that mode
        LDR and DFR go to ``unread`` (see :func:`parse_info_lapic`) and the ICR decodes with
        its x2APIC layout (``X2APIC_ICR``). None reads the text as xAPIC, the only mode QEMU
        7.2's TCG has.
        """
        m = _CPU.search(text)
        raw = parse_info_lapic(text, x2apic=bool(x2apic))
        return cls(
            {name: RegisterValue(layout(name, x2apic=bool(x2apic)), value)
             for name, value in raw.items()},
            cpu=int(m[1]) if m else None,
            location=location,
            timestamp=timestamp,
            text=text,
            unread=X2APIC_UNREAD if x2apic else None,
            x2apic=x2apic,
        )

    def __getitem__(self, name: str) -> RegisterValue:
        try:
            return self._regs[name.upper()]
        except KeyError:
            why = self.unread.get(name.upper())
            if why:
                raise UnknownName(f"{name.upper()} is not in the snapshot: {why}", name) from None
            raise UnknownName.among(
                "register in the snapshot", name, self._regs,
                f"it holds {', '.join(self._regs)}",
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._regs)

    def __len__(self) -> int:
        return len(self._regs)

    @property
    def divisor(self) -> int:
        """The timer's divide-by value (1 … 128) from the DCR."""
        enum = self["TIMER_DCR"]["divide"].enum
        assert enum is not None  # every 3-bit value is named
        return int(enum.removeprefix("div"))

    def to_frame(self) -> pd.DataFrame:
        """One row per (register, field): raw register value, field value, enum name."""
        import pandas as pd

        rows = [
            {
                "register": name,
                "field": fname,
                "raw": reg.hex(),
                "value": int(fval),
                "enum": fval.enum,
            }
            for name, reg in self._regs.items()
            for fname, fval in reg.fields.items()
        ]
        return pd.DataFrame(rows).set_index(["register", "field"])

    def changes(self, other: LapicSnapshot) -> dict[str, list[str]]:
        """Register → names of the fields that differ in ``other`` ("(reserved)" too)."""
        out: dict[str, list[str]] = {}
        for name, reg in self._regs.items():
            if name in other._regs and int(other._regs[name]) != int(reg):
                out[name] = [str(r["field"]) for r in diff_rows(reg, other._regs[name])]
        return out

    def diff(self, other: LapicSnapshot) -> pd.DataFrame:
        """Fields that change from this snapshot (before) to ``other`` (after)."""
        import pandas as pd

        rows = [
            {"register": name, **row}
            for name, reg in self._regs.items()
            if name in other._regs
            for row in diff_rows(reg, other._regs[name])
        ]
        columns = ["register", "field", "before", "after", "before_enum", "after_enum"]
        return pd.DataFrame(rows, columns=columns).set_index(["register", "field"])

    def __repr__(self) -> str:
        where = f" at {self.location}" if self.location is not None else ""
        cpu = f" cpu {self.cpu}" if self.cpu is not None else ""
        timer = self._regs.get("LVT_TIMER")
        ccr = self._regs.get("TIMER_CCR")
        summary = ""
        if timer is not None and ccr is not None:
            summary = f": LVT_TIMER={timer.hex()} TIMER_CCR={int(ccr)}"
        return f"<LapicSnapshot{cpu}{where}{summary}>"

    def __str__(self) -> str:
        lines = [repr(self)]
        for name, reg in self._regs.items():
            fields = ", ".join(f"{n}={v}" for n, v in reg.fields.items())
            lines.append(f"  {name:<11} {reg.hex():<12} {fields}")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self) if not cycle else repr(self))

    def _repr_html_(self) -> str:
        from .html import snapshot_html

        return snapshot_html(self)
