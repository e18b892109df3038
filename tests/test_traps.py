"""Which guests get which guards (no QEMU needed)."""

from __future__ import annotations

import dataclasses

import mvnb
from mvnb.vm.traps import TSC_CALIBRATION, known_traps


def _guest(tmp_path, name: str, cmdline: str = "console=ttyS0") -> mvnb.Guest:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"x")
    return mvnb.Guest(kernel=kernel, name=name, cmdline=cmdline)


def test_debian_61_on_microvm_gets_the_tsc_guard(tmp_path):
    debian = _guest(tmp_path, "debian-cloud-6.1.0-57-cloud-amd64")
    assert known_traps(debian, "microvm") == (TSC_CALIBRATION,)
    assert known_traps(debian, "microvm,pit=on") == (TSC_CALIBRATION,)
    assert known_traps(_guest(tmp_path, "debian-6.1.0-57-amd64"), "microvm") == (TSC_CALIBRATION,)
    assert known_traps(debian, "pc") == ()
    assert known_traps(_guest(tmp_path, "my-kernel"), "microvm") == ()
    skipped = dataclasses.replace(debian, cmdline="console=ttyS0 tsc_early_khz=2445428")
    assert known_traps(skipped, "microvm") == ()


def test_the_guard_names_the_cause_and_the_remedy():
    text = TSC_CALIBRATION.message()
    assert "calibrate_delay_converge" in text and "Unable to calibrate against PIT" in text
    assert "mvnb.boot_to" in text and "tsc_early_khz=" in text
