"""Debian's kernels: names checked before they touch the cache, apt bounded and never sudo.

No network: apt is asked only about what is local (``apt-cache``), and the child processes
that stand in for a slow ``apt-get download`` are real processes (``sleep``, ``sh``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
from procs import children

import mvnb
from mvnb.vm import debian


def _children(word: str) -> list[int]:
    """Live processes whose parent is this one and whose command line holds ``word``."""
    return [pid for pid, _ in children(lambda cmdline: word in cmdline)]


@pytest.fixture
def no_processes(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"must not run {args[0]}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.mark.parametrize("bad", ["../../etc", "6.1.0-56/../../x", "6.1", "latest",
                                 "6.1.0-56-cloud-amd64/..", " 6.1.0-56;rm", ""])
def test_abi_and_env_are_validated(bad, monkeypatch, no_processes):
    # Before: the name went into the cache path and apt-get download ran.
    if bad:
        with pytest.raises(mvnb.GuestError, match="is not a Debian kernel ABI"):
            debian.debian_cloud(bad, progress=False)
    monkeypatch.setenv("MVNB_DEBIAN_KERNEL", bad or "/")
    with pytest.raises(mvnb.GuestError, match=r"MVNB_DEBIAN_KERNEL=.* is not a Debian"):
        debian.debian_cloud(progress=False)


def test_good_abis_pass(guest, monkeypatch, no_processes):
    assert debian.check_abi("6.1.0-56-cloud-amd64") == "6.1.0-56"
    monkeypatch.setenv("MVNB_DEBIAN_KERNEL", f"{guest.version}-cloud-amd64")
    assert debian.debian_cloud(progress=False) == guest  # cached: no apt at all


def test_no_sudo_when_lists_are_missing(tmp_path, monkeypatch, no_processes):
    # Before: `sudo -n apt-get update` ran on its own.
    monkeypatch.setattr(debian, "_APT_LISTS", tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(mvnb.GuestError, match=r"run `sudo apt-get update`"):
        debian._resolve_abi("cloud-amd64", update=True)


def test_stale_lists_warn_and_are_used(tmp_path, monkeypatch):
    lists = tmp_path / "lists"
    lists.mkdir()
    old = lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"
    old.write_text("")
    os.utime(old, (time.time() - 30 * 86400,) * 2)
    monkeypatch.setattr(debian, "_APT_LISTS", lists)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    ran = []
    real = subprocess.run

    def record(argv, *args, **kwargs):
        ran.append(list(argv))
        assert kwargs.get("timeout"), f"{argv} runs without a timeout"
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", record)
    with pytest.warns(RuntimeWarning, match="sudo apt-get update"):
        debian._resolve_abi("cloud-amd64", update=True)
    assert ran and all(argv[0] == "apt-cache" for argv in ran)


def test_apt_query_has_a_timeout():
    start = time.monotonic()
    with pytest.raises(mvnb.GuestError, match=r"did not finish within 0\.3 s"):
        debian._run(["sleep", "30"], timeout=0.3)
    assert time.monotonic() - start < 5 and not _children("sleep 30")


def test_download_stops_when_it_stalls(tmp_path):
    with pytest.raises(mvnb.GuestError, match=r"made no progress for 0\.8 s"):
        debian._watch(["sleep", "30"], tmp_path, lambda: 0, stall=0.8, timeout=60)
    assert not _children("sleep 30")
    growing = tmp_path / "grows"
    script = f"for i in 1 2 3 4 5 6; do echo x >> {growing}; sleep 0.3; done"
    done = debian._watch(["sh", "-c", script], tmp_path,
                         lambda: growing.stat().st_size if growing.exists() else 0,
                         stall=1.0, timeout=60)
    assert done.returncode == 0 and growing.read_text() == "x\n" * 6


def test_ctrl_c_kills_the_download(tmp_path):
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            debian._watch(["sleep", "31"], tmp_path, lambda: 0, stall=60, timeout=60)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 5 and not _children("sleep 31")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_ctrl_c_during_extraction_leaves_no_partial_file(tmp_path, monkeypatch):
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: mvnb-test\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: test\n")
    (root / "boot").mkdir()
    (root / "boot" / "vmlinuz-test").write_bytes(os.urandom(4 << 20))
    deb = tmp_path / "mvnb-test_1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(root), str(deb)], check=True,
                   capture_output=True, timeout=120)
    out = tmp_path / "out"
    out.mkdir()
    real_copy = shutil.copyfileobj

    def interrupted(src, dst, length=0):
        dst.write(src.read(1 << 20))
        raise KeyboardInterrupt

    monkeypatch.setattr(debian.shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        debian._extract(deb, {"./boot/vmlinuz-test"}, out, progress=False)
    assert list(out.iterdir()) == [] and not _children("dpkg-deb")
    monkeypatch.setattr(debian.shutil, "copyfileobj", real_copy)
    debian._extract(deb, {"./boot/vmlinuz-test"}, out, progress=False)
    assert (out / "vmlinuz-test").read_bytes() == (root / "boot" / "vmlinuz-test").read_bytes()
