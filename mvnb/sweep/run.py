"""``mvnb.sweep.run``: one experiment over a grid of parameter sets, on Dask.

With no client it starts a :func:`~mvnb.sweep.cluster.local_cluster` (a worker process
per core, one ``vm`` slot each, on 127.0.0.1) and shuts it down after; with a
``distributed.Client`` it uses that cluster as it is. Each run goes to a worker as a task
that asks for one ``vm`` slot, and the worker's runner (:mod:`mvnb.sweep.runner`) runs it
in a process of its own under the sweep's timeout. A run whose worker died is submitted
once more, then recorded as ``worker-died``. Ctrl-C cancels what has not finished and
returns the rows of the runs that have (``attrs["interrupted"]``); ``path=`` has them too,
written as each run finished.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import platform
import secrets
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from .cluster import RESOURCE, check_resources, dashboard_link, local_cluster
from .grid import Run, SweepError, expand
from .pickling import dumps
from .prepare import prepare as prepare_workers
from .progress import SweepProgress
from .results import OUTCOMES, ResultFile, jsonable, order, rows_of
from .runner import execute

__all__ = ["REPRODUCIBLE_NOTE", "run"]

_SLICE = 0.5  # seconds between looks at the running count while no run finishes
REPRODUCIBLE_NOTE = (
    "rows with reproducible=True ran under icount (-icount shift=N,sleep=off): guest time "
    "follows the instructions executed, so the guest's side of every repeat is the same "
    "(a repeat that differs is a finding); the other rows ran on free TCG, where guest time "
    "follows the host's clock and load")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _describe(experiment: Callable[..., Any]) -> str:
    name = getattr(experiment, "__qualname__", None)
    if name is None:  # a callable instance, e.g. Reach(location=...)
        return repr(experiment)
    return f"{getattr(experiment, '__module__', '?')}.{name}"


def run(experiment: Callable[[dict[str, Any]], Any],
        grid: Mapping[str, Any] | pd.DataFrame, *, client: Any = None, repeat: int = 1,
        timeout: float | None = 600.0, path: str | os.PathLike[str] | None = None,
        seed: int | None = None, workers: int | None = None, progress: bool = True,
        prepare_timeout: float = 3600.0) -> pd.DataFrame:
    """Run ``experiment(params)`` for every parameter set of ``grid``, ``repeat`` times.

    ``grid``: a dict of lists (every combination) or a DataFrame (one set per row).
    ``timeout``: seconds a run may take (None: no limit); the runner ends it and its QEMU
    and GDB then, and the run is recorded as ``timeout``. ``seed``: the sweep's seed, from
    which each run's seed is drawn (recorded in ``attrs["seed"]`` when drawn at random).
    ``workers``: the local cluster's size (default: the number of cores). Returns one
    DataFrame (columns: :mod:`mvnb.sweep.results`); ``attrs`` hold the provenance.
    """
    if not callable(experiment):
        raise SweepError(f"experiment must be callable with one parameter set, not "
                         f"{experiment!r}")
    runs, root_seed = expand(grid, repeat, seed)
    blob = dumps(experiment)
    sweep_id = secrets.token_hex(4)
    out = ResultFile(path) if path is not None else None
    params = list(dict.fromkeys(k for r in runs for k in r.params))
    attrs: dict[str, Any] = {
        "sweep": sweep_id, "experiment": _describe(experiment), "grid": params,
        "repeat": int(repeat), "seed": root_seed, "timeout": timeout, "runs": len(runs),
        "reproducible": REPRODUCIBLE_NOTE,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "provenance": {"mvnb": _version("mvnb"), "dask": _version("distributed"),
                       "python": platform.python_version(),
                       "driver": {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
                                  "platform": platform.platform()}},
    }
    own = client is None
    cluster = None
    frames: list[pd.DataFrame] = []
    interrupted = False
    run_attrs: dict[int, Any] = {}
    try:
        if own:
            from distributed import Client

            cluster = local_cluster(workers)
            client = Client(cluster, set_as_default=False)
            n = len(cluster.workers)
            attrs["provenance"]["cluster"] = (f"LocalCluster: {n} worker process"
                                              f"{'es' if n != 1 else ''}, 1 thread and "
                                              f"{RESOURCE}=1 each")
        else:
            attrs["provenance"]["cluster"] = f"scheduler {client.scheduler.address}"
        check_resources(client)
        attrs["provenance"]["workers"] = prepare_workers(client, runs, timeout=prepare_timeout)
        if out is not None:
            out.write_attrs(attrs)
        interrupted = _drive(client, runs, blob, sweep_id, timeout, out, frames, run_attrs,
                             progress)
    finally:
        if own:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
    frame = order(pd.concat(frames, ignore_index=True), params) if frames else pd.DataFrame(
        columns=["run", "repeat", "seed", *params, "outcome"])
    attrs["interrupted"] = interrupted
    attrs["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    counts = frame.drop_duplicates("run")["outcome"].value_counts() if len(frame) else {}
    attrs["counts"] = {k: int(counts.get(k, 0)) for k in OUTCOMES}
    attrs["finished"] = int(sum(attrs["counts"].values()))
    attrs["experiment_attrs"] = run_attrs
    frame.attrs = jsonable(attrs)
    if out is not None:
        out.write_attrs(frame.attrs)
    if interrupted:
        warnings.warn(f"sweep interrupted: {attrs['finished']} of {len(runs)} runs finished "
                      "and are returned", RuntimeWarning, stacklevel=2)
    return frame


def _task(run: Run, blob: bytes, sweep_id: str, timeout: float | None) -> dict[str, Any]:
    return {"sweep": sweep_id, "run": run.run, "experiment": blob, "params": {
        **run.params, "repeat": run.repeat, "seed": run.seed}, "seed": run.seed,
        "timeout": timeout}


def _drive(client: Any, runs: list[Run], blob: bytes, sweep_id: str, timeout: float | None,
           out: ResultFile | None, frames: list[pd.DataFrame], run_attrs: dict[int, Any],
           progress: bool) -> bool:
    """Submit the runs, collect each as it finishes; True if interrupted (Ctrl-C)."""
    from distributed import wait

    killed_worker = _killed_worker_type()
    pending: dict[Any, tuple[Run, int]] = {}
    started: set[tuple[int, int]] = set()  # (run, attempt) that began on a worker
    requeued: dict[int, int] = {}
    keys = itertools.count()

    def submit(run: Run, attempt: int) -> None:
        task = {**_task(run, blob, sweep_id, timeout), "attempt": attempt}
        future = client.submit(execute, task,
                               key=f"mvnb-run-{sweep_id}-{run.run}-{next(keys)}",
                               resources={RESOURCE: 1}, pure=False, retries=0,
                               priority=-run.run)  # first in the grid, first to run
        pending[future] = (run, attempt)

    topic = f"mvnb-sweep-{sweep_id}"
    client.subscribe_topic(topic, lambda event: started.add(
        (event[1]["run"], event[1]["attempt"])))
    for run in runs:
        submit(run, 1)
    bar = SweepProgress(len(runs), dashboard=dashboard_link(client), enabled=progress)
    try:
        while pending:
            try:
                with client.as_current():
                    done = wait(list(pending), timeout=_SLICE,
                                return_when="FIRST_COMPLETED").done
            except TimeoutError:
                done = set()
            for future in done:
                run, attempt = pending.pop(future)
                record = _record(future, killed_worker)
                future.release()
                if record is None:  # its worker died
                    if (run.run, attempt) not in started and requeued.get(run.run, 0) < 3:
                        # it was waiting on that worker, not running: not an attempt
                        requeued[run.run] = requeued.get(run.run, 0) + 1
                        submit(run, attempt)
                        continue
                    if attempt == 1:
                        submit(run, 2)
                        continue
                    record = {"outcome": "worker-died", "error": (
                        f"the worker running this run died, in each of {attempt} attempts")}
                rows = rows_of(run, record, attempt)
                if record.get("attrs"):
                    run_attrs[run.run] = record["attrs"]
                frames.append(rows)
                if out is not None:
                    out.append(rows)
                bar.done(record["outcome"] == "ok")
            bar.set_running(sum(1 for r, a in pending.values() if (r.run, a) in started))
    except KeyboardInterrupt:
        client.cancel(list(pending))
        return True
    finally:
        bar.close()
        client.unsubscribe_topic(topic)
    return False


def _killed_worker_type() -> type[BaseException]:
    from distributed.scheduler import KilledWorker

    return KilledWorker


def _record(future: Any, killed_worker: type[BaseException]) -> dict[str, Any] | None:
    """The runner's record, an error record, or None when the run's worker died."""
    if future.status == "finished":
        record = future.result()
        if record.get("outcome") == "cancelled":
            record = {**record, "outcome": "error",
                      "error": "the run was cancelled on its worker (not by this sweep)"}
        return record
    if future.status != "error":  # cancelled or lost: the cluster dropped it
        return {"outcome": "error", "error": f"the cluster dropped the run (its future is "
                                             f"{future.status}: scheduler restarted, or the "
                                             "client lost it)"}
    error = future.exception()
    if isinstance(error, killed_worker):
        return None
    return {"outcome": "error", "error": f"the runner failed on its worker: {error!r}"}

