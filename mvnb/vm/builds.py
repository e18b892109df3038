"""QEMU builds: the system's ``qemu-system-x86_64`` and newer ones fetched into mvnb's cache.

Debian 12 ships QEMU 7.2, whose TCG has no x2APIC; bookworm-backports carries QEMU 10.
``fetch_qemu()`` downloads the newest backports build with apt on a private state (nothing
changes in the system's apt, no root needed), unpacks it with ``dpkg-deb -x`` under
``cache_dir()/qemu/<version>`` and checks that it runs here. ``resolve_qemu()`` turns what
a user passes (``None``, ``"10.0"``, a path, a :class:`QemuBuild`) into a build;
``mvnb.Qemu(..., qemu=...)`` uses it. What differs between the versions: docs/qemu-versions.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Literal

from ..cache import cache_dir
from ..errors import MissingTool, QemuError
from . import _apt

__all__ = ["QemuBuild", "fetch_qemu", "parse_version", "qemu_builds", "resolve_qemu"]

SYSTEM_BINARY = "qemu-system-x86_64"
#: The suite QEMU builds are fetched from, and the packages a build is made of.
SUITE = "bookworm-backports"
PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-system-data",
            # QEMU loads UI modules at start even with -display none; without its own copies
            # it finds the system QEMU's and warns "Only modules from the same build ...".
            "qemu-system-modules-opengl", "qemu-system-modules-spice")
#: SeaBIOS (``bios-256k.bin`` for -M pc/q35, ``bios-microvm.bin``) when the data package lacks it.
FIRMWARE_PACKAGE = "seabios"
FIRMWARE_IMAGES = ("bios-256k.bin", "bios-microvm.bin")
STAMP = "mvnb-build.json"

Origin = Literal["system", "cache", "path"]


@dataclasses.dataclass(frozen=True)
class QemuBuild:
    """One ``qemu-system-x86_64``: where it is, its version, and what it needs to run.

    ``firmware`` is the directory for ``-L`` (a cached build's own firmware; None for the
    system build, which finds its own); ``module_dir`` is where its loadable modules are
    (``QEMU_MODULE_DIR``). ``package`` is the text QEMU prints in parentheses after its
    version (Debian's package version, a git describe, ...).
    """

    name: str
    binary: Path
    version: str
    version_tuple: tuple[int, ...]
    firmware: Path | None = None
    origin: Origin = "path"
    package: str = ""
    module_dir: Path | None = None

    def args(self) -> list[str]:
        """Command-line arguments this build needs (``-L <firmware>``)."""
        return ["-L", str(self.firmware)] if self.firmware is not None else []

    def env(self) -> dict[str, str]:
        """Environment this build needs (``QEMU_MODULE_DIR`` for a cached build)."""
        return {"QEMU_MODULE_DIR": str(self.module_dir)} if self.module_dir else {}

    @property
    def provenance(self) -> dict[str, str]:
        """What to record beside data made with this build (frame attrs, READMEs)."""
        return {"qemu_version": self.version, "qemu_package": self.package,
                "qemu_origin": self.origin}

    def __str__(self) -> str:
        return f"QEMU {self.version} ({self.origin}: {self.binary})"


# -- versions ------------------------------------------------------------------------------

_VERSION = re.compile(r"QEMU emulator version (\d+(?:\.\d+)*)[^\s(]*\s*(?:\(([^)]*)\))?")


def parse_version(text: str) -> tuple[str, tuple[int, ...], str]:
    """(``"10.0.2"``, ``(10, 0, 2)``, ``"Debian 1:10.0.2+ds-…"``) from ``--version`` output."""
    m = _VERSION.search(text)
    if not m:
        head = text.strip().splitlines()[:1] or ["(nothing)"]
        raise QemuError(f"not a QEMU --version output: {head[0]!r}; pass the path of a "
                        "qemu-system-x86_64 binary")
    return m[1], tuple(int(x) for x in m[1].split(".")), (m[2] or "").strip()


_version_cache: dict[tuple[str, int, int], tuple[str, tuple[int, ...], str]] = {}


def _read_version(binary: Path, env: dict[str, str] | None = None) -> tuple[str, tuple[int, ...],
                                                                            str]:
    """``binary --version`` parsed; run once per binary (path, mtime, size) per process."""
    st = binary.stat()
    key = (str(binary), st.st_mtime_ns, st.st_size)
    if key not in _version_cache:
        try:
            result = _apt.run_group([str(binary), "--version"], timeout=30,
                                    env={**os.environ, **(env or {})})
        except (OSError, subprocess.TimeoutExpired) as e:
            raise QemuError(f"{binary} --version did not run: {e}") from e
        if result.returncode != 0:
            raise QemuError(f"{binary} --version failed (status {result.returncode}):\n"
                            f"{result.stderr.strip()}")
        _version_cache[key] = parse_version(result.stdout)
    return _version_cache[key]


def _matches(prefix: str, version: tuple[int, ...]) -> bool:
    """``"10.0"`` matches (10, 0, 2); ``"1"`` does not match (10, 0, 2)."""
    wanted = tuple(int(x) for x in prefix.split("."))
    return version[: len(wanted)] == wanted


# -- the builds there are ------------------------------------------------------------------

def _root() -> Path:
    return cache_dir() / "qemu"


def _system() -> QemuBuild | None:
    found = shutil.which(SYSTEM_BINARY)
    if found is None:
        return None
    binary = Path(found).resolve()
    version, vt, package = _read_version(binary)
    return QemuBuild(f"system-{version}", binary, version, vt, None, "system", package)


def _cached(directory: Path) -> QemuBuild | None:
    """The build unpacked in ``directory``, if its fetch finished (the stamp is written last)."""
    binary = directory / "usr" / "bin" / SYSTEM_BINARY
    if not (directory / STAMP).is_file() or not binary.is_file():
        return None
    firmware = directory / "usr" / "share" / "qemu"
    modules = next(directory.glob("usr/lib/*/qemu"), None)
    build = QemuBuild("", binary, "", (), firmware if firmware.is_dir() else None, "cache", "",
                      modules)
    version, vt, package = _read_version(binary, build.env())
    return dataclasses.replace(build, name=f"cache-{version}", version=version,
                               version_tuple=vt, package=package)


def _cached_builds() -> list[QemuBuild]:
    root = _root()
    if not root.is_dir():
        return []
    builds = [_cached(d) for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    return [b for b in builds if b is not None]


def qemu_builds() -> list[QemuBuild]:
    """The system ``qemu-system-x86_64`` (if installed) and every cached build, newest first."""
    builds = _cached_builds()
    system = _system()
    if system is not None:
        builds.append(system)
    # newest first; at equal versions the cached build (the one mvnb fetched) first
    return sorted(builds, key=lambda b: (b.version_tuple, b.origin == "cache"), reverse=True)


def resolve_qemu(spec: str | os.PathLike[str] | QemuBuild | None = None) -> QemuBuild:
    """The build ``spec`` names.

    None: ``$MVNB_QEMU`` if set, else the system's ``qemu-system-x86_64``. A version
    (``"10.0"``, ``"10"``): the newest cached build with that prefix, else the system build
    if it has it. A path (or a program name on $PATH): that binary; a cached build's binary
    comes back as that build, with its firmware.
    """
    if isinstance(spec, QemuBuild):
        return spec
    if spec is None:
        env = os.environ.get("MVNB_QEMU", "").strip()
        if env:
            return resolve_qemu(env)
        system = _system()
        if system is None:
            raise MissingTool(
                f"{SYSTEM_BINARY} is not installed; install it with `sudo apt-get install "
                "qemu-system-x86` (Debian/Ubuntu), or fetch a build with `mvnb qemu fetch` and "
                "pass qemu=\"10.0\" (or set MVNB_QEMU=10.0)")
        return system
    text = os.fspath(spec).strip()
    if re.fullmatch(r"\d+(\.\d+)*", text):
        cached = [b for b in _cached_builds() if _matches(text, b.version_tuple)]
        if cached:
            return max(cached, key=lambda b: b.version_tuple)
        system = _system()
        if system is not None and _matches(text, system.version_tuple):
            return system
        have = ", ".join(f"{b.version} ({b.origin})" for b in qemu_builds()) or "none"
        raise QemuError(f"no QEMU {text} in the cache (builds here: {have}); fetch it with "
                        f"`mvnb qemu fetch --version {text}`")
    path = Path(text).expanduser()
    if "/" not in text:
        found = shutil.which(text)
        if found is None:
            raise QemuError(f"{text!r} is neither a version (like 10.0) nor a program on $PATH; "
                            "pass a version, or the path of a qemu-system-x86_64")
        path = Path(found)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise QemuError(f"{path} is not an executable file; pass the path of a "
                        "qemu-system-x86_64, a version like 10.0, or None for the system one")
    real = path.resolve()
    for build in _cached_builds():
        if build.binary.resolve() == real:
            return build
    system = _system()
    if system is not None and system.binary == real:
        return system
    version, vt, package = _read_version(real)
    return QemuBuild(f"path-{version}", path, version, vt, None, "path", package)


# -- fetching ------------------------------------------------------------------------------

def _mirror() -> tuple[str, str | None]:
    """(URI, keyring) of the Debian mirror: ``$MVNB_DEBIAN_MIRROR`` or the system's sources."""
    env = os.environ.get("MVNB_DEBIAN_MIRROR", "").strip()
    if env:
        return env, None
    source = _apt.debian_mirror(_apt.system_sources(), SUITE.split("-")[0])
    return source.uris[0], source.signed_by


def _upstream(debian_version: str) -> str:
    """``"10.0.2"`` from Debian's ``"1:10.0.2+ds-2+deb13u1~bpo12+1"``."""
    m = re.match(r"(?:\d+:)?(\d+(?:\.\d+)*)", debian_version)
    if not m:
        raise QemuError(f"cannot read an upstream version from {debian_version!r}")
    return m[1]


def _newest(apt: _apt.PrivateApt, package: str, prefix: str | None) -> dict[str, str]:
    records = apt.show(package)
    if prefix:
        records = [r for r in records if _matches(prefix, tuple(
            int(x) for x in _upstream(r["Version"]).split(".")))]
    if not records:
        offered = ", ".join(r["Version"] for r in apt.show(package)) or "none"
        raise QemuError(f"{SUITE} has no {package}"
                        + (f" {prefix}" if prefix else "")
                        + f" (it offers: {offered}); try `mvnb qemu fetch` for the newest")
    newest = _apt.dpkg_version_key(r["Version"] for r in records)[-1]
    return next(r for r in records if r["Version"] == newest)


def fetch_qemu(version: str | None = None, *, progress: bool = True) -> QemuBuild:
    """Fetch the newest ``qemu-system-x86`` from bookworm-backports into the cache.

    ``version`` (``"10.0"``) picks the newest build with that prefix. Downloads
    ``qemu-system-x86``, ``-common``, ``-data`` (and the UI module packages, and SeaBIOS
    when the data package lacks ``bios-256k.bin``) with ``apt-get download`` on a private
    apt state, unpacks them with ``dpkg-deb -x`` into a temporary directory, checks that
    ``ldd`` resolves every library and that ``--version`` names the fetched package, and
    only then renames the directory to ``cache_dir()/qemu/<version>``: an interrupted fetch
    never looks like a build. Returns the cached build when it is already there.
    """
    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    uri, keyring = _mirror()
    if keyring is None and _apt.DEBIAN_KEYRING.is_file():
        keyring = str(_apt.DEBIAN_KEYRING)
    options = " ".join(filter(None, ["target=Packages", keyring and f"signed-by={keyring}"]))
    line = f"deb [{options}] {uri} {SUITE} main"
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))
    try:
        apt = _apt.PrivateApt(work / "apt", [line], error=QemuError)
        apt.update()
        main = _newest(apt, PACKAGES[0], version)
        debian_version = main["Version"]
        upstream = _upstream(debian_version)
        final = root / upstream
        done = _cached(final)
        if done is not None and _stamp(final).get("package_version") == debian_version:
            return done
        debs = work / "debs"
        debs.mkdir()
        specs = [f"{p}={debian_version}" for p in PACKAGES]
        sizes = {p: int(r.get("Size", 0)) for p in PACKAGES for r in apt.show(p)
                 if r["Version"] == debian_version}
        missing = [p for p in PACKAGES if p not in sizes]
        if missing:
            raise QemuError(f"{SUITE} has {PACKAGES[0]} {debian_version} but not "
                            f"{', '.join(missing)} at that version; try again later "
                            "(the mirror may be mid-update)")
        apt.download(specs, debs, total=sum(sizes.values()) or None, progress=progress,
                     desc=f"QEMU {upstream}")
        tree = work / "tree"
        for deb in sorted(debs.glob("*.deb")):
            _unpack(deb, tree)
        packages = {p: debian_version for p in PACKAGES}
        firmware = tree / "usr" / "share" / "qemu"
        if not all((firmware / image).exists() for image in FIRMWARE_IMAGES):
            bios = _newest(apt, FIRMWARE_PACKAGE, None)
            bios_debs = work / "firmware-debs"
            bios_debs.mkdir()
            apt.download([f"{FIRMWARE_PACKAGE}={bios['Version']}"], bios_debs,
                         total=int(bios.get("Size", 0)) or None, progress=progress,
                         desc="SeaBIOS")
            _unpack(next(bios_debs.glob(f"{FIRMWARE_PACKAGE}_*.deb")), tree)
            _link_firmware(tree / "usr" / "share" / "seabios", firmware)
            packages[FIRMWARE_PACKAGE] = bios["Version"]
        record = _check(tree, debian_version)
        record.update(version=upstream, package_version=debian_version, packages=packages,
                      mirror=uri, suite=SUITE,
                      fetched=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        (tree / STAMP).write_text(json.dumps(record, indent=1) + "\n")
        _install(tree, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    build = _cached(final)
    if build is None:
        raise QemuError(f"the fetched build in {final} did not check out; remove it and retry")
    return build


def _remove_leftovers(root: Path, age: float = 24 * 3600) -> None:
    """Remove what fetches killed outright left (``.fetch-*``, ``.old-*``) a day ago or more."""
    now = time.time()
    for leftover in [*root.glob(".fetch-*"), *root.glob(".old-*")]:
        try:
            if now - leftover.stat().st_mtime > age:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def _stamp(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def _unpack(deb: Path, tree: Path) -> None:
    try:
        result = _apt.run_group(["dpkg-deb", "-x", str(deb), str(tree)], timeout=300)
    except subprocess.TimeoutExpired as e:
        raise QemuError(f"dpkg-deb -x {deb.name} did not finish within 300 s") from e
    if result.returncode != 0:
        raise QemuError(f"dpkg-deb -x {deb.name} failed:\n{result.stderr.strip()}")


def _link_firmware(seabios: Path, firmware: Path) -> None:
    """Link SeaBIOS's images into the -L directory, as Debian's firmware path finds them."""
    for image in sorted(seabios.iterdir()):
        target = firmware / image.name
        if not target.exists() and not target.is_symlink():
            target.symlink_to(os.path.relpath(image, firmware))


def _unresolved(path: Path) -> list[str]:
    try:
        result = _apt.run_group(["ldd", str(path)], timeout=60)
    except subprocess.TimeoutExpired as e:
        raise QemuError(f"ldd {path} did not finish within 60 s") from e
    return [line.split()[0] for line in result.stdout.splitlines() if "not found" in line]


def _check(tree: Path, debian_version: str) -> dict[str, Any]:
    """Refuse a build that cannot run here; return what the checks saw, for the stamp."""
    binary = tree / "usr" / "bin" / SYSTEM_BINARY
    if not binary.is_file():
        raise QemuError(f"the packages did not contain usr/bin/{SYSTEM_BINARY}")
    if shutil.which("ldd") is None:
        raise MissingTool("ldd is not installed (package libc-bin); mvnb checks the fetched "
                          "QEMU's libraries with it")
    missing = _unresolved(binary)
    if missing:
        raise QemuError(f"the fetched QEMU needs libraries this system lacks: "
                        f"{', '.join(missing)}; install them with apt, or use the system QEMU")
    for image in FIRMWARE_IMAGES:
        if not (tree / "usr" / "share" / "qemu" / image).exists():
            raise QemuError(f"the fetched firmware has no {image}")
    modules = next(tree.glob("usr/lib/*/qemu"), None)
    env = {"QEMU_MODULE_DIR": str(modules)} if modules else {}
    result = _apt.run_group([str(binary), "--version"], timeout=30, env={**os.environ, **env})
    version, _, package = parse_version(result.stdout)
    if package != f"Debian {debian_version}":
        raise QemuError(f"the fetched binary says {result.stdout.splitlines()[0]!r}, not "
                        f"Debian {debian_version}")
    unusable = {}
    if modules is not None:
        for module in sorted(modules.glob("*.so")):
            libs = _unresolved(module)
            if libs:
                unusable[module.name] = libs
    # A start without a guest: QEMU loads its UI and audio modules here and says when
    # one does not fit. Its monitor on stdin quits it.
    try:
        start = _apt.run_group(
            [str(binary), "-L", str(tree / "usr" / "share" / "qemu"), "-M", "microvm",
             "-accel", "tcg", "-display", "none", "-S", "-monitor", "stdio", "-serial", "none"],
            input="quit\n", timeout=60, env={**os.environ, **env})
    except subprocess.TimeoutExpired as e:
        raise QemuError("the fetched QEMU did not quit within 60 s of starting paused "
                        f"(-M microvm -S, 'quit' on its monitor):\n{e.stderr or ''}") from e
    warnings_text = start.stderr.strip()
    if start.returncode != 0:
        raise QemuError(f"the fetched QEMU did not start (status {start.returncode}):\n"
                        f"{warnings_text}")
    if warnings_text:
        warnings.warn(f"the fetched QEMU {version} prints on start:\n{warnings_text}",
                      RuntimeWarning, stacklevel=3)
    return {"version_line": result.stdout.splitlines()[0], "modules_unusable": unusable,
            "start_stderr": warnings_text}


def _install(tree: Path, final: Path) -> None:
    """Rename the checked tree into place; an older build of the same version goes."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        final.rename(old)
    try:
        tree.rename(final)
    except OSError:
        if old is not None and not final.exists():
            old.rename(final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
