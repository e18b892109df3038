"""The checks Linux 6.1's ``calibrate_APIC_clock`` makes after measuring: the PM-timer
cross-check (``calibrate_by_pmtimer``) and the jiffies verification round
(arch/x86/kernel/apic/apic.c). A check whose input was not observed says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mvnb.timing.counters import ACPI_PM_HZ
from mvnb.timing.linux_types import U64, ApicCheck, hz2mult, pick, signed

__all__ = ["PM_HINT", "pm_check", "verification"]

PM_HINT = ("sample mvnb.x86.PM_TIMER at lapic_cal_handler, or read lapic_cal_pm1 and "
           "lapic_cal_pm2 with after= and pass them as kernel_values")


def pm_check(deltapm: int | None, delta: int, deltatsc: int | None, source: str
              ) -> tuple[ApicCheck, bool | None, int, int | None, list[str]]:
    """``calibrate_by_pmtimer``: the check, whether it referenced the result, the delta
    and TSC delta it leaves, and its printk lines."""
    pm_100ms = ACPI_PM_HZ // 10
    pm_thresh = pm_100ms // 100
    name = "PM-timer ±1%"
    if deltapm is None:
        return (ApicCheck(name, "not observed", None,
                          f"the PM timer was not observed: {PM_HINT}. On a machine without "
                          "one (QEMU's microvm) the kernel reads 0 and skips the check; "
                          "otherwise it may rescale the delta."),
                None, delta, deltatsc, ["... PM-Timer delta = (not observed)"])
    messages = [f"... PM-Timer delta = {deltapm}"]
    if deltapm == 0:
        why = ("QEMU's microvm has no ACPI PM timer (acpi_pm_read_early reads 0)"
               if source == "machine" else "the PM timer did not move (no ACPI PM timer: "
               "acpi_pm_read_early reads 0)")
        return (ApicCheck(name, "skipped", 0, f"{why}; calibrate_by_pmtimer returns -1 and "
                          "the result rests on the tick that paced the loop."),
                False, delta, deltatsc, messages)
    if pm_100ms - pm_thresh < deltapm < pm_100ms + pm_thresh:
        messages.append("... PM-Timer result ok")
        return (ApicCheck(name, "passed", deltapm,
                          f"PM delta {deltapm:,} is within {pm_100ms:,} ± {pm_thresh:,} "
                          "counts (100 ms ± 1% at 3,579,545 Hz): the calibration window "
                          "really was 100 ms."),
                True, delta, deltatsc, messages)
    mult = hz2mult(ACPI_PM_HZ, 22)
    ms = (((deltapm * mult) & U64) >> 22) // 1000000
    messages.append(f"APIC calibration not consistent with PM-Timer: {ms}ms instead of 100ms")
    used = ((delta & U64) * pm_100ms & U64) // deltapm
    messages.append(f"APIC delta adjusted to PM-Timer: {used} ({delta})")
    if deltatsc is not None:
        adj = ((deltatsc & U64) * pm_100ms & U64) // deltapm
        messages.append(f"TSC delta adjusted to PM-Timer: {adj} ({deltatsc})")
        deltatsc = signed(adj)
    used = signed(used)
    return (ApicCheck(name, "failed", deltapm,
                      f"PM delta {deltapm:,} is outside {pm_100ms:,} ± {pm_thresh:,}: the "
                      f"window was {ms} ms, not 100 ms. The kernel warns and rescales the "
                      f"LAPIC delta to {used:,} (and the TSC delta)."),
            True, used, deltatsc, messages)


def verification(slow: bool, pm_referenced: bool | None, gce: bool | None,
                  rounds: list[np.ndarray], j_advanced: int | None, jif_c: str | None,
                  frame: pd.DataFrame, loop_v: np.ndarray, L: int
                  ) -> tuple[ApicCheck, list[str]]:
    """The jiffies ±2 verification (only without a PM reference and with a tick device)."""
    name = "jiffies ±2 verification"
    if slow:
        return ApicCheck(name, "skipped", None,
                         "not reached: the timer was already disabled as too slow."), []
    if gce is None and len(rounds) < 2 and j_advanced == 0:
        gce = False
    if gce is False:
        return ApicCheck(name, "skipped", None,
                         "no global clock event device (no tick to count jiffies with), so "
                         "the kernel skips the verification."), []
    if pm_referenced:
        return ApicCheck(name, "skipped", None, "the PM timer referenced the result, so the "
                         "kernel does not verify against jiffies."), []
    if pm_referenced is None:
        return ApicCheck(name, "not observed", None,
                         "the kernel verifies only when the PM timer did not reference the "
                         f"result, which was not observed ({PM_HINT})."), []
    if len(rounds) < 2 or jif_c is None:
        return ApicCheck(name, "not observed", None,
                         "the kernel runs the LAPIC timer for LAPIC_CAL_LOOPS interrupts and "
                         "compares jiffies; the frame has no second round of handler calls "
                         "with jiffies (sample 'jiffies' at lapic_cal_handler past the first "
                         "round)."), []
    second = rounds[1]
    q1 = pick(second, loop_v, 0, "verification")
    q2 = pick(second, loop_v, L, "verification")
    jv = frame[jif_c].to_numpy().astype(np.int64)
    deltaj = int(jv[q2] - jv[q1]) & U64
    ok = L - 2 <= deltaj <= L + 2
    messages = ["... verify APIC timer", f"... jiffies delta = {deltaj}",
                "... jiffies result ok" if ok else
                "APIC timer disabled due to verification failure"]
    return ApicCheck(
        name, "passed" if ok else "failed", deltaj,
        f"jiffies advanced {deltaj} while the LAPIC timer fired {L} times; the kernel "
        f"accepts {L - 2} … {L + 2}" + (". " if ok else ": the LAPIC timer and the tick "
                                         "disagree, so the kernel disables the APIC timer.")
    ), messages
