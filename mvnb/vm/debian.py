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

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
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
#: A Debian kernel ABI: upstream version and ABI number (``6.1.0-56``); it names a cache
#: directory, so nothing else (no ``/``, no ``..``) is accepted.
ABI_PATTERN = re.compile(r"\d+\.\d+\.\d+-\d+")
#: Seconds an apt query (``apt-cache``, ``apt-get update``) may take.
APT_TIMEOUT = 300.0
#: Seconds ``apt-get download`` may go without the files growing, and may take in all.
DOWNLOAD_STALL = 120.0
DOWNLOAD_TIMEOUT = 3600.0
#: Seconds ``dpkg-deb --fsys-tarfile`` may take to hand over the files a session needs.
EXTRACT_TIMEOUT = 900.0


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
    if abi is None and os.environ.get("MVNB_DEBIAN_KERNEL"):
        abi = check_abi(os.environ["MVNB_DEBIAN_KERNEL"], flavour, "MVNB_DEBIAN_KERNEL")
    elif abi is not None:
        abi = check_abi(abi, flavour, "abi")
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
    abi = check_abi(abi, flavour, "apt's candidate")
    guest = _cached(root, abi, flavour)
    if guest is not None:
        return guest
    return _fetch(root, abi, flavour, progress=progress)


def check_abi(abi: str, flavour: str = "cloud-amd64", what: str = "abi") -> str:
    """``abi`` without a ``-<flavour>`` suffix, if it is a Debian kernel ABI, else GuestError."""
    bare = str(abi).strip().removesuffix(f"-{flavour}")
    if not ABI_PATTERN.fullmatch(bare):
        raise GuestError(
            f"{what}={abi!r} is not a Debian kernel ABI: give one like 6.1.0-56 (upstream "
            f"version and ABI number, as in linux-image-6.1.0-56-{flavour})"
        )
    return bare


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
        if not ABI_PATTERN.fullmatch(stamp.parent.name):
            continue
        guest = _cached(root, stamp.parent.name, flavour)
        if guest is not None:
            return guest
    return None


def _lists_stale() -> bool:
    lists = list(_APT_LISTS.glob("*_Packages*")) if _APT_LISTS.is_dir() else []
    if not lists:
        return True
    return time.time() - max(p.stat().st_mtime for p in lists) > _LISTS_MAX_AGE


def _run(argv: list[str], *, timeout: float = APT_TIMEOUT,
         **kw: object) -> subprocess.CompletedProcess[str]:
    """Run an apt/dpkg tool; killed on timeout or Ctrl-C (``subprocess.run`` kills it)."""
    if shutil.which(argv[0]) is None:
        raise MissingTool(
            f"{argv[0]} is not installed; mvnb fetches Debian's kernel with apt "
            "(on a Debian or Ubuntu host), or pass your own files with "
            "mvnb.Guest(kernel=..., symbols=...)"
        )
    try:
        return subprocess.run(argv, capture_output=True, text=True,  # type: ignore[call-overload]
                              timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise GuestError(f"{' '.join(argv)} did not finish within {timeout:g} s and was "
                         "stopped; check that apt can reach its archive") from None


def _resolve_abi(flavour: str, *, update: bool) -> str | None:
    """The ABI (``6.1.0-56``) of the candidate ``linux-image-<flavour>``.

    Runs ``apt-get update`` when the package lists are missing or stale and this process is
    root; otherwise it never elevates itself (no sudo): missing lists raise GuestError
    with the command to run, stale ones are used with a warning.
    """
    if update and _lists_stale():
        missing = not _lists_present()
        if os.geteuid() == 0:
            result = _run(["apt-get", "update", "-qq"])
            if result.returncode != 0:
                raise GuestError(
                    "apt-get update failed; fix apt's sources and try again, or pin "
                    f"MVNB_DEBIAN_KERNEL=<abi>.\n{result.stderr.strip()}"
                )
        elif missing:
            raise GuestError(
                "apt has no package lists, so the kernel's version cannot be resolved; run "
                "`sudo apt-get update` and try again, or pin a cached build with "
                "MVNB_DEBIAN_KERNEL=<abi> (e.g. 6.1.0-56)"
            )
        else:
            warnings.warn(
                "apt's package lists are more than a week old; `sudo apt-get update` lets "
                "mvnb find the newest kernel build", RuntimeWarning, stacklevel=3)
    meta = f"linux-image-{flavour}"
    policy = _run(["apt-cache", "policy", meta]).stdout
    match = re.search(r"Candidate:\s*(\S+)", policy)
    if not match or match.group(1) == "(none)":
        return None
    show = _run(["apt-cache", "show", f"{meta}={match.group(1)}"]).stdout
    dep = re.search(rf"linux-image-(\d+\.\d+\.\d+-\d+)-{re.escape(flavour)}\b",
                    show.split("Depends:", 1)[-1])
    return dep.group(1) if dep else None


def _lists_present() -> bool:
    return _APT_LISTS.is_dir() and any(_APT_LISTS.glob("*_Packages*"))


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
    from .._progress import tqdm

    _run(["apt-get", "--version"])  # MissingTool when there is no apt
    show = _run(["apt-cache", "show", "--no-all-versions", *packages]).stdout
    total = sum(int(size) for size in re.findall(r"^Size:\s*(\d+)", show, re.M)) or None
    argv = ["apt-get", "download", *packages]

    def size() -> int:
        return sum(p.stat().st_size for p in directory.rglob("*.deb*") if p.is_file())

    with tqdm(total=total, unit="B", unit_scale=True, desc="apt-get download",
              disable=not progress) as bar:
        def grew() -> int:
            now = size()
            bar.update(now - bar.n)
            return now

        return _watch(argv, directory, grew, stall=DOWNLOAD_STALL, timeout=DOWNLOAD_TIMEOUT)


def _watch(argv: list[str], cwd: Path, progress: Callable[[], int], *, stall: float,
           timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` while ``progress()`` (a growing count) moves; kill it otherwise.

    The child is killed (and reaped) when it makes no progress for ``stall`` seconds, runs
    longer than ``timeout`` seconds, or on any exception here, Ctrl-C included; the
    caller's temporary directory then takes its partial files with it.
    """
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # apt's methods die with it
    start = last_move = time.monotonic()
    seen = progress()
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=0.5)  # wakes on exit; else a progress check
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                count = progress()
                if count != seen:
                    seen, last_move = count, now
                if now - last_move > stall or now - start > timeout:
                    why = (f"made no progress for {stall:g} s" if now - last_move > stall
                           else f"did not finish within {timeout:g} s")
                    raise GuestError(f"{' '.join(argv)} {why} and was stopped; check that "
                                     "apt can reach Debian's archive, then try again") from None
        progress()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _extract(deb: Path, members: set[str], directory: Path, *, progress: bool) -> None:
    """Write only ``members`` of ``deb``'s data into ``directory``.

    ``dpkg-deb --fsys-tarfile`` decompresses; its tar stream is read here member by member
    and abandoned once every wanted file is out (the debug package's vmlinux comes early;
    the debug info of its modules is never unpacked).
    """
    from .._progress import tqdm

    if shutil.which("dpkg-deb") is None:
        raise MissingTool("dpkg-deb is not installed; install dpkg (Debian/Ubuntu)")
    info = _run(["dpkg-deb", "-f", str(deb), "Installed-Size"], timeout=60)
    total = int(info.stdout.strip() or 0) * 1024 or None
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    fired = threading.Event()

    def stop() -> None:  # a read that never returns
        fired.set()
        proc.kill()

    watchdog = threading.Timer(EXTRACT_TIMEOUT, stop)
    watchdog.start()
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
                try:
                    with open(part, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    if fired.is_set():
                        raise tarfile.ReadError("stopped by the watchdog")
                except BaseException:  # Ctrl-C, a full disk: no partial file stays
                    part.unlink(missing_ok=True)
                    raise
                part.replace(target)
                left.discard(entry.name)
                if not left:
                    break
    except tarfile.TarError as error:
        if fired.is_set():
            raise GuestError(f"dpkg-deb --fsys-tarfile {deb.name} did not finish within "
                             f"{EXTRACT_TIMEOUT:g} s and was stopped") from None
        raise GuestError(f"{deb.name}: cannot read its data: {error}") from None
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
        if not left:
            bar.total = bar.n  # the rest of the package is not needed: the bar ends here
            bar.refresh()
        bar.close()
    if left and fired.is_set():
        raise GuestError(f"dpkg-deb --fsys-tarfile {deb.name} did not finish within "
                         f"{EXTRACT_TIMEOUT:g} s and was stopped")
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
