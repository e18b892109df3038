"""The I/O APICs as QEMU's monitor shows them: the ``ioapic`` blocks of ``info pic``.

QEMU has no ``info ioapic`` command under TCG (QEMU 7.2 and 10.0 both answer "unknown
command"); ``info pic`` prints every interrupt controller, each I/O APIC through
``ioapic_print_redtbl`` (hw/intc/ioapic_common.c): a header with the version, ID and
IOREGSEL registers, one line per pin with the raw 64-bit redirection table entry, then the
pins in IRR and Remote IRR. QEMU names every I/O APIC ``ioapic0``: on ``-M microvm`` (7.2
and 10.0) two blocks of that name follow each other, the chips at 0xFEC00000 (GSI 0-23) and
0xFEC10000 (GSI 24-47) in QEMU's object order. Entry layout: 82093AA I/O APIC datasheet,
Section 3.2.4 (IOREDTBL); with interrupt remapping (``intel-iommu,intremap=on``) Linux
writes entries in the remappable format of the Intel VT-d specification, Section 5.1.5.1,
which QEMU's text decodes as if they were not.
"""

from __future__ import annotations

import dataclasses
import re

__all__ = ["IoapicState", "parse_ioapics"]

_HEADER = re.compile(
    r"^ioapic(\d+): ver=0x([0-9a-fA-F]+) id=0x([0-9a-fA-F]+) sel=0x([0-9a-fA-F]+)"
    r"(?: \(redir\[\d+\]\))?$"
)
_PIN = re.compile(r"^pin\s+(\d+)\s+0x([0-9a-fA-F]{16})\b")
_PINS = re.compile(r"^(IRR|Remote IRR)\s+(.*)$")


@dataclasses.dataclass(frozen=True)
class IoapicState:
    """One I/O APIC as ``info pic`` printed it; values as QEMU holds them.

    ``index`` is the block's position among the I/O APICs in the text (QEMU prints the
    name ``ioapic0`` for each). ``version`` and ``id`` are the Version and ID registers
    (0x20 and the ID the guest wrote, 0 after reset); ``ioregsel`` the last register index
    the guest selected. ``entries[pin]`` is the raw redirection entry; ``irr`` and
    ``remote_irr`` have bit N set for pin N.
    """

    index: int
    version: int
    id: int
    ioregsel: int
    entries: tuple[int, ...]
    irr: int
    remote_irr: int

    @property
    def unmasked(self) -> dict[int, int]:
        """Pin → entry for the pins whose mask bit (16) is clear."""
        return {pin: e for pin, e in enumerate(self.entries) if not e & (1 << 16)}


@dataclasses.dataclass
class _Block:
    version: int
    id: int
    ioregsel: int
    entries: dict[int, int] = dataclasses.field(default_factory=dict)
    irr: int | None = None
    remote_irr: int | None = None


def parse_ioapics(text: str) -> list[IoapicState]:
    """Every I/O APIC in QEMU's ``info pic`` text, in the order QEMU printed them.

    Lines of other controllers (``pic0:``, ``pic1:``) are skipped. Raises ValueError,
    saying what to pass, when the text has no I/O APIC block or a block is cut short.
    """
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    if any(line.startswith("unknown command: 'info ioapic'") for line in lines):
        raise ValueError("QEMU has no 'info ioapic' command; the I/O APICs are in the "
                         "output of 'info pic' (s.monitor(\"info pic\"))")
    blocks: list[_Block] = []
    for line in lines:
        if m := _HEADER.match(line):
            blocks.append(_Block(int(m[2], 16), int(m[3], 16), int(m[4], 16)))
        elif not blocks:
            continue
        elif m := _PIN.match(line):
            blocks[-1].entries[int(m[1])] = int(m[2], 16)
        elif m := _PINS.match(line):
            if m[1] == "IRR":
                blocks[-1].irr = _pin_bits(m[2])
            else:
                blocks[-1].remote_irr = _pin_bits(m[2])
    if not blocks:
        head = "\n".join(text.strip().splitlines()[:3]) or "(empty)"
        raise ValueError("no I/O APIC in this text; pass the output of QEMU's 'info pic' "
                         f"(a machine with an I/O APIC). It began:\n{head}")
    out = []
    for index, b in enumerate(blocks):
        pins = sorted(b.entries)
        if not pins or pins != list(range(len(pins))) or b.irr is None or b.remote_irr is None:
            raise ValueError(f"I/O APIC block {index} of the 'info pic' text is incomplete "
                             f"({len(pins)} pins, IRR lines "
                             f"{'present' if b.remote_irr is not None else 'missing'}); "
                             "pass the whole output")
        out.append(IoapicState(index, b.version, b.id, b.ioregsel,
                               tuple(b.entries[p] for p in pins), b.irr, b.remote_irr))
    return out


def _pin_bits(rest: str) -> int:
    bits = 0
    for token in rest.split():
        if token == "(none)":
            continue
        if not token.isdigit():
            raise ValueError(f"unexpected IRR entry {token!r} in 'info pic' output")
        bits |= 1 << int(token)
    return bits
