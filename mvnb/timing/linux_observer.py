"""How far a replay of Linux's LAPIC calibration from sampled readings may be from the
kernel's own numbers, given what a stop costs the guest's clocks (``frame.attrs
["observer"]``, measured by :func:`mvnb.x86.measure_observer`).

The kernel reads each count after the stop's resume (and after the probes of that row), so
each reading the replay rests on may be up to one row's worst measured stop early. What is
common to both readings cancels in the delta; what is left is their difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mvnb.timing.linux_types import APIC_DIVISOR

__all__ = ["expected_diffs", "observer_notes", "tick_jitter", "worst_stop"]


def worst_stop(observer: Mapping[str, Any] | None, clock: str) -> int | None:
    """The most one row's stop moved ``clock`` ("lapic" or "tsc") before the guest's own
    next read: the worst stop measured, plus the worst probe for each probe step a row
    makes after its reading (the sampler reads non-stepping sources first)."""
    if not observer:
        return None
    samples = observer.get("samples", {})
    stop = samples.get(f"{clock}_per_stop")
    probe = samples.get("lapic_per_probe" if clock == "lapic" else "tsc_per_read")
    steps = int(observer.get("probe_steps_per_row", 0))
    if not stop or (steps and not probe):
        return None
    # Measured at the last hit, the measurement itself came between that row and the
    # guest's next read there (the kernel's t2, for a run that ended at loop 25).
    at_last_stop = str(observer.get("at", "")).startswith("the end of the run, at")
    extra = int(observer.get(f"moved_{clock}") or 0) if at_last_stop else 0
    return int(max(stop)) + steps * (int(max(probe)) if probe else 0) + extra


def tick_jitter(counts_per_tick: pd.Series) -> int | None:
    """How far the stops strayed from a steady tick: the largest deviation of the LAPIC
    counts between successive rows from their median. The calibration loop is paced by
    the guest's own TSC (or jiffies), so a steady tick is what the kernel saw; what is
    left is the observer: how late each stop froze the clocks after the hit."""
    values = counts_per_tick.dropna().to_numpy(dtype=float)
    if values.size < 3:
        return None
    return int(np.max(np.abs(values - np.median(values))))


def expected_diffs(sources: Mapping[str, str], observer: Mapping[str, Any] | None, delta: int,
                   delta_used: int, deltapm: int | None, deltatsc: int | None,
                   pm_referenced: bool | None, hz: int,
                   jitter: int | None = None) -> dict[str, int | None]:
    """Per quantity, how far the replay may differ from the kernel's own: 0 where both
    rest on the kernel's values, else what the worst measured stop predicts, or the run's
    own tick jitter where that is larger (the same host, at the same moments)."""
    exact = {"kernel", "machine"}
    L = hz // 10
    worst = worst_stop(observer, "lapic")
    if worst is not None and jitter is not None:
        worst = max(worst, jitter)
    lapic = 0 if sources.get("t") in exact else worst
    pm_err: int | None = 0
    if sources.get("pm") == "sampled":
        pm_err = None if lapic is None or not delta else -(-lapic * (deltapm or 0) // abs(delta))
    rescaled = bool(pm_referenced) and deltapm is not None and delta_used != delta
    if lapic is None or pm_err is None:
        used = None
    elif rescaled and deltapm:
        rel = lapic / max(abs(delta), 1) + pm_err / deltapm
        used = int(abs(delta_used) * rel) + (1 if rel else 0)
    else:
        used = lapic
    period = None if used is None else -(-used * APIC_DIVISOR // L) + (1 if used else 0)
    tsc: int | None = 0 if sources.get("tsc") in exact else worst_stop(observer, "tsc")
    if tsc is not None and deltatsc is not None and rescaled and deltapm and used:
        tsc = int(abs(deltatsc) * (tsc / max(abs(deltatsc), 1) + (pm_err or 0) / deltapm)) + 1
    tick = None if tsc is None else -(-tsc // L) + (1 if tsc else 0)
    mult = None
    if period is not None:
        tick_nsec = (10**9 + hz // 2) // hz  # mult = (period / 16 << 32) / TICK_NSEC
        mult = 0 if period == 0 else -(-period * (1 << 32) // (APIC_DIVISOR * tick_nsec)) + 1
    return {"lapic delta": lapic, "PM-Timer delta": pm_err, "delta": used, "mult": mult,
            "calibration result": period, "TSC per tick": tick}


def observer_notes(observer: Mapping[str, Any] | None, sources: Mapping[str, str],
                   expected: Mapping[str, int | None], gaps: Mapping[str, int],
                   period: int, kv: Mapping[str, Any], frame: pd.DataFrame,
                   jitter: int | None = None) -> list[str]:
    notes = []
    if sources.get("t") == "kernel":
        notes.append("The LAPIC readings are the kernel's own (lapic_cal_t1/t2): the replay "
                     "gives the kernel's numbers exactly.")
        if "lapic t1" in gaps:
            notes.append(
                f"The kernel read the LAPIC {gaps['lapic t1']:,} counts after the sampler at "
                f"loop 0 and {gaps['lapic t2']:,} counts after it at loop "
                "LAPIC_CAL_LOOPS: what the stop's resume (and the probes of that row) cost.")
    elif not kv and "lapic_cal_t1" in (frame.attrs.get("after") or {}):
        notes.append("frame.attrs['after'] holds the kernel's own lapic_cal_* values; pass "
                     "kernel_values=frame.attrs['after'] to replay them exactly.")
    if sources.get("t") != "sampled":
        return notes
    samples = (observer or {}).get("samples", {})
    stop = samples.get("lapic_per_stop")
    bound = expected.get("calibration result")
    if not stop or bound is None:
        notes.append("The observer effect was not measured (no attrs['observer'] with LAPIC "
                     "figures): the kernel reads each count after the stop's resume, so the "
                     "replay from these readings can differ from the kernel's own by what a "
                     "stop costs; sample with a LAPIC or TSC column to measure it, or read "
                     "the kernel's values with after= (mvnb.timing.LINUX_APIC_CAL_VARIABLES).")
        return notes
    probe = samples.get("lapic_per_probe") or []
    steps = int((observer or {}).get("probe_steps_per_row", 0))
    per_probe = (f"; one probe (rdtsc) ~{int(np.median(probe)):,} (max {max(probe):,}), and "
                 f"each row makes {steps} probe step(s) after its LAPIC read"
                 if probe and steps else "")
    ppm = bound / period * 1e6 if period else float("nan")
    spread = int(np.percentile(stop, 90) - np.percentile(stop, 10))
    notes.append(
        f"Observer effect (measured at {observer.get('at', '?') if observer else '?'}): each "
        f"stop moved the LAPIC by ~{int(np.median(stop)):,} counts (10-90% of {len(stop)} "
        f"stops within {spread:,} of each other, the worst {max(stop):,}){per_probe}. The "
        f"kernel reads t1 and t2 after the stop's resume, up to {expected['lapic delta']:,} "
        "counts after the sampler did; the parts common to both cancel in the delta, so "
        f"expect the replay to differ from the kernel's own by about ±{spread:,} counts in "
        f"the delta, and by at most ±{expected['lapic delta']:,} (±{bound:,} in the "
        f"calibration result, ±{ppm:,.0f} ppm). A resume that waits for a busy host to "
        "schedule QEMU can cost milliseconds on its own"
        + (f"; the rows themselves strayed up to {jitter:,} counts from a steady tick, which "
           "the bound takes when it is the larger." if jitter else "."))
    if str((observer or {}).get("at", "")).startswith("the end of the run, at"):
        notes.append(
            f"The measurement ran at the run's last stop and moved the LAPIC by "
            f"{(observer or {}).get('moved_lapic') or 0:,} counts before the guest read it "
            "again; that is in the bound above. Read the kernel's values with after= to "
            "measure past the calibration instead.")
    return notes
