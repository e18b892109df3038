"""The process one run's experiment runs in: ``python -m mvnb.sweep._child PAYLOAD RESULT``.

The runner (:mod:`mvnb.sweep.runner`) starts it with ``mvnb._proc.spawn``, so it dies with
the worker, and its QEMU and GDB die with it (their parent-death signal). It reads the
payload (the experiment, pickled by value where needed, and the parameter set), seeds
Python's and numpy's random generators with the run's seed, turns the ``guest`` spec into a
guest from this machine's cache, calls the experiment and writes what it returned (or the
traceback) to RESULT, atomically: a RESULT that exists is complete.
"""

from __future__ import annotations

import os
import pickle
import random
import sys
import time
import traceback
import warnings
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd

__all__ = ["as_frame", "main"]


def as_frame(result: Any) -> pd.DataFrame:
    """What an experiment returned, as a DataFrame: a frame as it is, a dict of scalars or
    a Series as one row, None as no rows."""
    if result is None:
        return pd.DataFrame()
    if isinstance(result, pd.DataFrame):
        return result
    if isinstance(result, pd.Series):
        return result.to_frame().T.reset_index(drop=True)
    if isinstance(result, dict):
        return pd.DataFrame([result])
    raise TypeError(f"the experiment returned a {type(result).__name__}; return a pandas "
                    "DataFrame, a dict of scalars or None")


def _write(path: str, record: dict[str, Any]) -> None:
    partial = f"{path}.partial"
    with open(partial, "wb") as f:
        pickle.dump(record, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, path)


def main(argv: list[str]) -> int:
    payload_path, result_path = argv
    with open(payload_path, "rb") as f:
        payload = pickle.load(f)
    caught: list[warnings.WarningMessage] = []
    started = time.monotonic()
    try:
        experiment = cloudpickle.loads(payload["experiment"])
        params = dict(payload["params"])
        random.seed(payload["seed"])
        np.random.seed(payload["seed"] % 2**32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            params["guest"] = params["guest"].resolve()
            frame = as_frame(experiment(params))
        attrs = dict(frame.attrs)
        frame.attrs = {}
        record: dict[str, Any] = {"frame": frame, "attrs": attrs}
    except BaseException as error:  # the run's failure is its result, never lost
        last = "".join(traceback.format_exception_only(error)).strip()
        record = {"error": f"{last}\n\n{''.join(traceback.format_exception(error)).strip()}",
                  "error_type": type(error).__name__}
    record["seconds"] = time.monotonic() - started
    record["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    try:
        _write(result_path, record)
    except Exception as error:  # e.g. the experiment returned objects that do not pickle
        _write(result_path, {"error": f"the experiment's result could not be pickled: "
                                      f"{error!r}; return plain values",
                             "error_type": type(error).__name__, "seconds": record["seconds"],
                             "warnings": record["warnings"]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
