"""Guest kernels: a kernel image, its symbols and a command line.

``debian_cloud()`` fetches Debian's cloud kernel (``linux-image-cloud-amd64``) and the
matching ``-dbg`` package with ``apt-get download`` into a cache, extracts only the files a
debugging session needs, and checks that image and symbols come from the same build before
returning. Users bring their own kernels as files with ``Guest(kernel=..., symbols=...)``.
"""

from __future__ import annotations

import dataclasses
import json
import lzma
import mmap
import os
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .cache import cache_dir
from .errors import GuestError, MissingTool

__all__ = ["Guest", "cache_dir", "debian_cloud", "kernel_hz"]

_META_PACKAGE = "linux-image-cloud-amd64"
_APT_LISTS = Path("/var/lib/apt/lists")
_LISTS_MAX_AGE = 7 * 24 * 3600


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


def kernel_hz(guest: Guest) -> int | None:
    """CONFIG_HZ of a Linux guest, from the ``config-<release>`` file beside its kernel."""
    for config in guest.kernel.parent.glob("config-*"):
        match = re.search(r"^CONFIG_HZ=(\d+)$", config.read_text(errors="replace"), re.M)
        if match:
            return int(match.group(1))
    return None


def debian_cloud(abi: str | None = None, *, refresh: bool = False, progress: bool = True) -> Guest:
    """Debian's cloud kernel with its debug symbols, fetched once into the cache.

    ``abi`` (e.g. ``"6.1.0-56"``) pins a build; so does ``MVNB_DEBIAN_KERNEL``. Without one,
    the newest build already in the cache is used (a second call costs nothing); when there
    is none, or with ``refresh=True``, the candidate version of ``linux-image-cloud-amd64``
    is resolved through apt, running ``apt-get update`` when the package lists are missing
    or older than a week.
    """
    abi = abi or os.environ.get("MVNB_DEBIAN_KERNEL") or None
    root = cache_dir() / "debian"
    if abi is None and not refresh:
        cached = _newest_cached(root)
        if cached is not None:
            return cached
    if abi is None:
        abi = _resolve_abi(update=True)
        if abi is None:
            raise GuestError(
                f"apt knows no package {_META_PACKAGE}; add Debian's main archive to the apt "
                "sources (the kit uses Debian's cloud kernel) or pin MVNB_DEBIAN_KERNEL=<abi>"
            )
    abi = abi.removesuffix("-cloud-amd64")
    guest = _cached(root, abi)
    if guest is not None:
        return guest
    return _fetch(root, abi, progress=progress)


def _guest_for(directory: Path, abi: str) -> Guest:
    release = f"{abi}-cloud-amd64"
    return Guest(
        kernel=directory / f"vmlinuz-{release}",
        symbols=directory / f"vmlinux-{release}",
        cmdline="console=ttyS0",
        name=f"debian-cloud-{release}",
        nokaslr=True,
        version=abi,
    )


def _cached(root: Path, abi: str) -> Guest | None:
    directory = root / abi
    stamp = directory / "mvnb-checked.json"
    if not stamp.is_file():
        return None
    try:
        return _guest_for(directory, abi)
    except GuestError:
        return None


def _newest_cached(root: Path) -> Guest | None:
    if not root.is_dir():
        return None
    stamps = sorted(root.glob("*/mvnb-checked.json"), key=lambda p: p.stat().st_mtime)
    for stamp in reversed(stamps):
        guest = _cached(root, stamp.parent.name)
        if guest is not None:
            return guest
    return None


def _lists_stale() -> bool:
    lists = list(_APT_LISTS.glob("*_Packages*")) if _APT_LISTS.is_dir() else []
    if not lists:
        return True
    return time.time() - max(p.stat().st_mtime for p in lists) > _LISTS_MAX_AGE


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        raise MissingTool(
            f"{argv[0]} is not installed; mvnb fetches Debian's kernel with apt "
            "(on a Debian or Ubuntu host), or pass your own files with "
            "mvnb.Guest(kernel=..., symbols=...)"
        )
    return subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def _resolve_abi(*, update: bool) -> str | None:
    """The ABI (``6.1.0-56``) of the candidate ``linux-image-cloud-amd64``."""
    if update and _lists_stale():
        argv = ["apt-get", "update", "-qq"]
        if os.geteuid() != 0 and shutil.which("sudo"):
            argv = ["sudo", "-n", *argv]
        result = _run(argv)
        if result.returncode != 0:
            raise GuestError(
                "apt-get update failed; run `sudo apt-get update` and try again, or pin "
                f"MVNB_DEBIAN_KERNEL=<abi>.\n{result.stderr.strip()}"
            )
    policy = _run(["apt-cache", "policy", _META_PACKAGE]).stdout
    match = re.search(r"Candidate:\s*(\S+)", policy)
    if not match or match.group(1) == "(none)":
        return None
    show = _run(["apt-cache", "show", f"{_META_PACKAGE}={match.group(1)}"]).stdout
    dep = re.search(r"linux-image-(\d+\.\d+\.\d+-\d+)-cloud-amd64", show.split("Depends:", 1)[-1])
    return dep.group(1) if dep else None


def _fetch(root: Path, abi: str, *, progress: bool) -> Guest:
    release = f"{abi}-cloud-amd64"
    directory = root / abi
    directory.mkdir(parents=True, exist_ok=True)
    packages = [f"linux-image-{release}", f"linux-image-{release}-dbg"]
    with tempfile.TemporaryDirectory(prefix="mvnb-apt-", dir=root) as tmp:
        os.chmod(tmp, 0o755)  # lets apt's _apt user write there: no "unsandboxed" warning
        result = _download(packages, Path(tmp), progress=progress)
        if result.returncode != 0:
            raise GuestError(
                f"apt-get download {' '.join(packages)} failed; check that apt can reach "
                "Debian's archive (`sudo apt-get update`) or pin another build with "
                f"MVNB_DEBIAN_KERNEL=<abi>.\n{result.stderr.strip()}"
            )
        debs = {p.name.split("_")[0]: p for p in Path(tmp).glob("*.deb")}
        wanted = {
            packages[0]: {f"./boot/vmlinuz-{release}", f"./boot/config-{release}"},
            packages[1]: {f"./usr/lib/debug/boot/vmlinux-{release}"},
        }
        for package, members in wanted.items():
            if package not in debs:
                raise GuestError(f"apt-get download did not leave {package}*.deb in {tmp}")
            _extract(debs[package], members, directory, progress=progress)
    guest = _guest_for(directory, abi)
    banner = _check_same_build(guest)
    (directory / "mvnb-checked.json").write_text(
        json.dumps({"abi": abi, "packages": packages, "linux_banner": banner}, indent=1)
    )
    return guest


def _download(packages: list[str], directory: Path, *,
              progress: bool) -> subprocess.CompletedProcess[str]:
    """``apt-get download`` with a progress bar over the packages' sizes (from apt-cache)."""
    from tqdm.auto import tqdm

    _run(["apt-get", "--version"])  # MissingTool when there is no apt
    show = _run(["apt-cache", "show", "--no-all-versions", *packages]).stdout
    total = sum(int(size) for size in re.findall(r"^Size:\s*(\d+)", show, re.M)) or None
    argv = ["apt-get", "download", *packages]
    proc = subprocess.Popen(argv, cwd=directory, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

    def size() -> int:
        return sum(p.stat().st_size for p in directory.rglob("*.deb*") if p.is_file())

    with tqdm(total=total, unit="B", unit_scale=True, desc="apt-get download",
              disable=not progress) as bar:
        while True:
            try:
                out, err = proc.communicate(timeout=0.5)  # wakes on exit; else a bar update
                break
            except subprocess.TimeoutExpired:
                bar.update(size() - bar.n)
        bar.update(size() - bar.n)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _ar_members(f: IO[bytes]) -> Iterator[tuple[str, int, int]]:
    """(name, offset, size) of each member of a Debian ``ar`` archive."""
    if f.read(8) != b"!<arch>\n":
        raise GuestError(f"{getattr(f, 'name', 'file')} is not a Debian package (no ar magic)")
    while True:
        header = f.read(60)
        if len(header) < 60:
            return
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58])
        offset = f.tell()
        yield name, offset, size
        f.seek(offset + size + (size & 1))


class _Window:
    """A read-only file object over part of another file, counting what was read."""

    def __init__(self, f: IO[bytes], offset: int, size: int, bar: object) -> None:
        self.f, self.left, self.bar = f, size, bar
        f.seek(offset)

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        if self.bar is not None:
            self.bar.update(len(data))  # type: ignore[attr-defined]
        return data


def _extract(deb: Path, members: set[str], directory: Path, *, progress: bool) -> None:
    """Stream ``data.tar.*`` of ``deb`` and write only ``members`` into ``directory``."""
    from tqdm.auto import tqdm

    with open(deb, "rb") as f:
        for name, offset, size in _ar_members(f):
            if not name.startswith("data.tar"):
                continue
            bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"extract {deb.name[:40]}",
                       disable=not progress)
            raw = _Window(f, offset, size, bar)
            if name.endswith(".xz"):
                stream: IO[bytes] = lzma.LZMAFile(raw)  # type: ignore[arg-type]
            elif name == "data.tar":
                stream = raw  # type: ignore[assignment]
            else:
                raise GuestError(f"{deb.name}: unsupported compression {name}")
            left = set(members)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for info in tar:
                    if info.name not in left:
                        continue
                    src = tar.extractfile(info)
                    assert src is not None
                    target = directory / Path(info.name).name
                    part = target.with_suffix(target.suffix + ".part")
                    with open(part, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    part.replace(target)
                    left.discard(info.name)
                    if not left:
                        break
            if not left:  # the rest of the package is not needed: the bar ends here
                bar.total = bar.n
                bar.refresh()
            bar.close()
            if left:
                raise GuestError(f"{deb.name} does not contain {', '.join(sorted(left))}")
            return
    raise GuestError(f"{deb.name} has no data.tar member")


def bzimage_version(path: Path) -> str:
    """The version string a Linux bzImage carries in its setup header (``kernel_version``)."""
    with open(path, "rb") as f:
        head = f.read(0x10000)
    if head[0x202:0x206] != b"HdrS":
        raise GuestError(f"{path} is not a Linux bzImage (no HdrS setup header)")
    (pointer,) = struct.unpack_from("<H", head, 0x20E)
    start = pointer + 0x200
    return head[start : head.index(b"\0", start)].decode(errors="replace")


def elf_symbol_bytes(path: Path, name: str) -> bytes:
    """The bytes of symbol ``name`` in a 64-bit little-endian ELF file, from its .symtab."""
    import numpy as np

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != b"\x7fELF" or m[4] != 2 or m[5] != 1:
            raise GuestError(f"{path} is not a 64-bit little-endian ELF file")
        shoff, = struct.unpack_from("<Q", m, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", m, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", m, shoff + i * shentsize)
                    for i in range(shnum)]
        symtab = next((s for s in sections if s[1] == 2), None)  # SHT_SYMTAB
        if symtab is None:
            raise GuestError(f"{path} has no symbol table; it is stripped")
        strtab = sections[symtab[6]]
        strings = m[strtab[4] : strtab[4] + strtab[5]]
        at = strings.find(b"\0" + name.encode() + b"\0")
        if at < 0:
            raise GuestError(f"{path} has no symbol {name}")
        dtype = np.dtype([("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"),
                          ("value", "<u8"), ("size", "<u8")])
        syms = np.frombuffer(m, dtype=dtype, count=symtab[5] // 24, offset=symtab[4])
        hits = np.flatnonzero(syms["name"] == at + 1)
        if not len(hits):
            raise GuestError(f"{path} has no symbol {name}")
        shndx, value, size = (int(syms[field][hits[0]]) for field in ("shndx", "value", "size"))
        del syms  # releases the mmap
        section = sections[shndx]
        offset = section[4] + value - section[3]
        return bytes(m[offset : offset + size])


def linux_banner(path: Path) -> str:
    """The ``linux_banner`` string of a vmlinux, read through its symbol table."""
    raw = elf_symbol_bytes(path, "linux_banner").split(b"\0", 1)[0]
    return raw.decode(errors="replace").strip()


def _check_same_build(guest: Guest) -> str:
    """Refuse an image and symbols from different builds: compare release and UTS version."""
    assert guest.symbols is not None
    image = bzimage_version(guest.kernel)  # "6.1.0-56-cloud-amd64 (...) #1 SMP ... Debian 6.1.x"
    banner = linux_banner(guest.symbols)  # "Linux version <release> (...) (gcc ...) #1 ..."
    release = image.split()[0]
    uts_version = image[image.index("#") :] if "#" in image else ""
    if not banner.startswith(f"Linux version {release} ") or not banner.endswith(uts_version):
        raise GuestError(
            f"kernel image and symbols are from different builds:\n  image:   {image}\n"
            f"  symbols: {banner}\nremove {guest.kernel.parent} and fetch again"
        )
    return banner
