"""The I/O APICs of a QEMU guest: redirection entries decoded with ``IOAPIC_REDTBL``.

GDB cannot read an I/O APIC's registers: they sit behind the IOREGSEL/IOWIN window at its
MMIO base, and QEMU's debug access does not reach device registers (it reads zeros). QEMU's
monitor prints them: QEMU 7.2 has no ``info ioapic`` (it answers "unknown command"); its
``info pic`` prints every interrupt controller, each I/O APIC as ``ioapic0: ver=0x20
id=0x00 sel=0x..`` followed by one ``pin N 0x<64-bit entry> ...`` line per input
(hw/intc/ioapic_common.c, ``ioapic_print_redtbl``), and ``IRR``/``Remote IRR`` lines.
QEMU names every I/O APIC "ioapic0", so they are told apart by their order.

The parser here is minimal and local to this package; a fuller parser of QEMU's I/O APIC
text is planned for ``mvnb/regs/ioapic.py``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from ..regs import RegisterValue, get
from . import render

if TYPE_CHECKING:
    import pandas as pd

    from ..gdb import Session

__all__ = ["IoApicState", "parse_info_pic", "read_ioapics"]

_HEADER = re.compile(r"^ioapic\d*: ver=0x([0-9a-fA-F]+) id=0x([0-9a-fA-F]+) "
                     r"sel=0x([0-9a-fA-F]+)")
_PIN = re.compile(r"^\s+pin\s+(\d+)\s+0x([0-9a-fA-F]+)")
_IRR = re.compile(r"^\s+(IRR|Remote IRR)\s+(.*)$")


@dataclasses.dataclass(frozen=True)
class IoApicState:
    """One I/O APIC as QEMU's monitor shows it: ``index`` (order in ``info pic``), ``id``,
    ``version``, ``pins`` (pin → decoded ``IOAPIC_REDTBL``), pins with IRR or remote IRR."""

    index: int
    id: int
    version: int
    select: int
    pins: dict[int, RegisterValue]
    irr: tuple[int, ...] = ()
    remote_irr: tuple[int, ...] = ()

    @property
    def unmasked(self) -> dict[int, RegisterValue]:
        """The pins whose interrupts are delivered."""
        return {pin: rv for pin, rv in self.pins.items() if rv["mask"] == 0}

    def to_frame(self) -> pd.DataFrame:
        """One row per pin: pin, raw entry, every IOAPIC_REDTBL field."""
        rows = []
        for pin, rv in self.pins.items():
            row: dict[str, object] = {"pin": pin, "raw": int(rv)}
            for name, field in rv.fields.items():
                row[name] = field.enum or int(field)
            rows.append(row)
        return render.entries_frame(rows)

    def _repr_html_(self) -> str:
        return render.ioapic_html(self)

    def __str__(self) -> str:
        unmasked = ", ".join(f"{pin}→{int(rv['vector']):#x}" for pin, rv in self.unmasked.items())
        return (f"I/O APIC #{self.index} id {self.id} version {self.version:#x}: "
                f"{len(self.pins)} pins, unmasked: {unmasked or 'none'}")


def _pins(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)) if "(none)" not in text else ()


def parse_info_pic(text: str) -> list[IoApicState]:
    """The I/O APIC blocks of QEMU's ``info pic`` (other controllers are skipped)."""
    spec = get("IOAPIC_REDTBL")
    states: list[IoApicState] = []
    current: dict[str, object] | None = None

    def close() -> None:
        if current is not None:
            states.append(IoApicState(**current))  # type: ignore[arg-type]

    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            close()
            version, ident, select = (int(g, 16) for g in header.groups())
            current = {"index": len(states), "id": ident, "version": version,
                       "select": select, "pins": {}}
            continue
        if current is None:
            continue
        pin = _PIN.match(line)
        if pin:
            current["pins"][int(pin.group(1))] = RegisterValue(  # type: ignore[index]
                spec, int(pin.group(2), 16) & ((1 << 64) - 1))
            continue
        irr = _IRR.match(line)
        if irr:
            key = "irr" if irr.group(1) == "IRR" else "remote_irr"
            current[key] = _pins(irr.group(2))
            continue
        if line and not line[0].isspace():  # the next controller ("pic0: ...")
            close()
            current = None
    close()
    return states


def read_ioapics(session: Session, *, timeout: float | None = 30.0) -> list[IoApicState]:
    """Every I/O APIC of a stopped QEMU guest, from the monitor's ``info pic``.

    Raises :class:`~mvnb.errors.Unsupported` on stubs without QEMU's monitor.
    """
    return parse_info_pic(session.monitor("info pic", timeout=timeout))
