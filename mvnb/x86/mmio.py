"""Device registers read by the guest's CPU itself: one ``mov`` load from a mapped address.

A gdb stub cannot read device memory such as the LAPIC page: QEMU's stub reads guest
memory through its debug path, which does not dispatch to device models, so GDB gets an
error and ``monitor xp`` zeros (shared/facts/x86-apic.md). The CPU can: point rip at a load
instruction in kernel text, put the address in its base register, single-step, read the
destination register, restore everything (the probe engine, :mod:`mvnb.x86.probe`).

What this needs from the guest: a 32-bit load ``mov disp(%base), %r32`` (opcode 8B, Intel
SDM Vol. 2B "MOV—Move"; ModRM without SIB, not RIP-relative, Vol. 2A Table 2-2) in
executable kernel text, and a virtual mapping of the device's page in the current page
tables. The CPU decodes from rip, so any such bytes in text serve, also inside another
instruction. Linux's own reader (``native_apic_mem_read``, arch/x86/include/asm/apic.h:
``mov APIC_BASE(%rdi), %eax``) is preferred; otherwise the first ``8B 07`` (``mov
(%rdi),%eax``) of the text is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import Error, GdbError, ProbeFault
from .probe import Instruction, find

if TYPE_CHECKING:
    from ..gdb import Session
    from .probe import Prober

__all__ = ["LOAD_SYMBOLS", "MOV_RDI", "Load", "MmioLoader", "decode_load", "find_load"]

#: Functions whose text holds a 32-bit MMIO load (Linux: arch/x86/include/asm/apic.h).
LOAD_SYMBOLS = ("native_apic_mem_read",)
#: ``mov (%rdi),%eax``: scanned for in kernel text when no known reader is there.
MOV_RDI = Instruction("mov (%rdi),%eax", b"\x8b\x07", ())
#: x86-64 general registers by their 4-bit number (ModRM.reg/rm plus REX.R/REX.B).
REGISTERS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Load:
    """A ``mov disp(%base), %dest`` (32-bit) at ``address``: reads ``base + disp``."""

    address: int
    code: bytes
    base: str
    disp: int
    dest: str

    def inputs(self, target: int) -> dict[str, int]:
        """The register values that make this load read ``target``."""
        return {self.base: (target - self.disp) & _MASK64}

    def __str__(self) -> str:
        dest = f"{self.dest}d" if self.dest[1].isdigit() else f"e{self.dest[1:]}"
        return f"mov {self.disp:#x}(%{self.base}),%{dest} at {self.address:#x}"


def decode_load(code: bytes, address: int = 0) -> Load | None:
    """The 32-bit register load ``code`` starts with, or None (SDM Vol. 2A 2.1-2.2.1).

    Accepted: an optional REX prefix without REX.W, opcode 8B, ModRM with mod 00/01/10,
    no SIB byte, not RIP-relative, neither register rsp.
    """
    at = 0
    rex = 0
    if code[:1] and 0x40 <= code[0] <= 0x4F:
        rex = code[0]
        at = 1
    if rex & 0x8 or code[at:at + 1] != b"\x8b" or len(code) < at + 2:
        return None
    modrm = code[at + 1]
    mod, reg, rm = modrm >> 6, (modrm >> 3) & 7, modrm & 7
    if mod == 3 or rm == 4 or (mod == 0 and rm == 5):
        return None
    size = {0: 0, 1: 1, 2: 4}[mod]
    end = at + 2 + size
    if len(code) < end:
        return None
    disp = int.from_bytes(code[at + 2:end], "little", signed=True) if size else 0
    base = REGISTERS[rm | (rex & 1) << 3]
    dest = REGISTERS[reg | (rex >> 2 & 1) << 3]
    if "rsp" in (base, dest):
        return None
    return Load(address, bytes(code[:end]), base, disp, dest)


def find_load(s: Session, *, timeout: float | None = 30.0) -> Load:
    """A load instruction in kernel text: in a known reader first, else ``8B 07`` anywhere."""
    for symbol in LOAD_SYMBOLS:
        try:
            listing = s.mi(f"-data-disassemble -a {symbol} -- 2", timeout=timeout).payload
        except GdbError:
            continue
        for item in listing.get("asm_insns", []):
            code = bytes.fromhex(item.get("opcodes", "").replace(" ", ""))
            load = decode_load(code, int(item["address"], 16))
            if load is not None:
                return load
    address = find(s, MOV_RDI, timeout=timeout)
    load = decode_load(MOV_RDI.opcode, address)
    assert load is not None
    return load


class MmioLoader:
    """Reads 32-bit device registers at virtual addresses by executing one load each
    (``load``: the instruction to use; None finds one with :func:`find_load`)."""

    def __init__(self, prober: Prober, load: Load | None = None) -> None:
        self.prober = prober
        self._load = load

    def load(self, *, timeout: float | None = 30.0) -> Load:
        """The load instruction this session uses (looked up once)."""
        if self._load is None:
            self._load = find_load(self.prober.s, timeout=timeout)
        return self._load

    def read(self, addresses: Sequence[int], *,
             timeout: float | None = 30.0) -> list[int | ProbeFault]:
        """One 32-bit read per virtual address, in order: the value or the fault it raised.

        The guest must be stopped in 64-bit kernel mode with the addresses mapped; an
        unmapped one raises #PF, which comes back as a ProbeFault with every register and
        the stack restored.
        """
        load = self.load(timeout=timeout)
        try:
            results = self.prober.run_many(
                load.address, load.code, [load.inputs(a) for a in addresses],
                outputs=(load.dest,), what=f"MMIO read ({load})", timeout=timeout)
        except Error:
            self._load = None  # e.g. the bytes changed (init text freed): look again next time
            raise
        return [r if isinstance(r, ProbeFault) else r[load.dest] & 0xFFFF_FFFF
                for r in results]
