"""Linux 6.1's LAPIC timer calibration, replayed on samples taken at ``lapic_cal_handler``
or on the values the kernel itself kept.

Mirrors ``calibrate_APIC_clock``, ``lapic_cal_handler`` and ``calibrate_by_pmtimer`` in
arch/x86/kernel/apic/apic.c (Linux 6.1). The handler reads the APIC current count, the PM
timer and the TSC first, then ``switch (lapic_cal_loops++)``: it keeps the readings in
``lapic_cal_t1``/``_tsc1``/``_pm1``/``_j1`` when the value *before* the increment is 0 and
in ``..._t2``/``_tsc2``/``_pm2``/``_j2`` when it is ``LAPIC_CAL_LOOPS`` (``HZ / 10``). A
breakpoint at the function's entry sees that same pre-increment value, so the rows with
``lapic_cal_loops == 0`` and ``== LAPIC_CAL_LOOPS`` are the calls whose readings count
(for HZ=250: the 2nd and the 27th of 27 calls, ``lapic_cal_loops`` -1 … 25).

Two sources for those readings, and what each is worth:

- ``kernel_values``: the kernel's own ``lapic_cal_*`` variables, read once the calibration
  is over (``s.sample(..., after=LINUX_APIC_CAL_VARIABLES)``; the second set is stored
  *inside* the last call, so a stop at its entry still sees 0). The replay then gives the
  kernel's own numbers exactly.
- the sampled rows: read at the stop, before the kernel's own read. The guest's clocks are
  frozen while it is stopped, but the resume (and any probe that runs the guest) moves
  them by thousands of LAPIC counts under TCG before the kernel reads them; the
  measurement in ``frame.attrs["observer"]`` (:mod:`mvnb.x86.observer`) bounds how far
  the replay may then differ from the kernel, and the replay says so.

A branch of the kernel's logic the data cannot decide (the PM-timer check without a PM
reading, the jiffies verification round) is reported as "not observed", with the column
or variable that would settle it; no value is invented for it.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mvnb.timing import linux_checks
from mvnb.timing.compare import side_by_side
from mvnb.timing.linux_observer import expected_diffs, observer_notes, tick_jitter
from mvnb.timing.linux_types import APIC_DIVISOR, U32, ApicCheck, cdiv, pick, signed

if TYPE_CHECKING:
    from mvnb.timing.linux_apic_verbose import LinuxApicVerbose

__all__ = ["APIC_DIVISOR", "LINUX_APIC_CAL_VARIABLES", "ApicCheck", "LinuxApicCalibration",
           "linux_calibrate_apic"]

#: The PM timer is 24 bits; ``lapic_cal_handler`` adds this when it wrapped once.
ACPI_PM_OVRRUN = 1 << 24
#: What ``lapic_cal_handler`` keeps (arch/x86/kernel/apic/apic.c): read them with
#: ``s.sample(..., after=LINUX_APIC_CAL_VARIABLES)`` and pass them as ``kernel_values``.
LINUX_APIC_CAL_VARIABLES = ("lapic_cal_t1", "lapic_cal_t2", "lapic_cal_tsc1",
                            "lapic_cal_tsc2", "lapic_cal_pm1", "lapic_cal_pm2",
                            "lapic_cal_j1", "lapic_cal_j2")
_CANDIDATES = {
    "ccr": ("ccr", "tapic", "current_count", "timer_ccr", "TIMER_CCR", "lapic", "tmcct"),
    "loops": ("loops", "lapic_cal_loops"),
    "tsc": ("tsc", "TSC"),
    "pm": ("pm", "pmtmr", "pm_timer", "PM_TIMER", "acpi_pm"),
    "jiffies": ("jiffies",),
}
_PAIRS = {"t": ("lapic_cal_t1", "lapic_cal_t2"), "tsc": ("lapic_cal_tsc1", "lapic_cal_tsc2"),
          "pm": ("lapic_cal_pm1", "lapic_cal_pm2"), "j": ("lapic_cal_j1", "lapic_cal_j2")}


@dataclass(frozen=True)
class LinuxApicCalibration:
    """What Linux's ``calibrate_APIC_clock`` concludes from the handler calls.

    ``lapic_timer_period`` is bus clocks per jiffy (``delta * APIC_DIVISOR /
    LAPIC_CAL_LOOPS``); ``bus_hz`` is that times HZ. ``pm``, ``too_slow`` and
    ``verification`` are the three checks; ``messages`` the kernel's printk lines (a value
    that was not observed prints as such). ``sources`` says where each input came from
    ("kernel", "sampled", "machine", "not observed"); ``expected`` bounds, per quantity,
    how far the replay may differ from the kernel's own (0: exact, None: unknown);
    ``gaps`` holds how much later the kernel read than the sampler, where both are known.
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
    pm_referenced: bool | None
    pm: ApicCheck
    too_slow: ApicCheck
    verification: ApicCheck
    timer_enabled: bool | None
    counts_per_tick: pd.Series = field(repr=False)
    messages: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    deltapm: int | None = None
    mult: int = 0
    sources: Mapping[str, str] = field(default_factory=dict)
    expected: Mapping[str, int | None] = field(default_factory=dict)
    gaps: Mapping[str, int] = field(default_factory=dict)
    observer: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def checks(self) -> pd.DataFrame:
        """The three checks as a table."""
        return pd.DataFrame(
            [(c.name, c.outcome, c.value, c.explanation)
             for c in (self.pm, self.too_slow, self.verification)],
            columns=["check", "outcome", "value", "explanation"],
        ).set_index("check")

    def quantities(self) -> dict[str, int | None]:
        """The numbers the kernel prints, as this replay has them (None: not observed)."""
        return {
            "lapic delta": self.delta,
            "PM-Timer delta": self.deltapm,
            "delta": self.delta_used if self.pm_referenced is not None else None,
            "mult": self.mult if self.pm_referenced is not None else None,
            "calibration result": (self.lapic_timer_period
                                   if self.pm_referenced is not None else None),
            "TSC per tick": (cdiv(self.deltatsc, self.lapic_cal_loops)
                             if self.deltatsc is not None and self.pm_referenced is not None
                             else None),
        }

    def compare(self, record: LinuxApicVerbose) -> pd.DataFrame:
        """Side by side with what the kernel printed (:func:`mvnb.timing.linux_apic_verbose`).

        One row per quantity; columns ``replay``, ``kernel``, ``diff`` (replay − kernel) and
        ``ppm`` (of the kernel's value). ``attrs["expected"]`` holds the bound the observer
        measurement predicts for each |diff| (0 where the replay used the kernel's own
        values, None where it cannot say); ``attrs["within_expected"]`` whether each holds.
        """
        kernel = {
            "lapic delta": record.lapic_delta, "PM-Timer delta": record.pm_delta,
            "delta": record.delta, "mult": record.mult,
            "calibration result": record.calibration_result,
            "TSC per tick": record.per_tick("cpu_clock", self.hz),
        }
        return side_by_side(((name, replay, kernel[name])
                             for name, replay in self.quantities().items()), self.expected)

    def explain(self) -> str:
        """The conclusion in words."""
        t_src = self.sources.get("t", "sampled")
        lines = [
            f"LAPIC_CAL_LOOPS = HZ/10 = {self.lapic_cal_loops}; current count at "
            f"lapic_cal_loops 0 and {self.lapic_cal_loops} ({_said(t_src)}): {self.t1:,} → "
            f"{self.t2:,}, delta {self.delta:,}.",
        ]
        if self.pm_referenced is None:
            lines.append("lapic_timer_period: depends on the PM-timer check, which was not "
                         f"observed; if it did not rescale: {self.lapic_timer_period:,}.")
        else:
            lines.append(
                f"lapic_timer_period = {self.delta_used:,} × {APIC_DIVISOR} / "
                f"{self.lapic_cal_loops} = {self.lapic_timer_period:,} bus clocks per jiffy, "
                f"i.e. a {self.bus_hz / 1e9:.4g} GHz bus ({self.bus_hz:,} Hz).")
        lines += [f"{c.name}: {c.outcome}. {c.explanation}"
                  for c in (self.pm, self.too_slow, self.verification)]
        lines.append({True: "The APIC timer is enabled.", False: "The APIC timer is DISABLED.",
                      None: "Whether the APIC timer stays enabled was not observed."}
                     [self.timer_enabled])
        lines += list(self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def _repr_html_(self) -> str:
        colour = {"passed": "#1b5e20", "failed": "#b00020", "skipped": "#555",
                  "not observed": "#a05a00"}
        state = {True: "enabled", False: "<b>disabled</b>", None: "not observed"}
        head = (f"<p><b>lapic_timer_period = {self.lapic_timer_period:,}</b> "
                f"(bus {self.bus_hz / 1e6:,.3f} MHz, HZ={self.hz}); APIC timer "
                f"{state[self.timer_enabled]}</p>")
        rows = "".join(
            f"<tr><td>{html.escape(c.name)}</td>"
            f"<td style='color:{colour[c.outcome]}'>{c.outcome}</td>"
            f"<td>{html.escape(str(c.value))}</td>"
            f"<td style='text-align:left'>{html.escape(c.explanation)}</td></tr>"
            for c in (self.pm, self.too_slow, self.verification))
        table = ("<table><tr><th>check</th><th>outcome</th><th>value</th><th>why</th></tr>"
                 f"{rows}</table>")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        msgs = html.escape("\n".join(self.messages))
        return f"{head}{table}" + (f"<ul>{notes}</ul>" if notes else "") + f"<pre>{msgs}</pre>"


def _said(source: str) -> str:
    return {"kernel": "the kernel's own lapic_cal_t1/t2", "sampled": "sampled at the stops",
            "machine": "known from the machine"}.get(source, source)


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
            + (", or pass the kernel's lapic_cal_t1/t2 as kernel_values" if role == "ccr" else "")
        )
    return None


def _rounds(loops: np.ndarray) -> list[np.ndarray]:
    """Row positions of each pass through the handler: a new pass starts when the
    counter drops (``lapic_cal_loops = -1`` again for the verification round)."""
    starts = [0, *(np.flatnonzero(np.diff(loops) < 0) + 1).tolist(), loops.size]
    return [np.arange(a, b) for a, b in itertools.pairwise(starts) if b > a]


def _pair(kernel_values: Mapping[str, Any], name: str) -> tuple[int, int] | None:
    first, second = _PAIRS[name]
    if first in kernel_values and second in kernel_values \
            and kernel_values[first] is not None and kernel_values[second] is not None:
        return int(kernel_values[first]), int(kernel_values[second])
    return None


def linux_calibrate_apic(
    frame: pd.DataFrame,
    hz: int,
    *,
    kernel_values: Mapping[str, Any] | None = None,
    observer: Mapping[str, Any] | None = None,
    ccr: str | None = None,
    loops: str | None = None,
    tsc: str | None = None,
    pm: str | None = None,
    jiffies: str | None = None,
    global_clock_event: bool | None = None,
    first_loop: int = -1,
) -> LinuxApicCalibration:
    """Replay ``calibrate_APIC_clock`` (Linux 6.1, arch/x86/kernel/apic/apic.c).

    ``frame`` has one row per ``lapic_cal_handler`` call, sampled at entry: the LAPIC
    current count (``ccr``) and, where sampled, ``lapic_cal_loops`` (``loops``), the TSC,
    the ACPI PM timer (``pm``) and ``jiffies``; columns are found by their usual names.
    Without a loops column the rows are taken as consecutive calls from ``first_loop``.
    A second pass of the handler in the frame (``lapic_cal_loops`` back at -1) is the
    jiffies verification round. ``global_clock_event`` says whether a tick device existed
    (it gates that round); None infers it from jiffies.

    ``kernel_values``: the kernel's own ``lapic_cal_t1``, ``_t2``, ``_tsc1``, ``_tsc2``,
    ``_pm1``, ``_pm2``, ``_j1``, ``_j2`` (a dict by name, e.g. ``frame.attrs["after"]`` of
    a run with ``after=LINUX_APIC_CAL_VARIABLES``); each pair given replaces the sampled
    readings, and the replay reproduces the kernel's printed numbers exactly.
    ``observer``: what a stop costs the clocks (default ``frame.attrs["observer"]``), used
    to say how far the replay from sampled readings may differ from the kernel's own.
    """
    if hz < 10:
        raise ValueError(f"HZ must be at least 10 (LAPIC_CAL_LOOPS = HZ/10), not {hz}")
    L = hz // 10
    kv = dict(kernel_values or {})
    unknown = sorted(set(kv) - set(LINUX_APIC_CAL_VARIABLES))
    if unknown:
        raise KeyError(f"kernel_values has {unknown}, which lapic_cal_handler does not keep; "
                       f"expected names from {', '.join(LINUX_APIC_CAL_VARIABLES)}")
    if observer is None:
        observer = frame.attrs.get("observer")
    t_kernel = _pair(kv, "t")
    ccr_c = _column(frame, "ccr", ccr, t_kernel is None)
    loops_c = _column(frame, "loops", loops, False)
    tsc_c = _column(frame, "tsc", tsc, False)
    pm_c = _column(frame, "pm", pm, False)
    jif_c = _column(frame, "jiffies", jiffies, False)
    notes: list[str] = []
    sources: dict[str, str] = {}
    gaps: dict[str, int] = {}

    if loops_c is not None:
        loop_v = frame[loops_c].to_numpy().astype(np.int64)
    else:
        loop_v = np.arange(first_loop, first_loop + len(frame), dtype=np.int64)
        notes.append(
            f"No lapic_cal_loops column: rows taken as consecutive calls from {first_loop}.")
    rounds = _rounds(loop_v) if len(frame) else []
    first = rounds[0] if rounds else np.arange(0)
    try:
        p1 = pick(first, loop_v, 0, "calibration")
        p2 = pick(first, loop_v, L, "calibration")
        row_ids: tuple[Any, Any] = (frame.index[p1], frame.index[p2])
    except ValueError:
        if t_kernel is None:
            raise
        p1 = p2 = -1  # the kernel's own values carry the replay; the rows only add notes
        row_ids = (None, None)

    def sampled(col: str | None) -> tuple[int, int] | None:
        if col is None or p1 < 0:
            return None
        values = frame[col].to_numpy()
        if pd.isna(values[p1]) or pd.isna(values[p2]):
            return None
        return int(values[p1]), int(values[p2])

    # The LAPIC current count: apic_read() is u32, stored in a long.
    from_rows = sampled(ccr_c)
    if t_kernel is not None:
        t1, t2 = t_kernel
        sources["t"] = "kernel"
        if from_rows is not None:
            gaps["lapic t1"] = (from_rows[0] & U32) - t1
            gaps["lapic t2"] = (from_rows[1] & U32) - t2
    else:
        assert from_rows is not None
        t1, t2 = from_rows[0] & U32, from_rows[1] & U32
        sources["t"] = "sampled"
    delta = t1 - t2
    messages = ["Using local APIC timer interrupts.", "calibrating APIC timer ...",
                f"... lapic delta = {delta}"]
    if delta < 0:
        notes.append("The current count went up between the two readings: the timer was "
                     "reloaded or reprogrammed, so the kernel's delta is negative.")

    # The TSC: deltatsc = (long)(lapic_cal_tsc2 - lapic_cal_tsc1).
    deltatsc = None
    tsc_pair, tsc_rows = _pair(kv, "tsc"), sampled(tsc_c)
    if tsc_pair is not None:
        deltatsc, sources["tsc"] = signed(tsc_pair[1] - tsc_pair[0]), "kernel"
        if tsc_rows is not None:
            gaps["tsc t1"] = tsc_pair[0] - tsc_rows[0]
            gaps["tsc t2"] = tsc_pair[1] - tsc_rows[1]
    elif tsc_rows is not None:
        deltatsc, sources["tsc"] = signed(tsc_rows[1] - tsc_rows[0]), "sampled"
    else:
        sources["tsc"] = "not observed"

    # The PM timer: acpi_pm_read_early() reads 0 without one; pm2 += ACPI_PM_OVRRUN if it
    # wrapped; deltapm = lapic_cal_pm2 - lapic_cal_pm1 in u32.
    deltapm: int | None = None
    pm_pair, pm_rows = _pair(kv, "pm"), sampled(pm_c)
    if pm_pair is not None:
        deltapm, sources["pm"] = (pm_pair[1] - pm_pair[0]) & U32, "kernel"
        if pm_rows is not None:
            gaps["pm t1"] = pm_pair[0] - (pm_rows[0] & 0xFFFFFF)
            gaps["pm t2"] = (pm_pair[1] & 0xFFFFFF) - (pm_rows[1] & 0xFFFFFF)
    elif pm_rows is not None:
        pm1, pm2 = pm_rows[0] & 0xFFFFFF, pm_rows[1] & 0xFFFFFF
        if pm2 < pm1:
            pm2 += ACPI_PM_OVRRUN
        deltapm, sources["pm"] = pm2 - pm1, "sampled"
    elif str(frame.attrs.get("provenance", {}).get("machine", "")).startswith("microvm"):
        deltapm, sources["pm"] = 0, "machine"
    else:
        sources["pm"] = "not observed"

    pm_check, pm_referenced, delta_used, deltatsc, pm_msgs = linux_checks.pm_check(
        deltapm, delta, deltatsc, sources["pm"])
    messages += pm_msgs

    period = cdiv(delta_used * APIC_DIVISOR, L) & U32
    tick_nsec = (10**9 + hz // 2) // hz
    mult = (((period // APIC_DIVISOR) << 32) // tick_nsec) & U32
    per_mhz = 1000000 // hz
    if pm_referenced is None:
        messages.append("(the lines below assume the PM-timer check did not rescale the delta)")
    messages += [f"..... delta {delta_used}", f"..... mult: {mult}",
                 f"..... calibration result: {period}"]
    cpu_hz = None
    if deltatsc is not None:
        per_loop = cdiv(deltatsc, L)
        whole = cdiv(per_loop, per_mhz)
        messages.append(f"..... CPU clock speed is {whole}.{per_loop - whole * per_mhz:04d} MHz.")
        cpu_hz = deltatsc / L * hz
    messages.append(
        f"..... host bus clock speed is {period // per_mhz}.{period % per_mhz:04d} MHz.")

    slow = period < per_mhz
    too_slow = ApicCheck(
        "APIC frequency too slow", "failed" if slow else "passed", period,
        f"lapic_timer_period {period:,} {'<' if slow else '≥'} 1,000,000/HZ = {per_mhz:,} "
        "(a bus under 1 MHz)" + (": the kernel disables the APIC timer." if slow else "."))
    if slow:
        messages.append("APIC frequency too slow, disabling apic timer")

    counts_per_tick = pd.Series(dtype="float64", name="counts per tick")
    if ccr_c is not None and len(first):
        ccr_round = pd.Series(frame[ccr_c].to_numpy()[first].astype(np.int64),
                              index=frame.index[first])
        counts_per_tick = (-ccr_round.diff()).iloc[1:].rename("counts per tick")
    if len(counts_per_tick):
        mean = float(counts_per_tick.mean())
        notes.append(
            f"Successive stops were {mean:,.0f} LAPIC counts apart on average (spread "
            f"{float(counts_per_tick.std(ddof=0)):,.0f}); at divide-by-{APIC_DIVISOR} and "
            f"HZ={hz} that is a {mean * APIC_DIVISOR * hz / 1e9:.3g} GHz bus.")

    j_advanced = None
    j_pair = _pair(kv, "j")
    if j_pair is not None:
        j_advanced, sources["jiffies"] = int(j_pair[1] - j_pair[0]), "kernel"
    elif jif_c is not None and len(first):
        jv = frame[jif_c].to_numpy().astype(np.int64)
        j_advanced, sources["jiffies"] = int(jv[first[-1]] - jv[first[0]]), "sampled"
    if j_advanced == 0:
        notes.append("jiffies did not advance during the calibration loop: no tick interrupt "
                     "arrived, so the loop was paced by the TSC (tsc_khz known), and there "
                     "is no global clock event device for the verification.")

    verification, v_msgs = linux_checks.verification(
        slow, pm_referenced, global_clock_event, rounds, j_advanced, jif_c, frame, loop_v, L)
    messages += v_msgs
    if slow or verification.outcome == "failed":
        timer_enabled: bool | None = False
    elif verification.outcome == "not observed":
        timer_enabled = None
    else:
        timer_enabled = True

    jitter = tick_jitter(counts_per_tick) if sources["t"] == "sampled" else None
    expected = expected_diffs(sources, observer, delta, delta_used, deltapm, deltatsc,
                              pm_referenced, hz, jitter)
    notes += observer_notes(observer, sources, expected, gaps, period, kv, frame, jitter)
    return LinuxApicCalibration(
        hz=hz, lapic_cal_loops=L, rows=row_ids, t1=t1, t2=t2, delta=delta,
        delta_used=delta_used, lapic_timer_period=period, bus_hz=period * hz,
        deltatsc=deltatsc, cpu_hz=cpu_hz, pm_referenced=pm_referenced, pm=pm_check,
        too_slow=too_slow, verification=verification, timer_enabled=timer_enabled,
        counts_per_tick=counts_per_tick, messages=tuple(messages), notes=tuple(notes),
        deltapm=deltapm, mult=mult, sources=sources, expected=expected, gaps=gaps,
        observer=observer,
    )
