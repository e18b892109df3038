"""Linux 6.1's LAPIC timer calibration, run on samples taken at ``lapic_cal_handler``.

Mirrors ``calibrate_APIC_clock``, ``lapic_cal_handler`` and ``calibrate_by_pmtimer`` in
arch/x86/kernel/apic/apic.c (Linux 6.1).  The handler reads the APIC current count, the PM
timer and the TSC first, then ``switch (lapic_cal_loops++)``: it keeps the readings when
the value *before* the increment is 0 and when it is ``LAPIC_CAL_LOOPS`` (``HZ / 10``).
A breakpoint at the function's entry sees that same pre-increment value, so the rows
sampled with ``lapic_cal_loops == 0`` and ``== LAPIC_CAL_LOOPS`` are the kernel's
``lapic_cal_t1`` and ``lapic_cal_t2`` (for HZ=250: the 2nd and the 27th of 27 calls,
``lapic_cal_loops`` -1 … 25).  Guest clocks stand still while GDB holds the guest, so the
counts read at the stop are the counts the kernel read.
"""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mvnb.timing.counters import ACPI_PM_HZ

__all__ = ["APIC_DIVISOR", "ApicCheck", "LinuxApicCalibration", "linux_calibrate_apic"]

#: Linux programs the LAPIC timer to divide by 16 (``APIC_DIVISOR``).
APIC_DIVISOR = 16
#: The PM timer is 24 bits; ``lapic_cal_handler`` adds this when it wrapped once.
ACPI_PM_OVRRUN = 1 << 24
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1

Outcome = Literal["passed", "failed", "skipped", "not sampled"]

_CANDIDATES = {
    "ccr": ("ccr", "tapic", "current_count", "timer_ccr", "TIMER_CCR", "lapic", "tmcct"),
    "loops": ("loops", "lapic_cal_loops"),
    "tsc": ("tsc", "TSC"),
    "pm": ("pm", "pmtmr", "pm_timer", "acpi_pm"),
    "jiffies": ("jiffies",),
}


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _signed(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _hz2mult(hz: int, shift: int) -> int:
    """``clocksource_hz2mult`` (include/linux/clocksource.h)."""
    return (((10**9) << shift) + hz // 2) // hz & _U32


@dataclass(frozen=True)
class ApicCheck:
    """One of the kernel's checks: its outcome, the number it looked at, and why."""

    name: str
    outcome: Outcome
    value: Any
    explanation: str


@dataclass(frozen=True)
class LinuxApicCalibration:
    """What Linux's ``calibrate_APIC_clock`` concludes from the sampled handler calls.

    ``lapic_timer_period`` is bus clocks per jiffy (``delta * APIC_DIVISOR /
    LAPIC_CAL_LOOPS``); ``bus_hz`` is that times HZ.  ``pm``, ``too_slow`` and
    ``verification`` are the three checks; ``messages`` the kernel's printk lines.
    """

    hz: int
    lapic_cal_loops: int
    rows: tuple[Any, Any]
    t1: int
    t2: int
    delta: int
    delta_used: int
    lapic_timer_period: int
    bus_hz: int
    deltatsc: int | None
    cpu_hz: float | None
    pm_referenced: bool
    pm: ApicCheck
    too_slow: ApicCheck
    verification: ApicCheck
    timer_enabled: bool
    counts_per_tick: pd.Series = field(repr=False)
    messages: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def checks(self) -> pd.DataFrame:
        """The three checks as a table."""
        return pd.DataFrame(
            [
                (c.name, c.outcome, c.value, c.explanation)
                for c in (self.pm, self.too_slow, self.verification)
            ],
            columns=["check", "outcome", "value", "explanation"],
        ).set_index("check")

    def explain(self) -> str:
        """The conclusion in words."""
        lines = [
            f"LAPIC_CAL_LOOPS = HZ/10 = {self.lapic_cal_loops}; samples at lapic_cal_loops 0 "
            f"(row {self.rows[0]}) and {self.lapic_cal_loops} (row {self.rows[1]}): current "
            f"count {self.t1:,} → {self.t2:,}, delta {self.delta:,}.",
            f"lapic_timer_period = {self.delta_used:,} × {APIC_DIVISOR} / "
            f"{self.lapic_cal_loops} = {self.lapic_timer_period:,} bus clocks per jiffy, "
            f"i.e. a {self.bus_hz / 1e9:.4g} GHz bus ({self.bus_hz:,} Hz).",
        ]
        lines += [
            f"{c.name}: {c.outcome}. {c.explanation}"
            for c in (self.pm, self.too_slow, self.verification)
        ]
        lines.append("The APIC timer is " + ("enabled." if self.timer_enabled else "DISABLED."))
        lines += list(self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def _repr_html_(self) -> str:
        colour = {
            "passed": "#1b5e20",
            "failed": "#b00020",
            "skipped": "#555",
            "not sampled": "#a05a00",
        }
        head = (
            f"<p><b>lapic_timer_period = {self.lapic_timer_period:,}</b> "
            f"(bus {self.bus_hz / 1e6:,.3f} MHz, HZ={self.hz}); APIC timer "
            f"{'enabled' if self.timer_enabled else '<b>disabled</b>'}</p>"
        )
        rows = "".join(
            f"<tr><td>{html.escape(c.name)}</td>"
            f"<td style='color:{colour[c.outcome]}'>{c.outcome}</td>"
            f"<td>{html.escape(str(c.value))}</td>"
            f"<td style='text-align:left'>{html.escape(c.explanation)}</td></tr>"
            for c in (self.pm, self.too_slow, self.verification)
        )
        table = (
            "<table><tr><th>check</th><th>outcome</th><th>value</th><th>why</th></tr>"
            f"{rows}</table>"
        )
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        msgs = html.escape("\n".join(self.messages))
        return f"{head}{table}" + (f"<ul>{notes}</ul>" if notes else "") + f"<pre>{msgs}</pre>"


def _column(frame: pd.DataFrame, role: str, given: str | None, required: bool) -> str | None:
    if given is not None:
        if given not in frame.columns:
            raise KeyError(f"no column {given!r} for {role}; the frame has {list(frame.columns)}")
        return given
    for name in _CANDIDATES[role]:
        if name in frame.columns:
            return name
    if required:
        raise KeyError(
            f"no {role} column: name it with {role}= (looked for {', '.join(_CANDIDATES[role])})"
        )
    return None


def _rounds(loops: np.ndarray) -> list[np.ndarray]:
    """Row positions of each pass through the handler: a new pass starts when the
    counter drops (``lapic_cal_loops = -1`` again for the verification round)."""
    starts = [0, *(np.flatnonzero(np.diff(loops) < 0) + 1).tolist(), loops.size]
    return [np.arange(a, b) for a, b in itertools.pairwise(starts) if b > a]


def _pick(positions: np.ndarray, loops: np.ndarray, want: int, what: str) -> int:
    hit = positions[loops[positions] == want]
    if hit.size == 0:
        raise ValueError(
            f"no sample with lapic_cal_loops == {want} in the {what} round; the handler "
            f"keeps its readings at 0 and LAPIC_CAL_LOOPS, so sample every call from -1"
        )
    return int(hit[0])


def linux_calibrate_apic(
    frame: pd.DataFrame,
    hz: int,
    *,
    ccr: str | None = None,
    loops: str | None = None,
    tsc: str | None = None,
    pm: str | None = None,
    jiffies: str | None = None,
    global_clock_event: bool | None = None,
    first_loop: int = -1,
) -> LinuxApicCalibration:
    """Replay ``calibrate_APIC_clock`` (Linux 6.1, arch/x86/kernel/apic/apic.c) on samples.

    ``frame`` has one row per ``lapic_cal_handler`` call, sampled at entry: the LAPIC
    current count (``ccr``) and, where sampled, ``lapic_cal_loops`` (``loops``), the TSC,
    the ACPI PM timer (``pm``) and ``jiffies``; columns are found by their usual names.
    Without a loops column the rows are taken as consecutive calls from ``first_loop``.
    A second pass of the handler in the frame (``lapic_cal_loops`` back at -1) is the
    jiffies verification round.  ``global_clock_event`` says whether a tick device existed
    (it gates that round); None infers it from jiffies.
    """
    if hz < 10:
        raise ValueError(f"HZ must be at least 10 (LAPIC_CAL_LOOPS = HZ/10), not {hz}")
    L = hz // 10
    ccr_c = _column(frame, "ccr", ccr, True)
    loops_c = _column(frame, "loops", loops, False)
    tsc_c = _column(frame, "tsc", tsc, False)
    pm_c = _column(frame, "pm", pm, False)
    jif_c = _column(frame, "jiffies", jiffies, False)
    notes: list[str] = []

    if loops_c is not None:
        loop_v = frame[loops_c].to_numpy().astype(np.int64)
    else:
        loop_v = np.arange(first_loop, first_loop + len(frame), dtype=np.int64)
        notes.append(
            f"No lapic_cal_loops column: rows taken as consecutive calls from {first_loop}."
        )
    rounds = _rounds(loop_v)
    first = rounds[0]
    p1 = _pick(first, loop_v, 0, "calibration")
    p2 = _pick(first, loop_v, L, "calibration")
    ccr_v = frame[ccr_c].to_numpy()
    index = frame.index
    t1, t2 = int(ccr_v[p1]) & _U32, int(ccr_v[p2]) & _U32  # apic_read() is u32 → long
    messages = ["Using local APIC timer interrupts.", "calibrating APIC timer ..."]
    delta = t1 - t2
    messages.append(f"... lapic delta = {delta}")
    if delta < 0:
        notes.append(
            "The current count went up between the two samples: the timer was "
            "reloaded or reprogrammed, so the kernel's delta is negative."
        )

    deltatsc = None
    if tsc_c is not None:
        tv = frame[tsc_c].to_numpy()
        deltatsc = _signed(int(tv[p2]) - int(tv[p1]))

    # calibrate_by_pmtimer(); acpi_pm_read_early() reads 0 without a PM timer.
    pm_100ms = ACPI_PM_HZ // 10
    pm_thresh = pm_100ms // 100
    deltapm = 0
    if pm_c is not None:
        pv = frame[pm_c].to_numpy()
        pm1, pm2 = int(pv[p1]) & 0xFFFFFF, int(pv[p2]) & 0xFFFFFF
        if pm2 < pm1:
            pm2 += ACPI_PM_OVRRUN
        deltapm = pm2 - pm1
    messages.append(f"... PM-Timer delta = {deltapm}")
    delta_used = delta
    if deltapm == 0:
        pm_referenced = False
        why = (
            "no PM timer sampled"
            if pm_c is None
            else "the PM timer did not move (no ACPI PM timer: acpi_pm_read_early reads 0)"
        )
        pm_check = ApicCheck(
            "PM-timer ±1%",
            "skipped",
            0,
            f"{why}; calibrate_by_pmtimer returns -1 and the result rests "
            "on the tick that paced the loop.",
        )
    elif pm_100ms - pm_thresh < deltapm < pm_100ms + pm_thresh:
        pm_referenced = True
        messages.append("... PM-Timer result ok")
        pm_check = ApicCheck(
            "PM-timer ±1%",
            "passed",
            deltapm,
            f"PM delta {deltapm:,} is within {pm_100ms:,} ± {pm_thresh:,} "
            "counts (100 ms ± 1% at 3,579,545 Hz): the calibration window "
            "really was 100 ms.",
        )
    else:
        pm_referenced = True
        mult = _hz2mult(ACPI_PM_HZ, 22)
        ms = ((deltapm * mult) & _U64) >> 22
        ms //= 1000000
        messages.append(f"APIC calibration not consistent with PM-Timer: {ms}ms instead of 100ms")
        delta_used = ((delta & _U64) * pm_100ms & _U64) // deltapm
        messages.append(f"APIC delta adjusted to PM-Timer: {delta_used} ({delta})")
        delta_used = _signed(delta_used)
        if deltatsc is not None:
            adj = ((deltatsc & _U64) * pm_100ms & _U64) // deltapm
            messages.append(f"TSC delta adjusted to PM-Timer: {adj} ({deltatsc})")
            deltatsc = _signed(adj)
        pm_check = ApicCheck(
            "PM-timer ±1%",
            "failed",
            deltapm,
            f"PM delta {deltapm:,} is outside {pm_100ms:,} ± {pm_thresh:,}: "
            f"the window was {ms} ms, not 100 ms. The kernel warns and "
            f"rescales the LAPIC delta to {delta_used:,} (and the TSC delta).",
        )

    period = _cdiv(delta_used * APIC_DIVISOR, L) & _U32
    tick_nsec = (10**9 + hz // 2) // hz
    mult = (((period // APIC_DIVISOR) << 32) // tick_nsec) & _U32
    per_mhz = 1000000 // hz
    messages += [
        f"..... delta {delta_used}",
        f"..... mult: {mult}",
        f"..... calibration result: {period}",
    ]
    cpu_hz = None
    if deltatsc is not None:
        per_loop = _cdiv(deltatsc, L)
        whole = _cdiv(per_loop, per_mhz)
        messages.append(f"..... CPU clock speed is {whole}.{per_loop - whole * per_mhz:04d} MHz.")
        cpu_hz = deltatsc / L * hz
    messages.append(
        f"..... host bus clock speed is {period // per_mhz}.{period % per_mhz:04d} MHz."
    )

    slow = period < per_mhz
    too_slow = ApicCheck(
        "APIC frequency too slow",
        "failed" if slow else "passed",
        period,
        f"lapic_timer_period {period:,} {'<' if slow else '≥'} 1,000,000/HZ = {per_mhz:,} "
        "(a bus under 1 MHz)" + (": the kernel disables the APIC timer." if slow else "."),
    )
    if slow:
        messages.append("APIC frequency too slow, disabling apic timer")

    ccr_round = pd.Series(ccr_v[first].astype(np.int64), index=index[first])
    counts_per_tick = (-ccr_round.diff()).iloc[1:].rename("counts per tick")
    if len(counts_per_tick):
        mean = float(counts_per_tick.mean())
        notes.append(
            f"Successive calls were {mean:,.0f} LAPIC counts apart on average (spread "
            f"{float(counts_per_tick.std(ddof=0)):,.0f}); at divide-by-{APIC_DIVISOR} and "
            f"HZ={hz} that is a {mean * APIC_DIVISOR * hz / 1e9:.3g} GHz bus."
        )

    j_advanced = None
    if jif_c is not None:
        jv = frame[jif_c].to_numpy().astype(np.int64)
        j_advanced = int(jv[first[-1]] - jv[first[0]])
        if j_advanced == 0:
            notes.append(
                "jiffies did not advance during the calibration loop: no tick "
                "interrupt arrived, so the loop was paced by the TSC (tsc_khz known), "
                "and there is no global clock event device for the verification."
            )

    if slow:
        verification = ApicCheck(
            "jiffies ±2 verification",
            "skipped",
            None,
            "not reached: the timer was already disabled as too slow.",
        )
    elif pm_referenced:
        verification = ApicCheck(
            "jiffies ±2 verification",
            "skipped",
            None,
            "the PM timer referenced the result, so the kernel does not verify against jiffies.",
        )
    else:
        gce = global_clock_event
        if gce is None and len(rounds) < 2 and j_advanced == 0:
            gce = False
        if gce is False:
            verification = ApicCheck(
                "jiffies ±2 verification",
                "skipped",
                None,
                "no global clock event device (no tick to count "
                "jiffies with), so the kernel skips the verification.",
            )
        elif len(rounds) < 2 or jif_c is None:
            verification = ApicCheck(
                "jiffies ±2 verification",
                "not sampled",
                None,
                "the kernel runs the LAPIC timer for LAPIC_CAL_LOOPS "
                "interrupts and compares jiffies; the frame has no "
                "second round of handler calls with jiffies.",
            )
        else:
            second = rounds[1]
            q1 = _pick(second, loop_v, 0, "verification")
            q2 = _pick(second, loop_v, L, "verification")
            jv = frame[jif_c].to_numpy().astype(np.int64)
            deltaj = int(jv[q2] - jv[q1]) & _U64
            ok = L - 2 <= deltaj <= L + 2
            messages += ["... verify APIC timer", f"... jiffies delta = {deltaj}"]
            messages.append(
                "... jiffies result ok" if ok else "APIC timer disabled due to verification failure"
            )
            verification = ApicCheck(
                "jiffies ±2 verification",
                "passed" if ok else "failed",
                deltaj,
                f"jiffies advanced {deltaj} while the LAPIC timer fired {L} times; the "
                f"kernel accepts {L - 2} … {L + 2}"
                + (
                    ". "
                    if ok
                    else ": the LAPIC timer and the tick disagree, so the kernel "
                    "disables the APIC timer."
                ),
            )

    return LinuxApicCalibration(
        hz=hz,
        lapic_cal_loops=L,
        rows=(index[p1], index[p2]),
        t1=t1,
        t2=t2,
        delta=delta,
        delta_used=delta_used,
        lapic_timer_period=period,
        bus_hz=period * hz,
        deltatsc=deltatsc,
        cpu_hz=cpu_hz,
        pm_referenced=pm_referenced,
        pm=pm_check,
        too_slow=too_slow,
        verification=verification,
        timer_enabled=not slow and verification.outcome != "failed",
        counts_per_tick=counts_per_tick,
        messages=tuple(messages),
        notes=tuple(notes),
    )
