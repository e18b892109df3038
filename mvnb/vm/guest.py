"""A guest: a kernel image to boot, the ELF GDB reads its symbols from, a command line.

Users bring their own kernels as files (``Guest(kernel=..., symbols=...)``); Debian's are
fetched by :mod:`mvnb.vm.debian`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import GuestError

__all__ = ["Guest"]


@dataclasses.dataclass(frozen=True)
class Guest:
    """A kernel to boot and the ELF file GDB reads its symbols from.

    ``kernel`` is what QEMU's ``-kernel`` takes (a Linux bzImage, a multiboot ELF);
    ``symbols`` is the unstripped ELF (``vmlinux``, FreeBSD's ``kernel.debug``), or None.
    ``nokaslr`` adds ``nokaslr`` to the command line: Linux symbols only match the running
    kernel's addresses without address-space randomisation.
    """

    kernel: Path
    symbols: Path | None = None
    cmdline: str = "console=ttyS0"
    name: str = ""
    nokaslr: bool = False
    version: str = ""

    def __post_init__(self) -> None:
        kernel = Path(self.kernel).expanduser()
        if not kernel.is_file():
            raise GuestError(
                f"kernel image {kernel} does not exist; pass the path of a bootable kernel "
                "(a Linux bzImage, or an ELF kernel QEMU's -kernel accepts)"
            )
        object.__setattr__(self, "kernel", kernel)
        if self.symbols is not None:
            symbols = Path(self.symbols).expanduser()
            if not symbols.is_file():
                raise GuestError(
                    f"symbol file {symbols} does not exist; pass the unstripped ELF of this "
                    "kernel (vmlinux, kernel.debug) or symbols=None"
                )
            with open(symbols, "rb") as f:
                magic = f.read(4)
            if magic != b"\x7fELF":
                raise GuestError(
                    f"symbol file {symbols} is not an ELF file (it starts with {magic!r}); "
                    "GDB needs the unstripped ELF kernel (vmlinux, not vmlinuz; kernel.debug)"
                )
            object.__setattr__(self, "symbols", symbols)
        if not self.name:
            object.__setattr__(self, "name", kernel.name)

    @property
    def full_cmdline(self) -> str:
        """The command line QEMU passes, with ``nokaslr`` added where the guest needs it."""
        words = self.cmdline.split()
        if self.nokaslr and "nokaslr" not in words:
            words.append("nokaslr")
        return " ".join(words)

