"""Reading guest-physical memory by whatever way is safe on the stub at hand.

GDB reads virtual addresses through the guest's page tables; firmware tables (MP, ACPI)
and device state sit at physical addresses. Three ways, tried in this order:

- QEMU's stub: ``Qqemu.PhyMemMode:1`` switches the stub to physical addresses (QEMU
  gdbstub, since 4.1). It also sends GDB's own breakpoint writes to physical addresses
  while it is on, so mvnb's helper switches it on and off inside one MI command, only with
  the target stopped (GDB inserts breakpoints on resume) and GDB's memory cache flushed
  after (``-mvnb-read-physical`` in ``helper/mvnb_gdb.py``). Where the stub refuses the
  mode, QEMU's monitor ``xp`` reads the same memory.
- Any other stub: the guest's direct map, when the symbols say where it is (Linux x86-64:
  ``page_offset_base``, Documentation/x86/x86_64/mm.rst), through GDB's ordinary reads.

QEMU's debug access reads RAM and ROM; device registers it answers with zeros (``xp`` at
the LAPIC page here, 2026-11), and holes read as zeros too. So on QEMU the range is first
checked against the machine's memory map (``info mtree -f``): a hole or a device region
raises :class:`~mvnb.errors.FaultError` rather than return zeros that look like data.
"""

from __future__ import annotations

import dataclasses
import json
import re
import weakref
from typing import TYPE_CHECKING

from ..errors import Error, FaultError, GdbError, Unsupported

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Region", "memory_map", "read_physical"]

_READABLE = {"ram", "rom", "romd"}
_REGION = re.compile(r"^\s*([0-9a-fA-F]+)-([0-9a-fA-F]+) \(prio -?\d+, ([^)]+)\): (.*)$")
_XP_CHUNK = 4096
_DIRECT_MAP_MIN = 0xFFFF_8000_0000_0000  # the upper canonical half (x86-64, 48-bit)


@dataclasses.dataclass(frozen=True)
class Region:
    """One range of QEMU's flat physical memory map: ``kind`` is "ram", "rom", "i/o" ..."""

    start: int
    end: int  # inclusive, as QEMU prints it
    kind: str
    name: str

    @property
    def readable(self) -> bool:
        return self.kind in _READABLE


def parse_mtree(text: str) -> list[Region]:
    """The regions of the flat view that serves address space "memory" (``info mtree -f``)."""
    regions: list[Region] = []
    in_memory = False
    for line in text.splitlines():
        if line.startswith("FlatView"):
            if in_memory and regions:
                break
            in_memory = False
            continue
        if line.strip().startswith('AS "memory"'):
            in_memory = True
            continue
        match = _REGION.match(line)
        if in_memory and match:
            start, end, kind, name = match.groups()
            regions.append(Region(int(start, 16), int(end, 16), kind.strip(), name.strip()))
    return regions


_maps: weakref.WeakKeyDictionary[Session, tuple[int, list[Region]]] = \
    weakref.WeakKeyDictionary()


def memory_map(session: Session, *, timeout: float | None = 30.0) -> list[Region]:
    """QEMU's physical memory map as the guest's CPU sees it (``info mtree -f``), asked
    once per stop of the target (the map does not change while the guest is stopped)."""
    stop = session._transport.stop_seq
    cached = _maps.get(session)
    if cached is not None and cached[0] == stop:
        return cached[1]
    regions = parse_mtree(session.monitor("info mtree -f", timeout=timeout))
    _maps[session] = (stop, regions)
    return regions


def check_readable(regions: list[Region], address: int, size: int) -> None:
    """FaultError unless ``[address, address + size)`` lies in RAM or ROM regions."""
    at, end = address, address + size
    while at < end:
        region = next((r for r in regions if r.start <= at <= r.end), None)
        if region is None:
            raise FaultError(f"no memory at physical {at:#x}: QEMU's memory map has nothing "
                             "there (it would read as zeros)", at)
        if not region.readable:
            raise FaultError(
                f"physical {at:#x} is device memory ({region.name}, {region.kind}): QEMU's "
                "debug access does not reach device registers (it reads zeros); read the "
                "device's state from the monitor instead (e.g. `info pic`, `info lapic`)", at)
        at = region.end + 1


def read_physical(session: Session, address: int, size: int, *,
                  timeout: float | None = 30.0) -> bytes:
    """``size`` bytes at guest-physical ``address``; FaultError where they cannot be read."""
    address, size = int(address), int(size)
    if address < 0 or size < 0 or address + size > 1 << 64:
        raise ValueError(f"no physical range of {size} bytes at {address:#x}")
    if size == 0:
        return b""
    if session.running:
        raise Error("the target is running; call interrupt() before reading memory")
    if session.capabilities.qemu:
        regions = memory_map(session, timeout=timeout)
        if regions:  # an unreadable map (another QEMU's format) leaves the reads unguarded
            check_readable(regions, address, size)
        data = _phymem(session, address, size, timeout)
        if data is None:
            data = _xp(session, address, size, timeout)
        return data
    return _direct_map(session, address, size, timeout)


def _phymem(session: Session, address: int, size: int, timeout: float | None) -> bytes | None:
    result = json.loads(session.mi(f"-mvnb-read-physical {address:#x} {size}",
                                   timeout=timeout).payload["json"])
    if "unsupported" in result:
        return None
    if "error" in result:
        raise FaultError(f"cannot read physical {address:#x}: {result['error']}", address)
    return bytes.fromhex(result["hex"])


def _xp(session: Session, address: int, size: int, timeout: float | None) -> bytes:
    """QEMU's monitor ``xp /Nxb``: lines of ``ADDRESS: 0x.. 0x..``."""
    out = bytearray()
    for at in range(address, address + size, _XP_CHUNK):
        count = min(_XP_CHUNK, address + size - at)
        text = session.monitor(f"xp /{count}xb {at:#x}", timeout=timeout)
        chunk = bytes(int(b, 16) for line in text.splitlines() if ":" in line
                      for b in line.split(":", 1)[1].split())
        if len(chunk) != count:
            raise FaultError(f"cannot read physical {at:#x} with QEMU's xp: {text.strip()[:200]}",
                             at)
        out += chunk
    return bytes(out)


def _direct_map(session: Session, address: int, size: int, timeout: float | None) -> bytes:
    try:
        base = int(session.eval_many(["(unsigned long)page_offset_base"], timeout=timeout)[0])
    except GdbError:
        base = 0
    if base < _DIRECT_MAP_MIN:
        raise Unsupported(
            f"no way to read physical memory on the stub at {session.address}: it is not "
            "QEMU's (no physical memory mode, no monitor) and the symbols do not say where "
            "the guest's direct map is (Linux: page_offset_base)")
    try:
        return session.read_memory(base + address, size, timeout=timeout)
    except FaultError as error:
        raise FaultError(
            f"cannot read physical {address:#x} through the guest's direct map at "
            f"{base:#x} (not mapped yet this early in boot, or not RAM): {error}",
            address) from None
