"""Sweeps: the same experiment over many boots, on Dask, from one machine to many.

``mvnb.sweep.run(experiment, grid, repeat=, timeout=, path=, client=)`` runs
``experiment(params)`` for every parameter set of ``grid`` on a Dask cluster (a
``LocalCluster`` sized for VMs unless you pass a ``distributed.Client``) and returns one
DataFrame. Ready-made experiments: :class:`Sample` (boot to a location and sample columns)
and :class:`Reach` (boot once and say how far the guest got and why it stopped);
:func:`rates` summarises by condition and :func:`plot_rates` draws it.
Needs Dask's distributed scheduler: ``pip install 'mvnb[sweep]'``.
"""

from __future__ import annotations

import importlib.util

from ..errors import MissingTool

if importlib.util.find_spec("distributed") is None or importlib.util.find_spec(
        "cloudpickle") is None:
    raise MissingTool("mvnb.sweep needs Dask's distributed scheduler: install it with "
                      "`pip install 'mvnb[sweep]'` (or `pip install 'dask[distributed]'`)")

from .cluster import local_cluster
from .experiments import DEFAULT_COLUMNS, Reach, Sample, guest_of, qemu_options
from .grid import GuestSpec, SweepError
from .plots import plot_rates
from .results import OUTCOMES
from .run import run
from .summary import rates, wilson

__all__ = ["DEFAULT_COLUMNS", "OUTCOMES", "GuestSpec", "Reach", "Sample", "SweepError",
           "guest_of", "local_cluster", "plot_rates", "qemu_options", "rates", "run",
           "wilson"]
