"""Guest kernels: user files, the Debian cache, build checks (no QEMU)."""

from __future__ import annotations

import subprocess
import time

import pytest

import mvnb
from mvnb import cache, guests
from mvnb.vm import elf
from mvnb.vm.boot import host_tsc_khz


def test_missing_kernel_says_what_to_pass(tmp_path):
    with pytest.raises(mvnb.GuestError, match="does not exist; pass the path"):
        mvnb.Guest(kernel=tmp_path / "kernel")


def test_non_elf_symbols_are_refused(tmp_path):
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"x")
    symbols = tmp_path / "kernel.debug"
    symbols.write_bytes(b"MZ not an elf")
    with pytest.raises(mvnb.GuestError, match="not an ELF file"):
        mvnb.Guest(kernel=kernel, symbols=symbols)
    with pytest.raises(mvnb.GuestError, match="does not exist"):
        mvnb.Guest(kernel=kernel, symbols=tmp_path / "missing")


def test_user_files_and_cmdline(tmp_path):
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"x")
    symbols = tmp_path / "kernel.debug"
    symbols.write_bytes(b"\x7fELF\x02\x01rest")
    g = mvnb.Guest(kernel=str(kernel), symbols=str(symbols), cmdline="console=ttyS0 boot_verbose")
    assert g.kernel == kernel and g.symbols == symbols and g.name == "kernel"
    assert g.full_cmdline == "console=ttyS0 boot_verbose"
    g2 = mvnb.Guest(kernel=kernel, cmdline="console=ttyS0", nokaslr=True)
    assert g2.full_cmdline == "console=ttyS0 nokaslr"
    assert mvnb.Guest(kernel=kernel, cmdline="nokaslr", nokaslr=True).full_cmdline == "nokaslr"


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "mvnb"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / ".cache" / "mvnb"


def test_debian_cloud_is_cached_and_checked(monkeypatch):
    guest = guests.debian_cloud(progress=False)  # the install step fetched it
    assert guest.nokaslr and "nokaslr" in guest.full_cmdline
    assert guest.kernel.name.startswith("vmlinuz-") and guest.symbols.name.startswith("vmlinux-")

    def no_apt(*args, **kwargs):
        raise AssertionError(f"a cached guest must not run {args[0]}")

    monkeypatch.setattr(subprocess, "run", no_apt)
    start = time.perf_counter()
    again = guests.debian_cloud(progress=False)
    assert again == guest
    assert time.perf_counter() - start < 0.5
    banner = elf.linux_banner(guest.symbols)
    image = elf.bzimage_version(guest.kernel)
    assert banner.startswith(f"Linux version {image.split()[0]} ")
    assert guests.kernel_hz(guest) in (100, 250, 300, 1000)


def test_mismatched_builds_are_refused(tmp_path):
    guest = guests.debian_cloud(progress=False)
    kernel = tmp_path / "vmlinuz"
    data = bytearray(guest.kernel.read_bytes()[:0x10000])
    version_at = data.index(elf.bzimage_version(guest.kernel).encode())
    data[version_at] = ord("9")  # another release
    kernel.write_bytes(bytes(data))
    with pytest.raises(mvnb.GuestError, match="different builds"):
        elf.check_same_build(kernel, guest.symbols)


def test_not_a_bzimage(tmp_path):
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"\0" * 0x1000)
    with pytest.raises(mvnb.GuestError, match="not a Linux bzImage"):
        elf.bzimage_version(kernel)


def test_host_tsc_khz_reads_cpuinfo():
    text = "processor\t: 0\ncpu MHz\t\t: 2596.128\nflags\t\t: fpu tsc constant_tsc tsc_known_freq\n"
    assert host_tsc_khz(text) == 2596128
    assert host_tsc_khz(text.replace(" tsc_known_freq", "")) == 2596128  # cpu_khz, noted
    assert host_tsc_khz(text.replace(" tsc_known_freq", " aperfmperf")) is None  # effective
    assert host_tsc_khz("processor: 0\n") is None


def test_flavours_are_checked():
    with pytest.raises(ValueError, match="flavour must be one of cloud-amd64, amd64, rt-amd64"):
        guests.debian(flavour="arm64")
    assert guests.debian_cloud(progress=False) == guests.debian("cloud-amd64", progress=False)


def test_generic_kernel_is_cached_and_checked(generic, monkeypatch):
    def no_apt(*args, **kwargs):
        raise AssertionError(f"a cached guest must not run {args[0]}")

    monkeypatch.setattr(subprocess, "run", no_apt)
    again = guests.debian(flavour="amd64", progress=False)
    assert again == generic and again.nokaslr
    assert again.name.startswith("debian-") and "cloud" not in again.name
    image = elf.bzimage_version(generic.kernel)
    assert image.split()[0].endswith("-amd64") and "cloud" not in image
    assert elf.linux_banner(generic.symbols).startswith(f"Linux version {image.split()[0]} ")
    assert generic.symbols.parent != guests.debian_cloud(progress=False).symbols.parent


def test_elf_kernels_are_compared_by_build_id(generic):
    from mvnb.vm.build import check_build

    cloud = guests.debian_cloud(progress=False)
    same = mvnb.Guest(kernel=generic.symbols, symbols=generic.symbols)
    assert check_build(same).startswith("Linux version")
    other = mvnb.Guest(kernel=cloud.symbols, symbols=generic.symbols)
    with pytest.raises(mvnb.GuestError, match="build-ids differ") as info:
        check_build(other)
    text = str(info.value)
    assert elf.linux_banner(cloud.symbols) in text and elf.linux_banner(generic.symbols) in text
    assert "symbols=None" in text  # how to boot it anyway


def test_unknown_kernel_formats_warn(tmp_path):
    from mvnb.vm.build import check_build

    kernel = tmp_path / "kernel.bin"
    kernel.write_bytes(b"\0" * 4096)
    symbols = tmp_path / "kernel.debug"
    symbols.write_bytes(b"\x7fELF\x02\x01rest")
    with pytest.warns(RuntimeWarning, match="cannot check"):
        assert check_build(mvnb.Guest(kernel=kernel, symbols=symbols)) is None
