"""The ACPI PM timer as a ``Session.sample`` column source.

The PM timer is a free-running 3.579545 MHz counter in an I/O port, 24 bits unless the
FADT sets TMR_VAL_EXT (ACPI 6.5, section 4.8.3.3 "Power Management Timer"; the port is the
FADT's PM_TMR_BLK / X_PM_TMR_BLK). Linux keeps the port in ``pmtmr_ioport``
(drivers/clocksource/acpi_pm.c; 0 when there is none) and reads it with ``inl``, masked to
24 bits (``ACPI_PM_MASK``). QEMU's ``-M pc`` has one at 0x608 (``acpi_pm_tmr_get`` in
hw/acpi/core.c derives it from the virtual clock, so it stands still while the guest is
stopped, like the LAPIC timer); QEMU's ``microvm`` has none.

Two ways to read it, chosen per session:

- ``via="monitor"``: QEMU's monitor ``i /w PORT`` (QEMU 7.2 prints ``portl[0x0608] =
  0x002aadc7``; ``/l`` is refused). One monitor round trip, the guest is not run: the value
  at the stop, like ``info lapic``'s.
- ``via="in"``: the kernel's own ``in (%dx),%eax`` from ``acpi_pm_read`` executed once
  through the probe engine (:mod:`mvnb.x86.probe`), for a stub without QEMU's monitor.
  It runs the guest for one instruction, which moves the clocks like any probe does.
"""

from __future__ import annotations

import re
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import Error, GdbError, Unsupported
from .observer import measure_observer
from .probe import Instruction

if TYPE_CHECKING:
    from ..gdb import Session

__all__ = ["IN_DX", "PM_TIMER", "PM_TIMER_MASK", "PmTimerColumn"]

#: Linux: read_pmtmr() inlined in acpi_pm_read / acpi_pm_read_verified
#: (drivers/clocksource/acpi_pm.c). One byte (ED): never searched by scanning text.
IN_DX = Instruction("in (%dx),%eax", b"\xed",
                    ("acpi_pm_read", "acpi_pm_read_verified", "acpi_pm_read_slow"), scan=False)
#: What Linux keeps of a reading (``ACPI_PM_MASK``, include/linux/acpi_pmtmr.h).
PM_TIMER_MASK = 0xFF_FFFF
_VALUE = re.compile(r"=\s*(0x[0-9a-fA-F]+)")
_COSTS = {
    "monitor": "a stop at every hit, then one QEMU monitor round trip ('i /w PORT'); the "
               "guest does not run for it",
    "in": "a stop at every hit, then one 'in' executed in the guest through the probe "
          "engine (about ten MI round trips; the clocks move as for one probe)",
}


class PmTimerColumn:
    """The ACPI PM timer at each stop, masked to 24 bits as Linux keeps it.

    ``port`` is the I/O port (default: the kernel's ``pmtmr_ioport``); ``via`` is
    "monitor", "in" or "auto" (the monitor when the stub has QEMU's, else the probe).
    """

    name = "PM_TIMER"
    expression = None
    observer = staticmethod(measure_observer)

    def __init__(self, port: int | None = None, via: str = "auto") -> None:
        if via not in ("auto", "monitor", "in"):
            raise ValueError(f"via is 'auto', 'monitor' or 'in', not {via!r}")
        if port is not None and not 0 < int(port) <= 0xFFFF:
            raise ValueError(f"an I/O port is 1 … 0xffff, not {port!r}")
        self.port = port
        self.via = via
        self._chosen: weakref.WeakKeyDictionary[Session, tuple[int, str]] = (
            weakref.WeakKeyDictionary())

    @property
    def steps(self) -> int:
        """Guest instructions one read executes (0 through the monitor)."""
        return 1 if self.via == "in" else 0

    @property
    def cost(self) -> str:
        return _COSTS["in" if self.via == "in" else "monitor"]

    def prepare(self, session: Session) -> None:
        """Find the port and the way to read it, before anything is armed."""
        port = self.port if self.port is not None else _kernel_port(session)
        via = self.via
        if via == "auto":
            via = "monitor" if session.capabilities.monitor else "in"
        if via == "monitor" and not session.capabilities.monitor:
            raise Unsupported(f"the stub at {session.address} has no QEMU monitor to read "
                              "the PM timer with 'i /w'; use PmTimerColumn(via='in')")
        if via == "in":
            session.x86.prober.site(IN_DX)  # type: ignore[attr-defined]
        self._chosen[session] = (port, via)

    def read(self, session: Session, cache: dict[str, Any]) -> int:
        if session not in self._chosen:
            self.prepare(session)
        port, via = self._chosen[session]
        if via == "monitor":
            text = session.monitor(f"i /w {port:#x}")
            match = _VALUE.search(text)
            if match is None:
                raise Error(f"QEMU's monitor did not read port {port:#x}: {text.strip()!r}")
            return int(match.group(1), 16) & PM_TIMER_MASK
        after = session.x86.prober.run(IN_DX, {"rdx": port})  # type: ignore[attr-defined]
        return after["rax"] & PM_TIMER_MASK

    def __str__(self) -> str:
        port = "" if self.port is None else f"@{self.port:#x}"
        return f"acpi_pm{port}" + ("" if self.via == "auto" else f"/{self.via}")

    def __repr__(self) -> str:
        return "<mvnb.x86.PM_TIMER: the ACPI PM timer, 3,579,545 Hz, 24 bits>"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, PmTimerColumn) and other.port == self.port
                and other.via == self.via)

    def __hash__(self) -> int:
        return hash(("PmTimerColumn", self.port, self.via))


def _kernel_port(session: Session) -> int:
    """Linux's ``pmtmr_ioport``: the FADT's PM timer port, 0 when the machine has none."""
    try:
        port = int(session.eval_many(["pmtmr_ioport"])[0])
    except GdbError:
        raise Error("no pmtmr_ioport symbol (not a Linux guest, or no symbols): pass the "
                    "port, PmTimerColumn(port=0x608), from the FADT's PM_TMR_BLK") from None
    if port == 0:
        raise Unsupported("this machine has no ACPI PM timer (the kernel's pmtmr_ioport is "
                          "0; QEMU's microvm has none, -M pc has one at 0x608)")
    return port


#: The ACPI PM timer as a ``Session.sample`` column source.
PM_TIMER = PmTimerColumn()
