"""The Dask cluster a sweep runs on: a ``LocalCluster`` sized for VMs, or the user's own.

A guest under TCG keeps a core busy, so the local cluster has one worker process per core
(``os.cpu_count()``), one thread each, and a ``vm`` resource of 1 on each worker; every run
asks for one ``vm``, so no worker runs more guests than it has slots. The scheduler, the
workers and the dashboard listen on 127.0.0.1 only. The scheduler records a worker's death
at once (``allowed-failures`` 0) and the sweep retries such a run once itself, so "retried
once" means once here; on a cluster of your own its scheduler's ``allowed-failures``
(Dask's default: 3) applies first.

On a cluster of your own, start the workers with ``--resources vm=N`` (N guests at a time
on that worker: ``dask worker ADDRESS --nthreads 1 --resources vm=1``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from .grid import SweepError

__all__ = ["RESOURCE", "check_resources", "cluster_workers", "dashboard_link", "local_cluster"]

#: The worker resource each run takes one of.
RESOURCE = "vm"


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Start the cluster's processes with SIGINT ignored (inherited; Python then installs no
    KeyboardInterrupt handler in them): a Ctrl-C in a terminal reaches the whole process
    group, and must stop the sweep, not kill its workers under it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def local_cluster(workers: int | None = None, *, dashboard: bool = True,
                  **kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` for VMs: ``workers`` processes (default: one per
    core), one thread and one ``vm`` slot each, everything on 127.0.0.1.

    The dashboard (it needs ``bokeh``) listens on a free port of 127.0.0.1 when
    ``dashboard`` and bokeh is installed. ``kwargs`` go to ``LocalCluster``.
    """
    import dask
    from distributed import LocalCluster

    count = int(workers) if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise SweepError(f"workers must be at least 1, not {workers}")
    with_dashboard = dashboard and importlib.util.find_spec("bokeh") is not None
    options: dict[str, Any] = {
        "n_workers": count, "threads_per_worker": 1, "processes": True,
        "resources": {RESOURCE: 1}, "host": "127.0.0.1", "scheduler_port": 0,
        # the scheduler always serves HTTP (health, metrics; the dashboard with bokeh):
        # on 127.0.0.1, a free port
        "dashboard_address": "127.0.0.1:0", "worker_dashboard_address": None,
        "silence_logs": 40,
        **kwargs,
    }
    settings = {"distributed.scheduler.allowed-failures": 0,
                # a run's child process keeps the worker's memory small; never pause on it
                "distributed.worker.memory.pause": False}
    if not with_dashboard:
        options.setdefault("scheduler_kwargs", {})["dashboard"] = False
    with dask.config.set(settings), _sigint_ignored():
        cluster = LocalCluster(**options)
    cluster.mvnb_dashboard = with_dashboard
    return cluster


def check_resources(client: Any) -> int:
    """How many ``vm`` slots the client's workers offer; SweepError when none does."""
    workers = cluster_workers(client)
    slots = sum(float(w.get("resources", {}).get(RESOURCE, 0)) for w in workers.values())
    if not workers:
        raise SweepError(f"the cluster at {client.scheduler.address} has no workers; start "
                         "some with `dask worker ADDRESS --nthreads 1 --resources vm=1`")
    if slots < 1:
        raise SweepError(
            f"no worker of the cluster at {client.scheduler.address} has a {RESOURCE!r} "
            f"resource, so no run could start; start the workers with `--resources "
            f"{RESOURCE}=1` (one guest at a time per worker; `{RESOURCE}=N` for N), or let "
            "mvnb.sweep.run start a LocalCluster (client=None)")
    return int(slots)


def cluster_workers(client: Any) -> dict[str, dict[str, Any]]:
    """The scheduler's record of every worker (address → info: host, resources, ...)."""
    import inspect

    if "n_workers" in inspect.signature(client.scheduler_info).parameters:
        return dict(client.scheduler_info(n_workers=-1).get("workers", {}))
    return dict(client.scheduler_info().get("workers", {}))


def dashboard_link(client: Any) -> str | None:
    """The dashboard's address, when the scheduler serves one."""
    cluster = getattr(client, "cluster", None)
    if cluster is not None and getattr(cluster, "mvnb_dashboard", True) is False:
        return None  # our cluster, without bokeh: its HTTP server has no dashboard
    try:
        info = client.scheduler_info()
        if "dashboard" not in info.get("services", {}):
            return None
        return str(client.dashboard_link)
    except Exception:  # no dashboard is no reason to fail a sweep
        return None
