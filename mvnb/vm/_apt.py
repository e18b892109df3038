"""apt with a private state: one suite's package lists and downloads, the system's apt untouched.

``PrivateApt`` runs ``apt-get``/``apt-cache`` with a configuration file of its own (apt.conf(5)
``Dir::*``): its own sources list, package lists, cache and an empty dpkg status, so ``apt-get
update`` needs no root and writes nothing under /var/lib/apt or /var/cache/apt. The system's
update hooks (``APT::Update::Post-Invoke*``, which refresh AppStream caches or poke
PackageKit) are cleared for these runs. The mirror is taken from the system's own sources
(sources.list(5): one-line ``.list`` files and deb822 ``.sources`` files).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from .. import _proc
from ..errors import Error, MissingTool

__all__ = ["AptSource", "PrivateApt", "debian_mirror", "parse_deb822", "parse_one_line",
           "run_group", "system_sources"]

#: Debian's archive keyring, used when the system's entry names none (or carries it inline).
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def run_group(argv: list[str], *, timeout: float, input: str | None = None,
              env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``argv`` in its own process group, output captured; the whole group is killed when
    the timeout fires or on Ctrl-C (``dpkg-deb -x`` leaves a ``tar`` child behind otherwise).
    """
    proc = _proc.spawn(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=None if env is None else dict(env), cwd=cwd)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except BaseException:
        kill_group(proc)
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process group ``proc`` leads, and reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@dataclasses.dataclass(frozen=True)
class AptSource:
    """One entry of the system's apt sources (sources.list(5)), as far as mvnb needs it."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None  # a keyring file; None when absent or an inline key
    origin: str = ""  # the file it came from


_ONE_LINE = re.compile(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$")


def parse_one_line(text: str, origin: str = "") -> list[AptSource]:
    """Entries of a one-line-style file (``deb [signed-by=…] URI suite component…``)."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = _ONE_LINE.match(line)
        if not m:
            continue
        options = dict(o.split("=", 1) for o in (m[2] or "").split() if "=" in o)
        signed = options.get("signed-by") or options.get("Signed-By")
        out.append(AptSource((m[1],), (m[3],), (m[4],), tuple(m[5].split()),
                             _keyring(signed), origin))
    return out


def parse_deb822(text: str, origin: str = "") -> list[AptSource]:
    """Entries of a deb822-style ``.sources`` file (``Types:``, ``URIs:``, ``Suites:`` …)."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in paragraph.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if not fields.get("types") or not fields.get("uris"):
            continue
        if fields.get("enabled", "yes").strip().lower() == "no":
            continue
        out.append(AptSource(tuple(fields["types"].split()), tuple(fields["uris"].split()),
                             tuple(fields.get("suites", "").split()),
                             tuple(fields.get("components", "").split()),
                             _keyring(fields.get("signed-by")), origin))
    return out


def _keyring(value: str | None) -> str | None:
    """A Signed-By value that names a file; None for an inline key or fingerprints."""
    if not value or value.lstrip().startswith("-----BEGIN") or "\n" in value:
        return None
    first = value.split(",")[0].split()[0]
    return first if first.startswith("/") else None


def system_sources(etc: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every enabled entry of ``sources.list``, ``sources.list.d/*.list`` and ``*.sources``."""
    out: list[AptSource] = []
    main = etc / "sources.list"
    if main.is_file():
        out += parse_one_line(main.read_text(errors="replace"), str(main))
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                out += parse_one_line(path.read_text(errors="replace"), str(path))
            elif path.suffix == ".sources":
                out += parse_deb822(path.read_text(errors="replace"), str(path))
    return out


def debian_mirror(sources: Iterable[AptSource], codename: str = "bookworm") -> AptSource:
    """The system's Debian archive for ``codename``: a ``deb`` entry that serves its suites.

    Preference: an entry already naming ``<codename>-backports``, then ``<codename>`` or
    ``<codename>-updates`` (every Debian mirror that carries a release carries its
    backports), then any other Debian release's entry whose URI has a ``/debian`` path
    segment. Security archives (``*-security``) never qualify. Raises Error with what to do
    when there is none.
    """
    debs = [s for s in sources if "deb" in s.types and s.uris]
    ranks = [
        lambda s: f"{codename}-backports" in s.suites,
        lambda s: bool({codename, f"{codename}-updates"} & set(s.suites)),
        lambda s: (any(not x.endswith("-security") for x in s.suites)
                   and any("/debian" in u.rstrip("/").split("//", 1)[-1] for u in s.uris)),
    ]
    for rank in ranks:
        for source in debs:
            if rank(source) and not all(x.endswith("-security") for x in source.suites):
                return source
    raise Error(
        f"no Debian archive in the apt sources (/etc/apt/sources.list, sources.list.d); mvnb "
        f"fetches from {codename}-backports on the system's own Debian mirror. Add one, e.g. "
        f"`deb http://deb.debian.org/debian {codename} main`, or set "
        "MVNB_DEBIAN_MIRROR=<URL of a Debian mirror>"
    )


def dpkg_version_key(versions: Iterable[str]) -> list[str]:
    """``versions`` sorted oldest first by Debian's rules (``dpkg --compare-versions``)."""
    def compare(a: str, b: str) -> int:
        if a == b:
            return 0
        lt = run_group(["dpkg", "--compare-versions", a, "lt", b], timeout=30)
        return -1 if lt.returncode == 0 else 1

    return sorted(set(versions), key=functools.cmp_to_key(compare))


class PrivateApt:
    """apt-get and apt-cache on a private state in ``directory`` (created; caller removes).

    ``lines`` are the sources list's lines. As root, downloads run as root
    (``APT::Sandbox::User``): apt's ``_apt`` user cannot write a private 0700 directory.
    """

    def __init__(self, directory: Path, lines: Iterable[str], *,
                 error: type[Error] = Error) -> None:
        for tool in ("apt-get", "apt-cache", "dpkg"):
            if shutil.which(tool) is None:
                raise MissingTool(f"{tool} is not installed; mvnb fetches Debian packages with "
                                  "apt (a Debian or Ubuntu host)")
        self.directory = Path(directory)
        self.error = error
        d = self.directory
        for sub in ("lists/partial", "cache/archives/partial", "preferences.d"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "status").touch()
        (d / "sources.list").write_text("".join(f"{line}\n" for line in lines))
        settings = {
            "Dir::Etc::sourcelist": d / "sources.list",
            "Dir::Etc::sourceparts": "-",
            "Dir::Etc::preferences": d / "preferences",
            "Dir::Etc::preferencesparts": d / "preferences.d",
            "Dir::State::Lists": d / "lists",
            "Dir::State::status": d / "status",
            "Dir::State::extended_states": d / "extended_states",
            "Dir::Cache": d / "cache",
            "Acquire::Languages": "none",
        }
        if os.geteuid() == 0:
            settings["APT::Sandbox::User"] = "root"
        clear = ["APT::Update::Pre-Invoke", "APT::Update::Post-Invoke",
                 "APT::Update::Post-Invoke-Success", "DPkg::Pre-Invoke", "DPkg::Post-Invoke"]
        (d / "apt.conf").write_text(
            "".join(f"#clear {key};\n" for key in clear)
            + "".join(f'{key} "{value}";\n' for key, value in settings.items())
        )
        self.config = d / "apt.conf"

    def run(self, argv: list[str], *, timeout: float, what: str,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """``argv`` (apt-get/apt-cache) with the private configuration; Error when it fails."""
        full = [argv[0], "-c", str(self.config), *argv[1:]]
        try:
            result = run_group(full, timeout=timeout, cwd=cwd)
        except subprocess.TimeoutExpired as e:
            raise self.error(f"{what}: `{' '.join(argv)}` did not finish within {timeout:.0f} s; "
                             "check the network and the mirror, then try again") from e
        if result.returncode != 0:
            raise self.error(f"{what}: `{' '.join(argv)}` failed (status {result.returncode}):\n"
                             f"{result.stderr.strip()}")
        return result

    def update(self, *, timeout: float = 300.0) -> None:
        """Fetch the private sources' package lists."""
        self.run(["apt-get", "update", "-q"], timeout=timeout, what="apt-get update")

    def show(self, package: str, *, timeout: float = 60.0) -> list[dict[str, str]]:
        """Every version of ``package`` the private lists know: its control fields, each."""
        result = run_group(["apt-cache", "-c", str(self.config), "show", package],
                           timeout=timeout)
        if result.returncode != 0 and "No packages found" not in result.stderr:
            raise self.error(f"apt-cache show {package} failed:\n{result.stderr.strip()}")
        records = []
        for paragraph in re.split(r"\n\s*\n", result.stdout):
            fields = dict(re.findall(r"^([\w-]+):[ \t]*(.*)$", paragraph, re.M))
            if fields.get("Package") == package:
                records.append(fields)
        return records

    def download(self, specs: list[str], directory: Path, *, total: int | None,
                 progress: bool, timeout: float = 900.0, desc: str = "apt-get download") -> None:
        """``apt-get download`` of ``specs`` (``name=version``) into ``directory``, with a bar.

        The bar follows the bytes in ``directory``; the process is killed on a timeout or
        Ctrl-C, so an interrupted download leaves only partial files behind for the caller
        to remove.
        """
        import time

        from tqdm.auto import tqdm

        argv = ["apt-get", "-c", str(self.config), "download", *specs]
        proc = _proc.spawn(argv, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + timeout

        def size() -> int:
            return sum(p.stat().st_size for p in directory.rglob("*.deb*") if p.is_file())

        try:
            with tqdm(total=total, unit="B", unit_scale=True, desc=desc,
                      disable=not progress) as bar:
                while True:
                    try:
                        _, err = proc.communicate(timeout=0.5)  # wakes on exit, else updates
                        break
                    except subprocess.TimeoutExpired:
                        bar.update(size() - bar.n)
                        if time.monotonic() > deadline:
                            raise self.error(
                                f"apt-get download {' '.join(specs)} did not finish within "
                                f"{timeout:.0f} s; check the network and try again") from None
                bar.update(size() - bar.n)
        finally:
            if proc.poll() is None:
                kill_group(proc)
        if proc.returncode != 0:
            raise self.error(f"apt-get download {' '.join(specs)} failed "
                             f"(status {proc.returncode}):\n{err.strip()}")
