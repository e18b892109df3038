"""The I/O APICs of a QEMU guest: redirection entries decoded with ``IOAPIC_REDTBL``.

GDB cannot read an I/O APIC's registers: they sit behind the IOREGSEL/IOWIN window at its
MMIO base, and QEMU's debug access does not reach device registers (it reads zeros). QEMU's
monitor prints them: QEMU 7.2 has no ``info ioapic`` (it answers "unknown command"); its
``info pic`` prints every interrupt controller, each I/O APIC as ``ioapic0: ver=0x20
id=0x00 sel=0x..`` followed by one ``pin N 0x<64-bit entry> ...`` line per input
(hw/intc/ioapic_common.c, ``ioapic_print_redtbl``), and ``IRR``/``Remote IRR`` lines.
QEMU names every I/O APIC "ioapic0", so they are told apart by their order.

The text is parsed by :func:`mvnb.regs.ioapic.parse_ioapics`; here each entry is decoded.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..regs import RegisterValue, get
from ..regs.ioapic import parse_ioapics
from . import render

if TYPE_CHECKING:
    import pandas as pd

    from ..gdb import Session

__all__ = ["IoApicState", "parse_info_pic", "read_ioapics"]

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


def parse_info_pic(text: str) -> list[IoApicState]:
    """The I/O APIC blocks of QEMU's ``info pic``, each entry decoded (other controllers
    are skipped)."""
    spec = get("IOAPIC_REDTBL")
    return [
        IoApicState(index=raw.index, id=raw.id, version=raw.version, select=raw.ioregsel,
                    pins={pin: RegisterValue(spec, entry) for pin, entry
                          in enumerate(raw.entries)},
                    irr=_bits(raw.irr), remote_irr=_bits(raw.remote_irr))
        for raw in parse_ioapics(text)
    ]


def _bits(mask: int) -> tuple[int, ...]:
    return tuple(pin for pin in range(mask.bit_length()) if mask >> pin & 1)


def read_ioapics(session: Session, *, timeout: float | None = 30.0) -> list[IoApicState]:
    """Every I/O APIC of a stopped QEMU guest, from the monitor's ``info pic``.

    Raises :class:`~mvnb.errors.Unsupported` on stubs without QEMU's monitor.
    """
    return parse_info_pic(session.monitor("info pic", timeout=timeout))
