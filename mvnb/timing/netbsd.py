"""NetBSD's two-point LAPIC timer calibration against the TSC, run on sampled values.

Mirrors the second pass of ``lapic_calibrate_timer`` in sys/arch/x86/x86/lapic.c: with the
timer one-shot, masked, divide-by-1 and loaded with 0x80000000, it reads the TSC, the
LAPIC current count and the TSC again, waits ``DELAY(50000)``, and does the same.  Each
TSC value is the *sum* of the two reads around the LAPIC read, so ``(t1 - t0 + 1) / 2`` is
the TSC delta at the LAPIC reads; ``lapic_per_second = rounddown(tmp + 500, 1000)`` rounds
to the nearest 1000 Hz, and ``lapic_tval`` is the periodic reload for ``hz``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mvnb.timing.compare import side_by_side

__all__ = ["NetbsdLapicCalibration", "netbsd_calibrate_lapic"]

_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class NetbsdLapicCalibration:
    """NetBSD's result: ``lapic_per_second`` (Hz, to 1000 Hz) and ``lapic_tval``."""

    lapic_per_second: int
    lapic_tval: int
    hz: int
    lapic_delta: int
    tsc_delta: int
    cpu_frequency: int
    raw: int

    def explain(self) -> str:
        """The arithmetic the kernel did, in words."""
        return (
            f"LAPIC counted down {self.lapic_delta:,} while the TSC advanced "
            f"{self.tsc_delta:,} at {self.cpu_frequency:,} Hz: "
            f"{self.lapic_delta:,} × {self.cpu_frequency:,} / {self.tsc_delta:,} = "
            f"{self.raw:,} Hz, rounded to the nearest 1000 Hz: lapic_per_second = "
            f"{self.lapic_per_second:,}. Periodic reload for hz={self.hz}: lapic_tval = "
            f"{self.lapic_tval:,}."
        )

    def compare(self, kernel_values: Mapping[str, int]) -> pd.DataFrame:
        """Beside the kernel's own results: ``lapic_per_second`` and ``lapic_tval`` are
        globals in sys/arch/x86/x86/lapic.c, readable once the calibration is over (e.g.
        ``s.sample(..., after=["lapic_per_second", "lapic_tval"])``). Columns ``replay``,
        ``kernel``, ``diff``, ``ppm`` (:func:`mvnb.timing.compare.side_by_side`)."""
        unknown = sorted(set(kernel_values) - {"lapic_per_second", "lapic_tval"})
        if unknown:
            raise KeyError(f"{unknown}: NetBSD keeps lapic_per_second and lapic_tval")
        return side_by_side([
            ("lapic_per_second", self.lapic_per_second, kernel_values.get("lapic_per_second")),
            ("lapic_tval", self.lapic_tval, kernel_values.get("lapic_tval")),
        ])

    def __str__(self) -> str:
        return self.explain()

    def _repr_html_(self) -> str:
        return (
            f"<p><b>lapic_per_second = {self.lapic_per_second:,} Hz</b>, lapic_tval = "
            f"{self.lapic_tval:,}</p><p>{html.escape(self.explain())}</p>"
        )


def _ends(values: Any) -> tuple[int, int]:
    raw = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if raw.size < 2:
        raise ValueError("a two-point estimate needs two readings")
    return int(raw.ravel()[0]), int(raw.ravel()[-1])


def _tsc_sums(tsc: Any) -> tuple[int, int]:
    """The kernel's t0, t1: sums of the two TSC reads around each LAPIC read.

    ``tsc`` is either two pairs ``[(a0, b0), (a1, b1)]`` (the reads before and after each
    LAPIC read) or single reads, first and last taken, counted twice.
    """
    raw = np.asarray(tsc.to_numpy() if isinstance(tsc, pd.Series) else tsc, dtype=object)
    if raw.ndim == 2 and raw.shape == (2, 2):
        return (int(raw[0, 0]) + int(raw[0, 1])) & _U64, (int(raw[1, 0]) + int(raw[1, 1])) & _U64
    a, b = _ends(np.asarray(raw, dtype=np.uint64))
    return (2 * a) & _U64, (2 * b) & _U64


def netbsd_calibrate_lapic(
    lapic: Any, tsc: Any, cpu_frequency: int, *, hz: int = 100
) -> NetbsdLapicCalibration:
    """Replay NetBSD's TSC-based ``lapic_calibrate_timer`` (sys/arch/x86/x86/lapic.c).

    ``lapic`` holds the current counts (first and last are used: ``l0``, ``l1``; the timer
    counts down at divide-by-1), ``tsc`` the TSC reads (see :func:`_tsc_sums`), and
    ``cpu_frequency`` the TSC frequency the kernel already knows, in Hz.  Integer
    arithmetic as in the kernel: unsigned 64-bit, ``lapic_per_second`` a uint32.
    """
    if cpu_frequency <= 0:
        raise ValueError(f"cpu_frequency must be positive, not {cpu_frequency}")
    l0, l1 = _ends(lapic)
    t0, t1 = _tsc_sums(tsc)
    half = (((t1 - t0) & _U64) + 1) // 2
    if half == 0:
        raise ValueError("the TSC did not advance between the two readings")
    ldelta = (l0 - l1) & _U64
    tmp = (ldelta * cpu_frequency & _U64) // half
    per_second = ((tmp + 500) // 1000 * 1000) & _U32
    tval = (per_second * 2 & _U32) // hz
    tval = tval // 2 + (tval & 1)
    return NetbsdLapicCalibration(
        lapic_per_second=per_second,
        lapic_tval=tval,
        hz=hz,
        lapic_delta=ldelta,
        tsc_delta=half,
        cpu_frequency=int(cpu_frequency),
        raw=tmp,
    )
