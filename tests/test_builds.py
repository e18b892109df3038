"""QEMU builds without the network: version strings, resolve rules, the apt mirror and state.

The builds here are stand-ins: shell scripts that answer ``--version`` as a QEMU does, in a
cache under a temporary ``XDG_CACHE_HOME``. Fetching and booting real builds is in
tests/test_builds_live.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import mvnb
from mvnb.errors import Error, MissingTool, QemuError
from mvnb.vm import _apt, builds
from mvnb.vm.builds import QemuBuild, parse_version, qemu_builds, resolve_qemu

DEBIAN_12 = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) ..."
BACKPORTS = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n"


@pytest.mark.parametrize(("text", "version", "vt", "package"), [
    (DEBIAN_12, "7.2.22", (7, 2, 22), "Debian 1:7.2+dfsg-7+deb12u18+b3"),
    (BACKPORTS, "10.0.2", (10, 0, 2), "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"),
    ("QEMU emulator version 9.1.2 (qemu-9.1.2-3.fc41)\n", "9.1.2", (9, 1, 2), "qemu-9.1.2-3.fc41"),
    ("QEMU emulator version 10.1.50 (v10.1.0-1234-gabcdef)\n", "10.1.50", (10, 1, 50),
     "v10.1.0-1234-gabcdef"),
    ("QEMU emulator version 8.2.0\nCopyright", "8.2.0", (8, 2, 0), ""),
    ("QEMU emulator version 2.11.1(Debian 1:2.11+dfsg-1ubuntu7)\n", "2.11.1", (2, 11, 1),
     "Debian 1:2.11+dfsg-1ubuntu7"),
])
def test_parse_version(text, version, vt, package):
    assert parse_version(text) == (version, vt, package)


def test_parse_version_refuses_other_programs():
    with pytest.raises(QemuError, match="not a QEMU --version output: 'GNU gdb"):
        parse_version("GNU gdb (Debian 13.1-3) 13.1\n")


def test_version_prefixes_match_whole_components():
    assert builds._matches("10", (10, 0, 2)) and builds._matches("10.0", (10, 0, 2))
    assert builds._matches("10.0.2", (10, 0, 2))
    assert not builds._matches("1", (10, 0, 2)) and not builds._matches("10.1", (10, 0, 2))
    assert builds._upstream("1:10.0.2+ds-2+deb13u1~bpo12+1") == "10.0.2"
    assert builds._upstream("1.16.3-2~bpo12+1") == "1.16.3"


# -- resolve rules on stand-in builds ------------------------------------------------------

def _fake_qemu(path: Path, output: str, calls: Path | None = None) -> Path:
    """A script that answers --version like QEMU; any other call writes its env and argv."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = f'echo x >> "{calls}"\n' if calls else ""
    path.write_text(
        f'#!/bin/sh\nif [ "$1" != --version ]; then\n'
        f'  echo "$QEMU_MODULE_DIR $*" > "{path}.called"; exit 0\nfi\n'
        f"{count}cat <<'EOF'\n{output}EOF\n")
    path.chmod(0o755)
    return path


def _cached_build(cache: Path, version: str, package: str, *, stamp: bool = True) -> Path:
    root = cache / "mvnb" / "qemu" / version
    binary = _fake_qemu(root / "usr/bin/qemu-system-x86_64",
                        f"QEMU emulator version {version} (Debian {package})\n")
    (root / "usr/share/qemu").mkdir(parents=True)
    (root / "usr/lib/x86_64-linux-gnu/qemu").mkdir(parents=True)
    if stamp:
        (root / builds.STAMP).write_text(json.dumps({"package_version": package}))
    return binary


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A cache with QEMU 10.0.2, a partial 10.1.0 fetch, and a system QEMU 7.2.22 on PATH."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MVNB_QEMU", raising=False)
    bindir = tmp_path / "bin"
    calls = tmp_path / "system-calls"
    _fake_qemu(bindir / "qemu-system-x86_64", DEBIAN_12, calls)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    cached = _cached_build(tmp_path / "cache", "10.0.2", "1:10.0.2+ds-2+deb13u1~bpo12+1")
    _cached_build(tmp_path / "cache", "10.1.0", "1:10.1.0+ds-1", stamp=False)  # interrupted
    (tmp_path / "cache/mvnb/qemu/.fetch-abc/tree").mkdir(parents=True)
    return tmp_path, cached, calls


def test_builds_list_newest_first_and_skip_unfinished_fetches(here):
    _, cached, _ = here
    found = qemu_builds()
    assert [(b.version, b.origin) for b in found] == [("10.0.2", "cache"), ("7.2.22", "system")]
    ten = found[0]
    assert ten.binary == cached and ten.name == "cache-10.0.2"
    assert ten.firmware == cached.parents[1] / "share/qemu"
    assert ten.args() == ["-L", str(ten.firmware)]
    assert ten.env() == {"QEMU_MODULE_DIR": str(cached.parents[1] / "lib/x86_64-linux-gnu/qemu")}
    assert ten.provenance == {"qemu_version": "10.0.2", "qemu_origin": "cache",
                              "qemu_package": "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"}
    system = found[1]
    assert system.firmware is None and system.args() == [] and system.env() == {}


def test_resolve_none_version_and_environment(here, monkeypatch):
    _, cached, calls = here
    assert resolve_qemu(None).origin == "system"
    assert resolve_qemu(None).version_tuple == (7, 2, 22)
    assert resolve_qemu("10.0").binary == cached
    assert resolve_qemu("10").binary == cached
    assert resolve_qemu("7.2").origin == "system"  # a version the system build has
    monkeypatch.setenv("MVNB_QEMU", "10.0")
    assert resolve_qemu(None).binary == cached
    build = resolve_qemu(None)
    assert resolve_qemu(build) is build
    assert calls.read_text().count("x") == 1  # --version ran once per binary


def test_missing_version_says_how_to_fetch(here):
    with pytest.raises(QemuError, match=r"mvnb qemu fetch --version 10\.1`"):
        resolve_qemu("10.1")  # its fetch never finished
    with pytest.raises(QemuError, match=r"builds here: 10\.0\.2 \(cache\), 7\.2\.22 \(system\)"):
        resolve_qemu("9")


def test_resolve_paths(here):
    tmp_path, cached, _ = here
    assert resolve_qemu(str(cached)).origin == "cache"  # a cached binary keeps its firmware
    assert resolve_qemu(cached).firmware is not None
    assert resolve_qemu("qemu-system-x86_64").origin == "system"
    other = _fake_qemu(tmp_path / "src/build/qemu-system-x86_64",
                       "QEMU emulator version 10.1.50 (v10.1.0-1234-gabcdef)\n")
    build = resolve_qemu(str(other))
    assert (build.origin, build.version, build.firmware) == ("path", "10.1.50", None)
    with pytest.raises(QemuError, match="not an executable file"):
        resolve_qemu(str(tmp_path / "nowhere/qemu"))
    with pytest.raises(QemuError, match="neither a version"):
        resolve_qemu("qemu-system-riscv128")


def test_no_system_qemu_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("MVNB_QEMU", raising=False)
    with pytest.raises(MissingTool, match=r"apt-get install qemu-system-x86.*mvnb qemu fetch"):
        resolve_qemu(None)
    assert qemu_builds() == []


def test_qemu_takes_a_build(here, tmp_path):
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"x")
    guest = mvnb.Guest(kernel=kernel)
    vm = mvnb.Qemu(guest, qemu="10.0", start=False)
    build = vm.qemu_build
    assert isinstance(build, QemuBuild) and build.version == "10.0.2"
    with vm:
        vm.start()  # the stand-in records how it was started and exits
        assert vm.process is not None and vm.process.wait(10) == 0
        assert vm.argv_used[:3] == [str(build.binary), "-L", str(build.firmware)]
    called = Path(f"{build.binary}.called").read_text().split()
    assert called[0] == build.env()["QEMU_MODULE_DIR"]
    assert called[1:3] == ["-L", str(build.firmware)] and "-kernel" in called
    assert mvnb.Qemu(guest, start=False).qemu_build.origin == "system"
    with pytest.raises(QemuError, match="fetch --version 11"):
        mvnb.Qemu(guest, qemu="11", start=False)


# -- the mirror from the system's sources ----------------------------------------------------

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_mirror_from_deb822():
    sources = _apt.parse_deb822(DEB822, "debian.sources")
    assert len(sources) == 2
    mirror = _apt.debian_mirror(sources)
    assert mirror.uris == ("http://deb.debian.org/debian",)
    assert mirror.signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert mirror.origin == "debian.sources"


def test_mirror_from_one_line_files():
    text = """\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/etc/apt/keyrings/mirror.gpg] http://ftp.de.debian.org/debian bookworm main contrib
"""  # noqa: E501 (a sources.list line)
    mirror = _apt.debian_mirror(_apt.parse_one_line(text))
    assert mirror.uris == ("http://ftp.de.debian.org/debian",)
    assert mirror.signed_by == "/etc/apt/keyrings/mirror.gpg"
    assert mirror.components == ("main", "contrib")


def test_mirror_preference_and_disabled_entries():
    text = DEB822 + """
Types: deb
URIs: http://backports.example/debian
Suites: bookworm-backports
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBF...
 -----END PGP PUBLIC KEY BLOCK-----

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm-backports
"""
    sources = _apt.parse_deb822(text)
    assert [s.uris[0] for s in sources] == ["http://deb.debian.org/debian",
                                            "http://deb.debian.org/debian-security",
                                            "http://backports.example/debian"]
    mirror = _apt.debian_mirror(sources)
    assert mirror.uris == ("http://backports.example/debian",) and mirror.signed_by is None


def test_a_newer_debian_release_still_names_the_mirror():
    text = "deb http://mirror.example.org/debian trixie main\n"
    assert _apt.debian_mirror(_apt.parse_one_line(text)).uris[0] == "http://mirror.example.org/debian"


@pytest.mark.parametrize("text", [
    "deb http://security.debian.org/debian-security bookworm-security main\n",
    "deb http://archive.ubuntu.com/ubuntu noble main universe\n",
    "",
])
def test_no_debian_mirror_says_what_to_do(text):
    with pytest.raises(Error, match="MVNB_DEBIAN_MIRROR"):
        _apt.debian_mirror(_apt.parse_one_line(text))


def test_system_sources_reads_every_format(tmp_path, monkeypatch):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://one.example/debian bookworm main\n")
    (tmp_path / "sources.list.d/two.list").write_text("deb http://two.example/debian sid main\n")
    (tmp_path / "sources.list.d/three.sources").write_text(DEB822)
    (tmp_path / "sources.list.d/off.list.disabled").write_text("deb http://off.example/x a b\n")
    found = [s.uris[0] for s in _apt.system_sources(tmp_path)]
    assert found == ["http://one.example/debian", "http://deb.debian.org/debian",
                     "http://deb.debian.org/debian-security", "http://two.example/debian"]
    monkeypatch.setenv("MVNB_DEBIAN_MIRROR", "http://override.example/debian")
    assert builds._mirror() == ("http://override.example/debian", None)


def test_private_apt_state_leaves_the_system_alone(tmp_path):
    apt = _apt.PrivateApt(tmp_path / "apt", ["deb http://deb.debian.org/debian bookworm main"],
                          error=QemuError)
    dump = subprocess.run(["apt-config", "-c", str(apt.config), "dump"], capture_output=True,
                          text=True, timeout=30, check=True).stdout
    state = tmp_path / "apt"
    assert f'Dir::State::lists "{state}/lists";' in dump
    assert f'Dir::State::status "{state}/status";' in dump
    assert f'Dir::Etc::sourcelist "{state}/sources.list";' in dump
    assert f'Dir::Cache "{state}/cache";' in dump
    assert 'Dir::Etc::sourceparts "-";' in dump
    # The system's update hooks (AppStream, PackageKit) have no entries left.
    assert "APT::Update::Post-Invoke-Success::" not in dump
    assert "DPkg::Post-Invoke::" not in dump
    assert ('APT::Sandbox::User "root";' in dump) == (os.geteuid() == 0)
    assert (state / "status").read_text() == ""
    policy = subprocess.run(["apt-cache", "-c", str(apt.config), "policy"], capture_output=True,
                            text=True, timeout=30)
    assert "bookworm/main" not in policy.stdout  # no lists fetched: this state knows nothing
