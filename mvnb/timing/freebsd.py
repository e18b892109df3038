"""FreeBSD's statistical clock calibration, run on sampled data.

Mirrors ``clockcalib(clk, clkname)`` in sys/kern/subr_clockcalib.c (FreeBSD 14): the target
clock ``clk()`` (the TSC, or the LAPIC timer through ``cb_lapic_getcount``, which returns
0xFFFFFFFF minus the current count) is read against the current timecounter once per loop
iteration.  Running means, population variances and the covariance are updated with
weight 1/n; an iteration passes when ``1e-12 * (n - 2) * cva**2 > (va_t + 4) * (va_clk + 4)
- cva**2`` (relative slope uncertainty under 1 ppm, +4 for quantisation), a failure resets
the pass count, and the loop stops when ``passes * 2 > n`` with ``tc_frequency * cva /
va_t``.  If the reference advanced by more than ``tc_frequency`` first, the kernel prints
"Statistical … calibration failed!" and returns the two-point ``tc_frequency * clk1 / t1``.
Against FreeBSD's dummy timecounter (sys/kern/kern_tc.c, ``++now`` per read, 1 MHz) that
failure comes at exactly ``t1 == 1000001``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

from mvnb.timing.compare import side_by_side

__all__ = ["DUMMY_TC_FREQUENCY", "ClockCalibration", "clockcalib", "dummy_timecounter"]

#: ``dummy_timecounter.tc_frequency`` in sys/kern/kern_tc.c.
DUMMY_TC_FREQUENCY = 1_000_000
# TSC_UNCERTAINTY_SQR expands to ``1 * 0.000001 * 1 * 0.000001``; evaluated left to right
# in double precision as the kernel does.
_UNCERTAINTY_SQR = 1 * 0.000001 * 1 * 0.000001
_U64 = 1 << 64


def dummy_timecounter(n: int, *, start: int = 0) -> np.ndarray:
    """``n`` successive reads of FreeBSD's dummy timecounter: ``++now`` on a ``u_int``.

    ``dummy_get_timecount`` in sys/kern/kern_tc.c ignores time and returns one more than
    last time; ``start`` is ``now`` before the first read (earlier reads during boot).
    """
    return np.arange(start + 1, start + n + 1, dtype=np.uint64) & np.uint64(0xFFFFFFFF)


def _u64(values: Any) -> np.ndarray:
    raw = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if raw.dtype.kind == "i":
        return raw.astype(np.int64).view(np.uint64)
    if raw.dtype.kind == "f":
        if np.isnan(raw).any():
            raise ValueError("clockcalib needs every pair; drop rows with missing values")
        return raw.astype(np.int64).view(np.uint64)
    return raw.astype(np.uint64)


@dataclass(frozen=True)
class ClockCalibration:
    """What FreeBSD's ``clockcalib`` concludes from a run of (clk, tc) pairs, and why.

    ``frequency`` is the kernel's return value (the two-point fallback when ``failed``;
    None when the samples ran out before the loop would have stopped).  ``n`` is the
    iteration at which it stopped, ``t1``/``clk1`` the reference and target ticks since
    the first pair at that iteration.  ``steps`` holds the statistic at every iteration.
    """

    frequency: int | None
    failed: bool
    outcome: Literal["converged", "fell back", "incomplete"]
    n: int
    t1: int
    clk1: int
    tc_frequency: int
    estimate: float
    dummy_reference: bool
    messages: tuple[str, ...]
    notes: tuple[str, ...] = ()
    name: str = "clk"
    method: str = "cumulative sums (extended precision)"
    _columns: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def steps(self) -> pd.DataFrame:
        """One row per iteration n: the two clocks, the running statistics, the criterion.

        ``lhs``/``rhs`` are the two sides of the pass test, ``passes`` the kernel's
        counter after the test, ``estimate`` ``tc_frequency * cva / va_t`` and
        ``uncertainty_ppm`` the relative slope uncertainty the test bounds by 1 ppm.
        """
        frame = pd.DataFrame(self._columns)
        return frame.set_index("n") if "n" in frame else frame

    def explain(self) -> str:
        """The conclusion in words, with the kernel's own messages."""
        lines = []
        ref_s = self.t1 / self.tc_frequency
        if self.outcome == "converged":
            lines.append(
                f"clockcalib converged after {self.n} iterations ({ref_s * 1e6:.0f} µs of "
                f"reference time): {self.name} runs at {self.frequency:,} Hz "
                f"(tc_frequency × cva / va_t)."
            )
        elif self.outcome == "fell back":
            lines.append(
                f"clockcalib failed: after {self.n} iterations the reference had advanced "
                f"t1 = {self.t1:,} ticks, more than tc_frequency = {self.tc_frequency:,} "
                f"(one second), before {self.n // 2 + 1} consecutive iterations met the "
                f"1 ppm test. It fell back to the two-point estimate tc_frequency × clk1 / t1 "
                f"= {self.frequency:,} Hz."
            )
        else:
            lines.append(
                f"The samples ran out after {self.n} iterations (t1 = {self.t1:,}) before "
                f"clockcalib stopped; its running estimate was {self.estimate:,.0f} Hz."
            )
        if self.dummy_reference:
            if self.failed and self.t1 == self.tc_frequency + 1:
                lines.append(
                    f"t1 == tc_frequency + 1 = {self.t1:,}: the reference advanced by exactly "
                    "one per read, so it was FreeBSD's dummy timecounter (++now per read, "
                    "sys/kern/kern_tc.c). No real timecounter (i8254, HPET, ACPI PM, TSC) "
                    "had been registered with tc_init before this calibration ran."
                )
            else:
                lines.append(
                    "The reference advanced by exactly one per read: it counts reads, not "
                    "time (FreeBSD's dummy timecounter). Any frequency from it is meaningless."
                )
        lines += list(self.notes)
        if self.messages:
            lines.append("Kernel messages: " + " | ".join(self.messages))
        return "\n".join(lines)

    def compare(self, kernel_values: Mapping[str, int]) -> pd.DataFrame:
        """Beside what the kernel kept. For the LAPIC (sys/x86/x86/local_apic.c,
        ``lapic_calibrate_initcount``): ``count_freq = freq * 2 / lapic_timer_divisor``,
        both statics readable once the calibration is over, so ``freq`` is compared as
        ``count_freq * lapic_timer_divisor / 2``; for the TSC, ``tsc_freq`` directly.
        Columns ``replay``, ``kernel``, ``diff``, ``ppm``."""
        unknown = sorted(set(kernel_values) - {"count_freq", "lapic_timer_divisor",
                                               "tsc_freq"})
        if unknown:
            raise KeyError(f"{unknown}: compare with count_freq and lapic_timer_divisor "
                           "(the LAPIC) or tsc_freq (the TSC)")
        rows: list[tuple[str, int | None, int | None]] = []
        if "count_freq" in kernel_values:
            divisor = kernel_values.get("lapic_timer_divisor")
            if divisor is None:
                raise KeyError("count_freq needs lapic_timer_divisor beside it "
                               "(count_freq = freq * 2 / lapic_timer_divisor)")
            rows.append(("freq", self.frequency,
                         int(kernel_values["count_freq"]) * int(divisor) // 2))
        if "tsc_freq" in kernel_values:
            rows.append(("tsc_freq", self.frequency, int(kernel_values["tsc_freq"])))
        return side_by_side(rows)

    def __str__(self) -> str:
        return self.explain()

    def _repr_html_(self) -> str:
        colour = {"converged": "#1b5e20", "fell back": "#b00020", "incomplete": "#a05a00"}
        freq = "—" if self.frequency is None else f"{self.frequency:,} Hz"
        rows = [
            ("outcome", f"<b style='color:{colour[self.outcome]}'>{self.outcome}</b>"),
            ("frequency", freq),
            ("iterations n", f"{self.n:,}"),
            ("t1 (reference ticks)", f"{self.t1:,}"),
            ("clk1 (target ticks)", f"{self.clk1:,}"),
            ("tc_frequency", f"{self.tc_frequency:,}"),
            ("dummy reference", "yes" if self.dummy_reference else "no"),
        ]
        table = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>"
            for k, v in rows
        )
        text = html.escape(self.explain()).replace("\n", "<br>")
        caption = f"FreeBSD clockcalib({html.escape(self.name)})"
        return f"<table><caption>{caption}</caption>{table}</table><p>{text}</p>"


def _reference_ticks(tc: np.ndarray, mask: int) -> np.ndarray:
    """``t1`` for every iteration: the kernel's tadj/tlast wrap handling, vectorised.

    ``while (t1 + tadj < tlast) tadj += mask + 1`` makes each step ``(t - t_prev) mod
    (mask + 1)``; summing the steps gives ``tlast - t0``.
    """
    m = np.uint64(mask)
    t = tc & m
    return np.cumsum((t[1:] - t[:-1]) & m, dtype=np.uint64)


_Stats = tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray] | None]


def _stats_cumulative(t1: np.ndarray, clk1: np.ndarray) -> _Stats:
    """Running means, population variances and covariance from cumulative sums.

    Equal to the kernel's incremental update with weight 1/n up to rounding; summed in
    extended precision (numpy longdouble: 64-bit mantissa on x86-64), so counts below
    2**32 square exactly.
    """
    ld = np.longdouble
    x = t1.astype(ld)
    y = clk1.astype(ld)
    n = np.arange(1, x.size + 1, dtype=ld)
    mu_t = np.cumsum(x) / n
    mu_clk = np.cumsum(y) / n
    va_t = np.cumsum(x * x) / n - mu_t * mu_t
    va_clk = np.cumsum(y * y) / n - mu_clk * mu_clk
    cva = np.cumsum(x * y) / n - mu_t * mu_clk
    stats = {
        "mu_clk": mu_clk.astype(np.float64),
        "mu_t": mu_t.astype(np.float64),
        "va_clk": np.maximum(va_clk, 0).astype(np.float64),
        "va_t": np.maximum(va_t, 0).astype(np.float64),
        "cva": cva.astype(np.float64),
    }
    return stats, (va_t, va_clk, cva)


def _stats_exact(t1: np.ndarray, clk1: np.ndarray) -> _Stats:
    """The kernel's own update, statement for statement, in IEEE double (slow, exact)."""
    size = t1.size
    cols = {k: np.empty(size) for k in ("mu_clk", "mu_t", "va_clk", "va_t", "cva")}
    mu_clk = mu_t = va_clk = va_t = cva = 0.0
    tl, cl = t1.tolist(), clk1.tolist()
    for i in range(size):
        n = i + 1
        inv_n = 1.0 / n
        c, t = float(cl[i]), float(tl[i])
        d1 = c - mu_clk
        mu_clk += d1 * inv_n
        d2 = d1 * (c - mu_clk)
        va_clk += (d2 - va_clk) * inv_n
        d1 = t - mu_t
        mu_t += d1 * inv_n
        d2 = d1 * (t - mu_t)
        va_t += (d2 - va_t) * inv_n
        d2 = d1 * (c - mu_clk)
        cva += (d2 - cva) * inv_n
        cols["mu_clk"][i], cols["mu_t"][i] = mu_clk, mu_t
        cols["va_clk"][i], cols["va_t"][i], cols["cva"][i] = va_clk, va_t, cva
    return cols, None


def clockcalib(
    clk: Any,
    tc: Any,
    tc_frequency: int,
    tc_mask: int = 0xFFFFFFFF,
    *,
    name: str = "clk",
    exact: bool = False,
) -> ClockCalibration:
    """Run FreeBSD's ``clockcalib`` (sys/kern/subr_clockcalib.c) on sampled pairs.

    ``clk`` and ``tc`` are the two counters as the loop reads them, one pair per
    iteration, the first pair being the kernel's ``clk0``/``t0``.  ``clk`` must count up
    (pass ``0xFFFFFFFF - current_count`` for the LAPIC, as ``cb_lapic_getcount`` does);
    ``tc`` is the raw timecounter, masked with ``tc_mask`` and unwrapped like the kernel.
    ``exact=True`` replays the kernel's incremental double-precision update statement by
    statement (about a second per 10**6 pairs); the default computes the same statistics
    from cumulative sums in extended precision, which can differ from the kernel only when
    an iteration sits within rounding of the pass threshold.
    """
    if tc_mask <= 0 or tc_mask >= _U64 or (tc_mask & (tc_mask + 1)):
        raise ValueError(f"tc_mask must be 2**k - 1 (a timecounter mask), not {tc_mask:#x}")
    if tc_frequency <= 0:
        raise ValueError(f"tc_frequency must be positive, not {tc_frequency}")
    c = _u64(clk).ravel()
    t = _u64(tc).ravel()
    if c.size != t.size:
        raise ValueError(f"clk has {c.size} reads and tc has {t.size}; they come in pairs")
    if c.size < 2:
        raise ValueError("clockcalib needs the initial pair and at least one iteration")

    clk1 = c[1:] - c[0]  # uint64 arithmetic, as in the kernel
    t1 = _reference_ticks(t, tc_mask)
    total = t1.size
    over = np.flatnonzero(t1 > np.uint64(tc_frequency))
    bail = int(over[0]) if over.size else total  # 0-based iteration that bails

    span = bail if bail < total else total  # iterations whose statistics are updated
    notes = []
    if not exact and span and int(clk1[:span].max()) >= 1 << 48:
        # Cumulative sums of squares lose what the incremental update keeps once clk1 is
        # this large (a clock that went backwards wraps to near 2**64): replay the loop.
        exact = True
        notes.append(
            f"clk1 reached {int(clk1[:span].max()):,}, beyond what cumulative sums keep "
            "exactly, so the kernel's own incremental update was replayed."
        )
    stats, ld = (_stats_exact if exact else _stats_cumulative)(t1[:span], clk1[:span])
    n = np.arange(1, span + 1, dtype=np.uint64)
    if ld is not None:
        va_t_x, va_clk_x, cva_x = ld
        nm2 = (n - np.uint64(2)).astype(np.longdouble)  # n - 2 is unsigned in the kernel
        lhs = _UNCERTAINTY_SQR * nm2 * cva_x * cva_x
        rhs = (va_t_x + 4) * (va_clk_x + 4) - cva_x * cva_x
    else:
        cva_d = stats["cva"]
        nm2 = (n - np.uint64(2)).astype(np.float64)
        lhs = _UNCERTAINTY_SQR * nm2 * cva_d * cva_d
        rhs = (stats["va_t"] + 4) * (stats["va_clk"] + 4) - cva_d * cva_d
    passed = lhs > rhs
    idx = np.arange(1, span + 1)
    last_fail = np.maximum.accumulate(np.where(passed, 0, idx)) if span else idx
    passes = idx - last_fail
    done = np.flatnonzero(passes * 2 > idx)

    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = tc_frequency * stats["cva"] / stats["va_t"]
        uncertainty = (
            np.sqrt(
                np.asarray(rhs, dtype=np.float64)
                / (np.asarray(nm2, dtype=np.float64) * stats["cva"] ** 2)
            )
            * 1e6
        )
        uncertainty[idx <= 2] = np.nan

    steps_dummy = total >= 2 and bool(np.all(((t[1:] - t[:-1]) & np.uint64(tc_mask)) == 1))
    messages: list[str]
    if done.size:
        stop = int(done[0])
        n_stop = stop + 1
        freq = int(float(tc_frequency) * float(stats["cva"][stop]) / float(stats["va_t"][stop]))
        t_stop, c_stop = int(t1[stop]), int(clk1[stop])
        outcome: Literal["converged", "fell back", "incomplete"] = "converged"
        us = int(t_stop * 1000000.0 / tc_frequency)
        messages = [f"Statistical {name} calibration took {us} us and {n_stop} data points"]
        rows = n_stop
    elif bail < total:
        n_stop = bail + 1
        t_stop, c_stop = int(t1[bail]), int(clk1[bail])
        freq = int(float(tc_frequency) * float(c_stop) / float(t_stop))
        outcome = "fell back"
        messages = [
            f"Statistical {name} calibration failed!  Clocks might be ticking at variable rates.",
            f"Falling back to slow {name} calibration.",
        ]
        rows = span
    else:
        n_stop = total
        t_stop, c_stop = int(t1[-1]), int(clk1[-1])
        freq = None
        outcome = "incomplete"
        messages = []
        rows = span
    last_estimate = float(estimate[rows - 1]) if rows else float("nan")
    columns = {
        "n": idx[:rows],
        "clk1": clk1[:rows],
        "t1": t1[:rows],
        **{k: v[:rows] for k, v in stats.items()},
        "lhs": np.asarray(lhs[:rows], dtype=np.float64),
        "rhs": np.asarray(rhs[:rows], dtype=np.float64),
        "passed": passed[:rows],
        "passes": passes[:rows],
        "estimate": estimate[:rows],
        "uncertainty_ppm": uncertainty[:rows],
    }
    back = np.flatnonzero(c[1:] < c[:-1])
    if back.size:
        notes.append(
            f"{name} went backwards {back.size} times (first at pair {int(back[0]) + 1}): "
            "clockcalib needs an up-counter; for the LAPIC pass 0xFFFFFFFF - current count, "
            "as cb_lapic_getcount does, and keep the timer from reloading."
        )
    if freq is not None and freq < 0:
        notes.append(
            "The estimate is negative; the kernel converts it to uint64_t, which C leaves "
            "undefined, so its value would be garbage."
        )
    return ClockCalibration(
        frequency=freq,
        failed=outcome == "fell back",
        outcome=outcome,
        n=n_stop,
        t1=t_stop,
        clk1=c_stop,
        tc_frequency=int(tc_frequency),
        estimate=last_estimate,
        dummy_reference=steps_dummy or (outcome == "fell back" and t_stop == tc_frequency + 1),
        messages=tuple(messages),
        notes=tuple(notes),
        name=name,
        method="kernel's incremental update (IEEE double)"
        if exact
        else "cumulative sums (extended precision)",
        _columns=columns,
    )
