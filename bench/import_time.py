"""How long ``import mvnb`` takes in a fresh process, against ``import pandas`` and an empty
interpreter, in interleaved rounds of the same run. Writes bench/results/import_time.json.

    python bench/import_time.py [--rounds 15]

``import mvnb`` leaves pandas, matplotlib and ipywidgets for first use; the figure to watch
is mvnb's median against pandas' median measured in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _peers import write_results

RESULTS = Path(__file__).parent / "results" / "import_time.json"
STATEMENTS = {"python": "pass", "import mvnb": "import mvnb", "import pandas": "import pandas"}


def once(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for statement in STATEMENTS.values():  # warm the page cache
        once(statement)
    times: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(args.rounds):
        for name, statement in STATEMENTS.items():
            times[name].append(once(statement))
    result = {
        name: {"min_s": round(min(t), 4), "median_s": round(statistics.median(t), 4),
               "max_s": round(max(t), 4)}
        for name, t in times.items()
    }
    paired = [m / p for m, p in zip(times["import mvnb"], times["import pandas"], strict=True)]
    result["mvnb_over_pandas"] = {"ratio_of_medians": round(
        result["import mvnb"]["median_s"] / result["import pandas"]["median_s"], 3),
        "paired_median": round(statistics.median(paired), 3)}
    result["rounds"] = args.rounds
    write_results(RESULTS, result, guest_name="(none)")


if __name__ == "__main__":
    main()
