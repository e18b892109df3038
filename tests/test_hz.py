"""kernel_hz: CONFIG_HZ from a config file, the symbol file, or the running guest."""

from __future__ import annotations

import gzip
import shutil
import subprocess

import pytest

import mvnb
from mvnb.vm import hz

# kernel/configs.c (Linux 6.1): how a CONFIG_IKCONFIG kernel embeds its config.
IKCONFIG_ASM = """\
	.pushsection .rodata, "a"
	.ascii "IKCFG_ST"
	.global kernel_config_data
kernel_config_data:
	.incbin "config_data.gz"
	.global kernel_config_data_end
kernel_config_data_end:
	.ascii "IKCFG_ED"
	.popsection
	.text
	.globl _start
_start:
	ret
"""


def _own_kernel(tmp_path, guest, *, symbols=True):
    """Debian's files under a user's own names, with no config-* beside them."""
    (tmp_path / "bzImage").symlink_to(guest.kernel)
    if symbols:
        (tmp_path / "vmlinux").symlink_to(guest.symbols)
    return mvnb.Guest(kernel=tmp_path / "bzImage",
                      symbols=tmp_path / "vmlinux" if symbols else None)


def test_config_file_beside_debian_kernel(guest):
    assert hz.config_hz(guest) == 250
    assert mvnb.guests.kernel_hz(guest) == 250


def test_own_kernel_without_config_reads_initial_jiffies(tmp_path, guest):
    # Before: kernel_hz returned None here, and the CLI assumed 250.
    own = _own_kernel(tmp_path, guest)
    with pytest.raises(mvnb.GuestError, match="none beside"):
        hz.config_hz(own)
    assert hz.initial_jiffies_hz(own.symbols) == 250  # jiffies_64 = (u32)(-300 * 250)
    assert mvnb.guests.kernel_hz(own) == 250


def test_build_tree_config_is_read(tmp_path, guest):
    own = _own_kernel(tmp_path, guest, symbols=False)
    (tmp_path / ".config").write_text("CONFIG_HZ_1000=y\nCONFIG_HZ=1000\n")
    assert mvnb.guests.kernel_hz(own) == 1000


@pytest.mark.skipif(shutil.which("as") is None or shutil.which("ld") is None,
                    reason="needs binutils (as, ld) to build an ELF")
def test_embedded_config_is_read(tmp_path, guest):
    (tmp_path / "config_data.gz").write_bytes(gzip.compress(b"CONFIG_A=y\nCONFIG_HZ=300\n"))
    (tmp_path / "k.s").write_text(IKCONFIG_ASM)
    subprocess.run(["as", "-o", "k.o", "k.s"], cwd=tmp_path, check=True, timeout=30)
    subprocess.run(["ld", "-o", "vmlinux", "k.o"], cwd=tmp_path, check=True, timeout=30)
    (tmp_path / "bzImage").symlink_to(guest.kernel)
    own = mvnb.Guest(kernel=tmp_path / "bzImage", symbols=tmp_path / "vmlinux")
    assert hz.ikconfig_hz(own.symbols) == 300
    assert mvnb.guests.kernel_hz(own) == 300
    with pytest.raises(mvnb.GuestError, match="no CONFIG_IKCONFIG"):
        hz.ikconfig_hz(guest.symbols)  # Debian's cloud kernel does not embed its config


def test_nothing_known_says_what_to_pass(tmp_path, guest):
    own = _own_kernel(tmp_path, guest, symbols=False)
    with pytest.raises(mvnb.GuestError) as info:
        mvnb.guests.kernel_hz(own)
    text = str(info.value)
    assert "CONFIG_HZ of bzImage is unknown" in text and "hz=" in text
    assert "symbols=None" in text and "session=" in text


@pytest.mark.live
def test_running_guest_gives_tick_nsec(tmp_path, guest, calibrating):
    _, s = calibrating
    assert s.eval_many(["tick_nsec"]) == [4_000_000]
    assert hz.session_hz(s) == 250
    own = _own_kernel(tmp_path, guest, symbols=False)
    assert mvnb.guests.kernel_hz(own, session=s) == 250
