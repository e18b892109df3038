"""The apic=verbose printout of Linux 6.1's calibrate_APIC_clock (arch/x86/kernel/apic/apic.c),
parsed from serial text recorded on QEMU microvm and pc (tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mvnb.timing import LinuxApicVerbose, linux_apic_verbose

DATA = Path(__file__).parent / "data"


def _text(name: str) -> str:
    return (DATA / name).read_text()


def test_microvm_printout():
    r = linux_apic_verbose(_text("apic_verbose_tcg_nostop.txt"))
    assert r.lapic_delta == r.delta == 6_244_807
    assert r.pm_delta == 0 and not r.pm_result_ok and r.pm_ms is None
    assert r.mult == 268_212_117 and r.calibration_result == 3_996_676
    assert r.cpu_clock == (2443, 1580) and r.bus_clock == (999, 676)
    assert r.per_tick("bus_clock", 250) == r.calibration_result  # 999 * 4000 + 676
    assert r.per_tick("cpu_clock", 250) == 2443 * 4000 + 1580
    assert r.delta_adjusted is None and not r.too_slow
    assert r.lines[0] == "calibrating APIC timer ..." and len(r.lines) == 8


def test_pc_printout_with_the_pm_timer_agreeing():
    r = linux_apic_verbose(_text("apic_verbose_pc_nostop.txt"))
    assert (r.lapic_delta, r.pm_delta, r.pm_result_ok) == (6_249_980, 357_951, True)
    assert r.delta == 6_249_980 and r.calibration_result == 3_999_987


def test_pc_printout_with_the_pm_timer_rescaling():
    """Under GDB the stops stretched the window; the kernel said so and rescaled."""
    r = linux_apic_verbose(_text("apic_verbose_pc.txt"))
    assert r.pm_ms == 120 and not r.pm_result_ok
    assert r.delta_adjusted == (r.delta, r.lapic_delta)
    assert r.tsc_adjusted is not None and r.tsc_adjusted[0] < r.tsc_adjusted[1]
    assert r.pm_delta == 432_319 and r.calibration_result == 3_999_278


def test_icount_printout():
    r = linux_apic_verbose(_text("apic_verbose_icount.txt"))
    assert r.calibration_result == 27_462_700 and r.pm_delta == 0


def test_timestamps_crlf_and_loglevel_prefixes_are_ignored():
    text = ("<6>[    1.5] calibrating APIC timer ...\r\n"
            "[    1.5] ... lapic delta = -12\r\n"
            "... PM-Timer delta = 5\r\n"
            "APIC frequency too slow, disabling apic timer\r\n")
    r = linux_apic_verbose(text)
    assert r.lapic_delta == -12 and r.pm_delta == 5 and r.too_slow
    assert r.calibration_result is None and r.per_tick("cpu_clock", 250) is None


def test_only_the_first_calibration_is_read():
    one = "calibrating APIC timer ...\n..... calibration result: 7\n"
    r = linux_apic_verbose(one + one.replace("7", "9"))
    assert r.calibration_result == 7


def test_verification_lines():
    r = linux_apic_verbose("... verify APIC timer\n... jiffies delta = 26\n"
                           "... jiffies result ok\n")
    assert r.jiffies_delta == 26 and r.verified and not r.verification_failed


def test_text_without_the_lines_says_what_to_do():
    with pytest.raises(ValueError, match="apic=verbose"):
        linux_apic_verbose("[    0.0] Linux version 6.1.0\n")
    assert isinstance(linux_apic_verbose("..... mult: 3\n"), LinuxApicVerbose)
