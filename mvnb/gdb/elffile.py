"""What a symbol file says, read from the file itself: sections, symbols, bytes, build-id.

The symbol check (:mod:`mvnb.gdb.symbols`) compares bytes the file holds at its link
addresses with the running guest's memory, so it needs the file's contents, which GDB does
not hand out. Sections and the build-id note come from pyelftools (ELF spec, "Sections" and
"Note Section"); symbols are found with a vectorised scan of ``.symtab``: pyelftools'
``get_symbol_by_name`` builds a Python dict of every symbol and took 6.7 s on Debian's
590 MB vmlinux here (2026-11), the scan 0.1 s. One :class:`ElfImage` per file and
modification time is kept (:func:`open_elf`).
"""

from __future__ import annotations

import dataclasses
import functools
import mmap
import os
from pathlib import Path
from typing import Any

from ..errors import Error

__all__ = ["ElfImage", "Section", "open_elf"]

_SYMBOL = [("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"),
           ("value", "<u8"), ("size", "<u8")]  # Elf64_Sym
_SHF_ALLOC, _SHF_EXECINSTR = 0x2, 0x4
_NT_GNU_BUILD_ID = 3


@dataclasses.dataclass(frozen=True)
class Section:
    """One ELF section: where it links (``address``), its size and where its bytes are."""

    name: str
    address: int
    size: int
    offset: int
    flags: int
    nobits: bool
    note: bool = False

    @property
    def executable(self) -> bool:
        return bool(self.flags & _SHF_EXECINSTR) and self.address != 0

    @property
    def allocated(self) -> bool:
        return bool(self.flags & _SHF_ALLOC) and self.address != 0

    def contains(self, address: int) -> bool:
        return self.address <= address < self.address + self.size


class ElfImage:
    """A 64-bit little-endian ELF file: section table, symbols by name, bytes at link
    addresses, the GNU build-id. Raises :class:`mvnb.Error` for files it cannot read."""

    def __init__(self, path: Path) -> None:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                elf = ELFFile(f)
                if elf.elfclass != 64 or not elf.little_endian:
                    raise Error(f"{self.path} is not a 64-bit little-endian ELF file")
                self.entry = int(elf.header["e_entry"])
                self.sections = [
                    Section(s.name, int(s["sh_addr"]), int(s["sh_size"]), int(s["sh_offset"]),
                            int(s["sh_flags"]), s["sh_type"] == "SHT_NOBITS",
                            s["sh_type"] == "SHT_NOTE")
                    for s in elf.iter_sections()
                ]
                symtab = next((s for s in elf.iter_sections()
                               if s["sh_type"] == "SHT_SYMTAB"), None)
                self._symtab: tuple[int, int, int, int] | None = None
                if symtab is not None:
                    strtab = elf.get_section(symtab["sh_link"])
                    self._symtab = (int(symtab["sh_offset"]), int(symtab["sh_size"]),
                                    int(strtab["sh_offset"]), int(strtab["sh_size"]))
        except (ELFError, OSError) as error:
            raise Error(f"{self.path} is not a readable ELF file: {error}") from None
        self._strings: bytes | None = None
        self._syms: Any = None

    # -- symbols ----------------------------------------------------------------------

    @property
    def has_symbols(self) -> bool:
        return self._symtab is not None

    def _load_symtab(self) -> None:
        import numpy as np

        if self._symtab is None:
            raise Error(f"{self.path} has no symbol table; it is stripped")
        sym_off, sym_size, str_off, str_size = self._symtab
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            self._strings = bytes(m[str_off : str_off + str_size])
            self._syms = np.frombuffer(m[sym_off : sym_off + sym_size], dtype=np.dtype(_SYMBOL))

    def symbol(self, name: str) -> tuple[int, int] | None:
        """``(link address, size)`` of the symbol called ``name``, or None."""
        import numpy as np

        if self._syms is None:
            self._load_symtab()
        assert self._strings is not None
        # The linker shares string tails ("page_offset_base" may be the end of
        # "__ksymtab_page_offset_base"), so every occurrence is a candidate name offset.
        needle = name.encode() + b"\0"
        at = self._strings.find(needle)
        while at >= 0:
            for i in np.flatnonzero(self._syms["name"] == at):
                shndx = int(self._syms["shndx"][i])
                if 0 < shndx < len(self.sections):
                    return int(self._syms["value"][i]), int(self._syms["size"][i])
            at = self._strings.find(needle, at + 1)
        return None

    def symbol_bytes(self, name: str, length: int | None = None) -> bytes:
        """The bytes the file holds for symbol ``name`` (its initial value).

        ``length`` reads that many bytes from the symbol's start instead of its size (a
        label defined in assembly has size 0), never past the end of its section; a
        symbol in a NOBITS section (.bss) reads as zeros, as it starts out.
        """
        found = self.symbol(name)
        if found is None:
            raise Error(f"{self.path} has no symbol {name}")
        address, size = found
        section = self.section_at(address)
        if section is None:
            raise Error(f"{self.path}: symbol {name} lies in no allocated section")
        size = max(0, min(section.address + section.size - address,
                          size if length is None else length))
        if section.nobits:
            return bytes(size)
        data = self.read(address, size)
        if data is None:
            raise Error(f"{self.path}: symbol {name} has no bytes in the file")
        return data

    # -- bytes at link addresses ------------------------------------------------------

    def section_at(self, address: int) -> Section | None:
        """The allocated section holding link ``address``, or None."""
        return next((s for s in self.sections if s.allocated and s.contains(address)), None)

    def read(self, address: int, size: int) -> bytes | None:
        """``size`` bytes at link ``address`` as the file holds them (None where it holds
        none: no section, or a NOBITS one such as .bss)."""
        section = self.section_at(address)
        if section is None or section.nobits or address + size > section.address + section.size:
            return None
        start = section.offset + address - section.address
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(size)

    @functools.cached_property
    def code(self) -> list[tuple[Section, bytes]]:
        """Every executable section with its bytes (searched for the code at a pc)."""
        out = []
        with open(self.path, "rb") as f:
            for section in self.sections:
                if section.executable and not section.nobits:
                    f.seek(section.offset)
                    out.append((section, f.read(section.size)))
        return out

    def find_code(self, needle: bytes) -> list[int]:
        """Link addresses where ``needle`` occurs in executable sections (at most 2)."""
        found: list[int] = []
        for section, data in self.code:
            at = data.find(needle)
            while at >= 0 and len(found) < 2:
                found.append(section.address + at)
                at = data.find(needle, at + 1)
        return found

    def in_code(self, address: int) -> Section | None:
        """The executable section holding link ``address``, or None."""
        return next((s for s in self.sections if s.executable and s.contains(address)), None)

    # -- identity -----------------------------------------------------------------------

    @functools.cached_property
    def build_id(self) -> str | None:
        """The GNU build-id note as hex (``.note.gnu.build-id``), or None."""
        with open(self.path, "rb") as f:
            for section in self.sections:
                if not section.note or section.nobits:
                    continue
                f.seek(section.offset)
                found = _build_id(f.read(section.size))
                if found:
                    return found
        return None


def _build_id(note: bytes) -> str | None:
    """The NT_GNU_BUILD_ID descriptor in a note section's bytes, as hex."""
    at = 0
    while at + 12 <= len(note):
        namesz, descsz, kind = (int.from_bytes(note[at + i : at + i + 4], "little")
                                for i in (0, 4, 8))
        name_end = at + 12 + (namesz + 3) // 4 * 4
        if kind == _NT_GNU_BUILD_ID and note[at + 12 : at + 12 + namesz].rstrip(b"\0") == b"GNU":
            return note[name_end : name_end + descsz].hex()
        at = name_end + (descsz + 3) // 4 * 4
    return None


@functools.lru_cache(maxsize=8)
def _open(path: str, mtime_ns: int, size: int) -> ElfImage:
    return ElfImage(Path(path))


def open_elf(path: str | os.PathLike[str]) -> ElfImage:
    """The :class:`ElfImage` of ``path``, kept while the file is unchanged."""
    try:
        st = os.stat(path)
    except OSError as error:
        raise Error(f"cannot read symbol file {path}: {error.strerror}") from None
    return _open(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
