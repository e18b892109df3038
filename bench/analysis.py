"""Analysis speed on 10**6 samples: figures, not pass/fail.

Times, on one synthetic frame of 10**6 rows (an HPET reference and a 32-bit TSC that wraps):
unwrap + fit_rate + windowed_drift together (issue 4's target: well under 1 s), each step
alone, and the peers in the same run (numpy.polyfit for the fit; pandas rolling
covariance for the windowed rate).  Then FreeBSD's clockcalib on 10**6 pairs against the
dummy timecounter (it runs to the t1 == 1000001 bail-out), vectorised and as the
kernel's literal loop.  Writes bench/results/analysis.json.

    .venv/bin/python bench/analysis.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mvnb.timing import (
    DUMMY_TC_FREQUENCY,
    clockcalib,
    dummy_timecounter,
    fit_rate,
    unwrap,
    windowed_drift,
)

N = 10**6
WINDOW = 50_000


def _frame(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(42)
    hpet = np.cumsum(rng.integers(900, 1100, n)).astype(np.int64)
    tsc32 = ((hpet * 24 + rng.integers(0, 50, n)) & 0xFFFFFFFF).astype(np.uint32)
    return pd.DataFrame({"hpet": hpet, "tsc32": tsc32})


def _time(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return {"min_s": min(runs), "median_s": statistics.median(runs), "runs": len(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "analysis.json"
    )
    args = parser.parse_args()

    frame = _frame()
    prepared = frame.assign(tsc=unwrap(frame["tsc32"]))

    def pipeline() -> None:
        f = frame.assign(tsc=unwrap(frame["tsc32"]))
        fit_rate(f, "hpet", "tsc")
        windowed_drift(f, "hpet", "tsc", window=WINDOW)

    def polyfit() -> None:
        np.polyfit(prepared["hpet"].to_numpy(np.float64), prepared["tsc"].to_numpy(np.float64), 1)

    def pandas_rolling() -> None:
        x = prepared["hpet"].astype(np.float64)
        y = prepared["tsc"].astype(np.float64)
        (x.rolling(WINDOW).cov(y) / x.rolling(WINDOW).var()).iloc[WINDOW - 1 :: WINDOW // 2]

    steps = {
        "unwrap+fit_rate+windowed_drift": _time(pipeline, args.repeat),
        "unwrap": _time(lambda: unwrap(frame["tsc32"]), args.repeat),
        "fit_rate": _time(lambda: fit_rate(prepared, "hpet", "tsc"), args.repeat),
        "windowed_drift": _time(
            lambda: windowed_drift(prepared, "hpet", "tsc", window=WINDOW), args.repeat
        ),
        "peer numpy.polyfit": _time(polyfit, args.repeat),
        "peer pandas rolling cov/var": _time(pandas_rolling, args.repeat),
    }

    n_pairs = DUMMY_TC_FREQUENCY + 2
    rng = np.random.default_rng(7)
    clk = (np.cumsum(rng.gamma(0.25, 4000.0, n_pairs)) + 12345).astype(np.uint64)
    tc = dummy_timecounter(n_pairs)
    result = clockcalib(clk, tc, DUMMY_TC_FREQUENCY)
    calib = {
        "clockcalib vectorised": _time(
            lambda: clockcalib(clk, tc, DUMMY_TC_FREQUENCY), args.repeat
        ),
        "clockcalib exact (kernel loop)": _time(
            lambda: clockcalib(clk, tc, DUMMY_TC_FREQUENCY, exact=True), max(1, args.repeat // 2)
        ),
    }

    fast = steps["unwrap+fit_rate+windowed_drift"]["median_s"]
    report = {
        "rows": N,
        "window": WINDOW,
        "analysis": steps,
        "clockcalib": {
            "pairs": n_pairs,
            "outcome": result.outcome,
            "n": result.n,
            "t1": result.t1,
            **calib,
        },
        "ratios": {
            "pipeline / 1 s target": fast / 1.0,
            "fit_rate / numpy.polyfit": steps["fit_rate"]["median_s"]
            / steps["peer numpy.polyfit"]["median_s"],
            "windowed_drift / pandas rolling": steps["windowed_drift"]["median_s"]
            / steps["peer pandas rolling cov/var"]["median_s"],
            "clockcalib vectorised / exact": calib["clockcalib vectorised"]["median_s"]
            / calib["clockcalib exact (kernel loop)"]["median_s"],
        },
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
