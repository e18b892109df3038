"""Do a guest's kernel image and symbols come from one build? Checked before QEMU boots it.

A symbol file of another build makes every breakpoint land in the wrong place and every
stop a nonsense frame, with no error anywhere. What can be compared depends on the image:

- a Linux bzImage: the version string in its setup header against the symbols'
  ``linux_banner`` (release and UTS version, :func:`mvnb.vm.elf.check_same_build`);
- an ELF kernel (FreeBSD, NetBSD, a multiboot or PVH kernel): the GNU build-id notes when
  both have one, else the bytes of ``.text`` (a stripped kernel keeps them), and the
  ``version`` strings where the files have symbols, shown beside;
- anything else: nothing; a warning says so.

A mismatch raises :class:`~mvnb.errors.GuestError` with both version strings.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

from ..errors import Error, GuestError
from ..gdb.elffile import ElfImage, open_elf
from .elf import bzimage_version, check_same_build
from .guest import Guest

__all__ = ["check_build"]

_ANYWAY = ("To boot it anyway, pass Guest(..., symbols=None) and load symbols yourself with "
           "s.load_symbols(path)")


def check_build(guest: Guest) -> str | None:
    """What identifies the build both files share (a banner, a build-id), or None when
    their formats allow no comparison (with a warning). GuestError when they differ."""
    if guest.symbols is None:
        return None
    kernel, symbols = Path(guest.kernel), Path(guest.symbols)
    try:
        return _check(*_key(kernel), *_key(symbols))
    except GuestError as error:
        raise GuestError(f"{error}\n{_ANYWAY}") from None


def _key(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return str(path.resolve()), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=16)
def _check(kernel: str, _km: int, _ks: int, symbols: str, _sm: int, _ss: int) -> str | None:
    with open(kernel, "rb") as f:
        head = f.read(0x210)
    if head[0x202:0x206] == b"HdrS":
        try:
            return check_same_build(Path(kernel), Path(symbols))
        except GuestError as error:
            if "different builds" in str(error):
                raise
            raise GuestError(
                "kernel image and symbols are from different builds:\n"
                f"  image:   {bzimage_version(Path(kernel))}\n"
                f"  symbols: no linux_banner ({error}): not a Linux vmlinux") from None
    if head[:4] == b"\x7fELF":
        return _check_elf(Path(kernel), Path(symbols))
    warnings.warn(f"{kernel} is neither a Linux bzImage nor an ELF file: mvnb cannot check "
                  f"that {symbols} belongs to it", RuntimeWarning, stacklevel=4)
    return None


def _version(elf: ElfImage) -> str:
    """A human version string from the file: FreeBSD/NetBSD ``version``, Linux's banner."""
    for name in ("version", "linux_banner"):
        try:
            raw = elf.symbol_bytes(name) if elf.has_symbols else b""
        except Error:
            continue
        text = raw.split(b"\0", 1)[0].decode(errors="replace").strip()
        if text:
            return text.splitlines()[0]
    return "(no version string)"


def _text_digest(elf: ElfImage) -> str | None:
    text = next((s for s in elf.sections if s.name == ".text" and not s.nobits), None)
    if text is None:
        return None
    with open(elf.path, "rb") as f:
        f.seek(text.offset)
        return f"{text.address:#x}+{text.size:#x}:" + hashlib.sha256(f.read(text.size)).hexdigest()


def _check_elf(kernel: Path, symbols: Path) -> str | None:
    if kernel.samefile(symbols):
        return _version(open_elf(kernel))
    try:
        image, debug = open_elf(kernel), open_elf(symbols)
    except Error as error:
        raise GuestError(str(error)) from None
    if image.build_id and debug.build_id:
        if image.build_id != debug.build_id:
            raise GuestError(
                "kernel image and symbols are from different builds (GNU build-ids differ):\n"
                f"  image:   build-id {image.build_id}  {_version(image)}\n"
                f"  symbols: build-id {debug.build_id}  {_version(debug)}")
        return f"build-id {image.build_id}"
    ours, theirs = _text_digest(image), _text_digest(debug)
    if ours and theirs:
        if ours != theirs:
            raise GuestError(
                "kernel image and symbols are from different builds (their .text differs):\n"
                f"  image:   {_version(image)}\n  symbols: {_version(debug)}")
        return _version(debug)
    warnings.warn(f"{kernel} and {symbols} carry no build-id and no .text to compare: mvnb "
                  "cannot check that they come from one build", RuntimeWarning, stacklevel=5)
    return None
