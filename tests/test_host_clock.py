"""The host TSC rate boot_to passes as tsc_early_khz: value, source, and how far to trust it."""

from __future__ import annotations

import importlib.util
import os
import re
import struct
from pathlib import Path

import pandas as pd
import pytest

from mvnb.vm.boot import fallback_note
from mvnb.vm.host_clock import HostTsc, host_tsc

CPUINFO = ("processor\t: 0\ncpu MHz\t\t: 2596.128\n"
           "flags\t\t: fpu tsc constant_tsc tsc_known_freq hypervisor\n\nprocessor\t: 1\n")
ROOT = Path(__file__).parents[1]


def cpuid_of(leaves):
    return lambda leaf: leaves.get(leaf)


def test_cpuid_leaf_15_is_exact_and_first():
    # Intel with crystal: 24 MHz x 216 / 2 = 2592 MHz (SDM Vol. 2A, CPUID leaf 15H)
    cpuid = cpuid_of({0: (0x16, 0, 0, 0), 0x15: (2, 216, 24_000_000, 0), 0x16: (2600, 0, 0, 0)})
    found = host_tsc(cpuid=cpuid, kernel_log=["tsc: Detected 2596.000 MHz processor"],
                     cpuinfo=CPUINFO)
    assert found == HostTsc(2_592_000, "CPUID leaf 0x15", found.note) and "exact" in found.note


def test_leaf_15_beyond_the_max_leaf_is_not_read():
    cpuid = cpuid_of({0: (0xD, 0, 0, 0), 0x15: (2, 216, 24_000_000, 0)})
    assert host_tsc(cpuid=cpuid, kernel_log=[], cpuinfo="") is None


def test_hypervisor_timing_leaf():
    cpuid = cpuid_of({0: (0xD, 0, 0, 0), 1: (0, 0, 1 << 31, 0),
                      0x40000000: (0x40000010, 0, 0, 0), 0x40000010: (2_445_428, 1_000_000, 0, 0)})
    found = host_tsc(cpuid=cpuid, kernel_log=[], cpuinfo=CPUINFO)
    assert found.khz == 2_445_428 and found.source == "CPUID leaf 0x40000010"
    no_bit = cpuid_of({0: (0xD, 0, 0, 0), 1: (0, 0, 0, 0), 0x40000000: (0x40000010, 0, 0, 0),
                       0x40000010: (1, 0, 0, 0)})
    assert host_tsc(cpuid=no_bit, kernel_log=[], cpuinfo="") is None


def test_kernel_log_refined_beats_detected():
    log = ["tsc: Detected 2596.001 MHz processor",
           "tsc: Refined TSC clocksource calibration: 2595.987 MHz"]
    found = host_tsc(cpuid=lambda leaf: None, kernel_log=log, cpuinfo=CPUINFO)
    assert found.khz == 2_595_987 and "Refined" in found.source
    assert "calibration against HPET" in found.note
    detected = host_tsc(cpuid=lambda leaf: None, kernel_log=log[:1],
                        cpuinfo=CPUINFO.replace(" tsc_known_freq", ""))
    assert detected.khz == 2_596_001 and "few hundred ppm" in detected.note
    tsc_line = host_tsc(cpuid=lambda leaf: None, cpuinfo=CPUINFO,
                        kernel_log=[*log[:1], "tsc: Detected 2500.000 MHz TSC"])
    assert tsc_line.khz == 2_500_000  # printed when tsc_khz differs from cpu_khz


def test_cpuinfo_is_the_effective_clock_with_aperfmperf():
    plain = host_tsc(cpuid=lambda leaf: None, kernel_log=[], cpuinfo=CPUINFO)
    assert plain.khz == 2_596_128 and plain.source == '/proc/cpuinfo "cpu MHz"'
    assert "no exact TSC rate" in plain.note
    busy = CPUINFO.replace(" hypervisor", " aperfmperf")
    assert host_tsc(cpuid=lambda leaf: None, kernel_log=[], cpuinfo=busy) is None
    base = cpuid_of({0: (0x16, 0, 0, 0), 0x16: (2600, 3500, 100, 0)})
    nominal = host_tsc(cpuid=base, kernel_log=[], cpuinfo=busy)
    assert nominal.khz == 2_600_000 and "not exactly" in nominal.note


def test_boot_to_warning_names_the_source():
    # Before: "booting again with tsc_early_khz=2596128 (the host's TSC)", no source.
    found = host_tsc(cpuid=lambda leaf: None, kernel_log=[], cpuinfo=CPUINFO)
    note = fallback_note(found)
    assert note.startswith("tsc_early_khz=2596128: the host's TSC rate from /proc/cpuinfo")
    assert "no exact TSC rate" in note
    assert "unknown" in fallback_note(None)


def test_this_host():
    """On this machine: whatever source is found can be checked against what it read."""
    found = host_tsc()
    if found is None:
        pytest.skip("this host offers no TSC rate")
    assert 100_000 < found.khz < 10_000_000 and found.note
    if found.source.startswith("host kernel log"):
        mhz = re.search(r"(\d+\.\d+) MHz", found.source).group(1)
        assert round(float(mhz) * 1000) == found.khz
    if found.source == "CPUID leaf 0x15":
        with open("/dev/cpu/0/cpuid", "rb") as f:
            assert struct.unpack("<4I", os.pread(f.fileno(), 16, 0))[0] >= 0x15


def test_recorded_sets_name_the_fallback():
    spec = importlib.util.spec_from_file_location("record", ROOT / "data" / "record.py")
    record = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(record)
    frame = pd.DataFrame({"loops": [0]})
    frame.attrs = {"location": "lapic_cal_handler", "columns": {"loops": "lapic_cal_loops"},
                   "method": "mi", "host_tsc": {"khz": 2596128, "source": "CPUID leaf 0x15",
                                                "note": "exact"},
                   "provenance": {"cmdline": "console=ttyS0 tsc_early_khz=2596128 nokaslr"}}
    line = record.readme_line("x", "lapic_cal_handler hits, free-running TCG", frame)
    assert "free-running" not in line and "tsc_early_khz=2596128" in line
    assert "from CPUID leaf 0x15: exact" in line
    frame.attrs["provenance"]["cmdline"] = "console=ttyS0 nokaslr"
    assert "free-running TCG" in record.readme_line("x", "hits, free-running TCG", frame)
    readme = (ROOT / "data" / "README.md").read_text()
    for line in readme.splitlines():
        if re.search(r"tsc_early_khz=\d", line):  # a set booted with the fallback
            assert "free-running" not in line and "cpu MHz" in line
