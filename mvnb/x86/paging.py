"""The guest's page tables: what a virtual address maps to, and where a physical page is mapped.

``translate`` asks QEMU (monitor ``gva2gpa``, which walks the current CPU's tables in any
paging mode; :class:`mvnb.errors.Unsupported` on other stubs). ``find_mapping`` walks the
tables itself from CR3, 4- or 5-level (CR4.LA57; Intel SDM Vol. 3A, Order Number
253668-068US, Section 4.5, Figures 4-8 to 4-11 and Tables 4-15 to 4-20), reading them with
``Session.read_physical`` (QEMU's physical-memory mode, else ``xp``, else the kernel's
direct map: mvnb/gdb/physical.py). It searches the upper (kernel) half from the top down,
where kernels map devices (Linux's fixmap is just below the vsyscall page), and reads at
most ``max_tables`` tables.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import Error, Unsupported

if TYPE_CHECKING:
    from ..gdb import Session

__all__ = ["find_mapping", "translate"]

_PRESENT = 1
_PAGE_SIZE_BIT = 1 << 7  # PS: a 1-GByte (PDPTE) or 2-MByte (PDE) page
_ADDRESS = 0x000F_FFFF_FFFF_F000  # bits 51:12 (MAXPHYADDR up to 52)
_LA57 = 1 << 12  # CR4 bit 12: 5-level paging


def translate(s: Session, virtual: int, *, timeout: float | None = 30.0) -> int | None:
    """The guest-physical address ``virtual`` maps to on the selected vCPU, or None if unmapped.

    Uses QEMU's monitor ``gva2gpa``; raises Unsupported on a stub without QEMU's monitor.
    """
    text = s.monitor(f"gva2gpa {virtual:#x}", timeout=timeout)
    m = re.search(r"gpa:\s*0x([0-9a-fA-F]+)", text)
    if m:
        return int(m[1], 16)
    if "unmapped" in text.lower():
        return None
    raise Error(f"QEMU's gva2gpa {virtual:#x} answered {text.strip()!r}")


def find_mapping(s: Session, physical: int, *, max_tables: int = 256,
                 timeout: float | None = 30.0) -> int | None:
    """The highest kernel-half virtual address mapping ``physical``, or None.

    Walks the page tables of the selected vCPU (CR3, CR4.LA57) as physical memory.
    Large pages count: an address inside a 2-MByte or 1-GByte page is found too.
    """
    regs = s.registers()
    if "cr3" not in regs.index or "cr4" not in regs.index:
        raise Unsupported(f"the stub at {s.address} shows no CR3/CR4: cannot walk page tables")
    levels = 5 if int(regs["cr4"]) & _LA57 else 4
    top = int(regs["cr3"]) & _ADDRESS
    walk = _Walk(_PhysicalMemory(s, timeout), physical, levels, max_tables)
    return walk.table(top, 0, 0)


class _Walk:
    def __init__(self, memory: _PhysicalMemory, physical: int, levels: int,
                 max_tables: int) -> None:
        self.memory = memory
        self.physical = physical
        self.levels = levels
        self.left = max_tables
        self.bits = 12 + 9 * levels  # 48 or 57 significant virtual bits

    def table(self, address: int, level: int, prefix: int) -> int | None:
        """Search the table at ``address`` (level 0 = top) for a mapping; upper half only."""
        if self.left <= 0:
            raise Error(f"no mapping of {self.physical:#x} found in the first tables of the "
                        "page-table walk; pass the virtual address yourself")
        self.left -= 1
        data = self.memory.read(address, 4096)
        shift = 12 + 9 * (self.levels - 1 - level)
        indices = range(511, 255, -1) if level == 0 else range(511, -1, -1)
        for index in indices:
            entry = int.from_bytes(data[index * 8:index * 8 + 8], "little")
            if not entry & _PRESENT:
                continue
            virtual = prefix | index << shift
            leaf = shift == 12 or (shift in (21, 30) and entry & _PAGE_SIZE_BIT)
            if leaf:
                frame = entry & _ADDRESS & ~((1 << shift) - 1)
                if frame <= self.physical < frame + (1 << shift):
                    return self._canonical(virtual | (self.physical - frame))
                continue
            found = self.table(entry & _ADDRESS, level + 1, virtual)
            if found is not None:
                return found
        return None

    def _canonical(self, virtual: int) -> int:
        """Sign-extend from the highest translated bit (SDM Vol. 3A 3.3.7.1)."""
        if virtual >> (self.bits - 1) & 1:
            virtual |= ((1 << 64) - 1) ^ ((1 << self.bits) - 1)
        return virtual


class _PhysicalMemory:
    """Page tables read through ``Session.read_physical``."""

    def __init__(self, s: Session, timeout: float | None) -> None:
        self.s = s
        self.timeout = timeout

    def read(self, address: int, size: int) -> bytes:
        return self.s.read_physical(address, size, timeout=self.timeout)
