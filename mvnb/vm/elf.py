"""Version strings of kernel images and symbol files, to tell whether they match.

A Linux bzImage carries its version in the setup header (``kernel_version``,
Documentation/x86/boot.rst); a vmlinux carries ``linux_banner``. Sections come from
pyelftools. The symbol lookup does not use pyelftools' ``get_symbol_by_name``: on Debian's
590 MB vmlinux it builds a Python dict of every symbol and took 6.7 s here (2026-11),
against 0.1 s for the vectorised scan of ``.symtab`` below.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from ..errors import GuestError

__all__ = ["bzimage_version", "elf_symbol_bytes", "linux_banner"]

_SYMBOL = [("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"),
           ("value", "<u8"), ("size", "<u8")]  # Elf64_Sym


def bzimage_version(path: Path) -> str:
    """The version string a Linux bzImage carries in its setup header (``kernel_version``)."""
    with open(path, "rb") as f:
        head = f.read(0x10000)
    if head[0x202:0x206] != b"HdrS":
        raise GuestError(f"{path} is not a Linux bzImage (no HdrS setup header)")
    (pointer,) = struct.unpack_from("<H", head, 0x20E)
    start = pointer + 0x200
    return head[start : head.index(b"\0", start)].decode(errors="replace")


def elf_symbol_bytes(path: Path, name: str, length: int | None = None) -> bytes:
    """The bytes of symbol ``name`` in a 64-bit little-endian ELF file, from its .symtab.

    ``length`` reads that many bytes from the symbol's start instead of its size (a label
    defined in assembly has size 0), never past the end of its section.
    """
    import numpy as np
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(path, "rb") as f:
        try:
            elf = ELFFile(f)
        except ELFError as error:
            raise GuestError(f"{path} is not an ELF file: {error}") from None
        if elf.elfclass != 64 or not elf.little_endian:
            raise GuestError(f"{path} is not a 64-bit little-endian ELF file")
        symtab = next((s for s in elf.iter_sections() if isinstance(s, SymbolTableSection)
                       and s["sh_type"] == "SHT_SYMTAB"), None)
        if symtab is None:
            raise GuestError(f"{path} has no symbol table; it is stripped")
        strtab = elf.get_section(symtab["sh_link"])
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            strings = m[strtab["sh_offset"] : strtab["sh_offset"] + strtab["sh_size"]]
            starts = _string_offsets(strings, name.encode())
            if not starts:
                raise GuestError(f"{path} has no symbol {name}")
            syms = np.frombuffer(m, dtype=np.dtype(_SYMBOL), count=symtab["sh_size"] // 24,
                                 offset=symtab["sh_offset"])
            hits = np.flatnonzero(np.isin(syms["name"], starts)
                                  & (syms["shndx"] > 0) & (syms["shndx"] < 0xFF00))
            if not len(hits):
                raise GuestError(f"{path} has no symbol {name}")
            shndx, value, size = (int(syms[k][hits[0]]) for k in ("shndx", "value", "size"))
            del syms  # releases the mmap
            section = elf.get_section(shndx)
            inside = section["sh_addr"] + section["sh_size"] - value
            size = max(0, min(inside, size if length is None else length))
            if section["sh_type"] == "SHT_NOBITS":
                return bytes(size)  # .bss: zero until the kernel runs
            start = section["sh_offset"] + value - section["sh_addr"]
            return bytes(m[start : start + size])


def _string_offsets(strings: bytes, name: bytes) -> list[int]:
    """Every offset in a string table where the NUL-terminated string ``name`` starts.

    Linkers share suffixes: ``jiffies_64`` may be the tail of ``get_jiffies_64``, so the
    symbol's name offset points into the middle of a longer string.
    """
    out = []
    at = strings.find(name + b"\0")
    while at >= 0:
        out.append(at)
        at = strings.find(name + b"\0", at + 1)
    return out


def linux_banner(path: Path) -> str:
    """The ``linux_banner`` string of a vmlinux, read through its symbol table."""
    raw = elf_symbol_bytes(path, "linux_banner").split(b"\0", 1)[0]
    return raw.decode(errors="replace").strip()


def check_same_build(kernel: Path, symbols: Path) -> str:
    """Refuse an image and symbols from different builds: compare release and UTS version.

    Returns the banner when they match.
    """
    image = bzimage_version(kernel)  # "6.1.0-56-cloud-amd64 (...) #1 SMP ... Debian 6.1.x"
    banner = linux_banner(symbols)  # "Linux version <release> (...) (gcc ...) #1 ..."
    release = image.split()[0]
    uts_version = image[image.index("#") :] if "#" in image else ""
    if not banner.startswith(f"Linux version {release} ") or not banner.endswith(uts_version):
        raise GuestError(
            f"kernel image and symbols are from different builds:\n  image:   {image}\n"
            f"  symbols: {banner}"
        )
    return banner
