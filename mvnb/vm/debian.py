"""Debian's kernels as guests: fetched with ``apt-get download`` into the cache, checked.

``debian(flavour)`` fetches one of Debian's kernel flavours (``linux-image-<flavour>``:
"cloud-amd64", the generic "amd64", "rt-amd64") and the matching ``-dbg`` package,
extracts only the files a debugging session needs (``dpkg-deb --fsys-tarfile``, read as a
stream and abandoned once they are out), and checks that image and symbols come from the
same build before returning. ``debian_cloud()`` is ``debian("cloud-amd64")``.

The cloud kernel is cached in ``<cache>/debian/<abi>/``, other flavours in
``<cache>/debian/<flavour>/<abi>/``. The generic flavour's ``-dbg`` package is about
860 MB (its vmlinux about 700 MB), the cloud one's 280 MB (2026-11, 6.1.0-57).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from ..cache import cache_dir
from ..errors import GuestError, MissingTool
from .elf import check_same_build
from .guest import Guest

__all__ = ["FLAVOURS", "cached", "debian", "debian_cloud"]

#: Debian's x86-64 kernel flavours that come with a ``-dbg`` package.
FLAVOURS = ("cloud-amd64", "amd64", "rt-amd64")
_APT_LISTS = Path("/var/lib/apt/lists")
_LISTS_MAX_AGE = 7 * 24 * 3600


def debian_cloud(abi: str | None = None, *, refresh: bool = False, progress: bool = True) -> Guest:
    """Debian's cloud kernel with its debug symbols: ``debian("cloud-amd64", ...)``."""
    return debian("cloud-amd64", abi, refresh=refresh, progress=progress)


def debian(flavour: str = "amd64", abi: str | None = None, *, refresh: bool = False,
           progress: bool = True) -> Guest:
    """Debian's ``linux-image-<flavour>`` kernel with its debug symbols, fetched once into
    the cache (``flavour`` is one of :data:`FLAVOURS`).

    ``abi`` (e.g. ``"6.1.0-56"``) pins a build; so does ``MVNB_DEBIAN_KERNEL``. Without one,
    the newest build already in the cache is used (a second call costs nothing); when there
    is none, or with ``refresh=True``, the candidate version of ``linux-image-<flavour>``
    is resolved through apt, running ``apt-get update`` when the package lists are missing
    or older than a week. The guest boots with ``nokaslr``, so the symbols match.
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {', '.join(FLAVOURS)}, not {flavour!r}")
    abi = abi or os.environ.get("MVNB_DEBIAN_KERNEL") or None
    root = _root(flavour)
    if abi is None and not refresh:
        cached = _newest_cached(root, flavour)
        if cached is not None:
            return cached
    if abi is None:
        abi = _resolve_abi(flavour, update=True)
        if abi is None:
            raise GuestError(
                f"apt knows no package linux-image-{flavour}; add Debian's main archive to "
                "the apt sources (the kit uses Debian's kernels) or pin "
                "MVNB_DEBIAN_KERNEL=<abi>"
            )
    abi = abi.removesuffix(f"-{flavour}")
    guest = _cached(root, abi, flavour)
    if guest is not None:
        return guest
    return _fetch(root, abi, flavour, progress=progress)


def cached(flavour: str = "amd64") -> Guest | None:
    """The newest build of ``flavour`` already in the cache, or None; never fetches."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {', '.join(FLAVOURS)}, not {flavour!r}")
    return _newest_cached(_root(flavour), flavour)


def _root(flavour: str) -> Path:
    """Where a flavour's builds are cached (the cloud kernel where it always was)."""
    root = cache_dir() / "debian"
    return root if flavour == "cloud-amd64" else root / flavour


def _guest_for(directory: Path, abi: str, flavour: str) -> Guest:
    release = f"{abi}-{flavour}"
    return Guest(
        kernel=directory / f"vmlinuz-{release}",
        symbols=directory / f"vmlinux-{release}",
        cmdline="console=ttyS0",
        name=f"debian-cloud-{release}" if flavour == "cloud-amd64" else f"debian-{release}",
        nokaslr=True,
        version=abi,
    )


def _cached(root: Path, abi: str, flavour: str) -> Guest | None:
    directory = root / abi
    stamp = directory / "mvnb-checked.json"
    if not stamp.is_file():
        return None
    try:
        return _guest_for(directory, abi, flavour)
    except GuestError:
        return None


def _newest_cached(root: Path, flavour: str) -> Guest | None:
    if not root.is_dir():
        return None
    stamps = sorted(root.glob("*/mvnb-checked.json"), key=lambda p: p.stat().st_mtime)
    for stamp in reversed(stamps):
        guest = _cached(root, stamp.parent.name, flavour)
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


def _resolve_abi(flavour: str, *, update: bool) -> str | None:
    """The ABI (``6.1.0-56``) of the candidate ``linux-image-<flavour>``."""
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
    meta = f"linux-image-{flavour}"
    policy = _run(["apt-cache", "policy", meta]).stdout
    match = re.search(r"Candidate:\s*(\S+)", policy)
    if not match or match.group(1) == "(none)":
        return None
    show = _run(["apt-cache", "show", f"{meta}={match.group(1)}"]).stdout
    dep = re.search(rf"linux-image-(\d+\.\d+\.\d+-\d+)-{re.escape(flavour)}\b",
                    show.split("Depends:", 1)[-1])
    return dep.group(1) if dep else None


def _fetch(root: Path, abi: str, flavour: str, *, progress: bool) -> Guest:
    release = f"{abi}-{flavour}"
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
    guest = _guest_for(directory, abi, flavour)
    assert guest.symbols is not None
    try:
        banner = check_same_build(guest.kernel, guest.symbols)
    except GuestError as error:
        raise GuestError(f"{error}\nremove {directory} and fetch again") from None
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


def _extract(deb: Path, members: set[str], directory: Path, *, progress: bool) -> None:
    """Write only ``members`` of ``deb``'s data into ``directory``.

    ``dpkg-deb --fsys-tarfile`` decompresses; its tar stream is read here member by member
    and abandoned once every wanted file is out (the debug package's vmlinux comes early;
    the debug info of its modules is never unpacked).
    """
    from tqdm.auto import tqdm

    if shutil.which("dpkg-deb") is None:
        raise MissingTool("dpkg-deb is not installed; install dpkg (Debian/Ubuntu)")
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Installed-Size"], capture_output=True,
                          text=True, timeout=60)
    total = int(info.stdout.strip() or 0) * 1024 or None
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    left = set(members)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"extract {deb.name[:40]}",
               disable=not progress)
    try:
        with tarfile.open(fileobj=_Counted(proc.stdout, bar), mode="r|") as tar:
            for entry in tar:
                if entry.name not in left:
                    continue
                src = tar.extractfile(entry)
                assert src is not None
                target = directory / Path(entry.name).name
                part = target.with_suffix(target.suffix + ".part")
                with open(part, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                part.replace(target)
                left.discard(entry.name)
                if not left:
                    break
    except tarfile.TarError as error:
        raise GuestError(f"{deb.name}: cannot read its data: {error}") from None
    finally:
        proc.kill()
        proc.wait()
        bar.total = bar.n  # the rest of the package is not needed: the bar ends here
        bar.refresh()
        bar.close()
    if left:
        raise GuestError(f"{deb.name} does not contain {', '.join(sorted(left))}")


class _Counted:
    """A read-only stream that counts what was read on a progress bar."""

    def __init__(self, stream: object, bar: object) -> None:
        self.stream, self.bar = stream, bar

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)  # type: ignore[attr-defined]
        self.bar.update(len(data))  # type: ignore[attr-defined]
        return data
