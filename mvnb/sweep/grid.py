"""A sweep's runs: a grid of parameter sets (a dict of lists, or a DataFrame) times ``repeat``.

Each run gets a run id, its repetition number and a seed drawn from the sweep's seed
(numpy's ``SeedSequence``: the same ``seed=`` gives every run the same seed again). Repeats
are interleaved (every parameter set once, then every set again, ...) so that a host
whose load changes during a sweep spreads that change over all the sets alike.

A ``guest`` in the grid (a :class:`~mvnb.vm.Guest`, a Debian ABI such as ``"6.1.0-57"``, or
None for Debian's cloud kernel) becomes a :class:`GuestSpec`: something each worker turns
into a guest from its own cache, since a path on this machine means nothing on another.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..cache import cache_dir
from ..errors import Error
from ..vm import Guest
from ..vm.debian import ABI_PATTERN, FLAVOURS, debian

__all__ = ["RESERVED", "GuestSpec", "Run", "SweepError", "expand", "guest_spec"]

#: Columns the sweep itself writes into the results; a grid may not use these names.
RESERVED = ("run", "repeat", "seed", "outcome", "attempts", "duration_s", "experiment_s",
            "error", "worker", "load_before", "warnings", "reproducible")


class SweepError(Error):
    """A sweep cannot start or go on: a bad grid, a cluster without ``vm`` slots, a worker
    without the guest or QEMU build it needs."""


@dataclasses.dataclass(frozen=True)
class GuestSpec:
    """A guest as a worker finds it: one of Debian's builds (``flavour``, ``abi``) from
    the worker's cache, fetched there when missing, or kernel files at ``kernel`` and
    ``symbols`` that must exist on the worker's machine."""

    name: str
    flavour: str | None = None
    abi: str | None = None
    kernel: str | None = None
    symbols: str | None = None
    cmdline: str | None = None
    nokaslr: bool = True

    def resolve(self) -> Guest:
        """The guest on this machine; a Debian build missing from the cache is fetched."""
        if self.flavour is not None:
            guest = debian(self.flavour, self.abi, progress=False)
            if self.cmdline is not None and (self.cmdline != guest.cmdline
                                             or self.nokaslr != guest.nokaslr):
                guest = dataclasses.replace(guest, cmdline=self.cmdline, nokaslr=self.nokaslr)
            return guest
        assert self.kernel is not None
        return Guest(kernel=Path(self.kernel), symbols=self.symbols and Path(self.symbols),
                     cmdline=self.cmdline or "console=ttyS0", name=self.name,
                     nokaslr=self.nokaslr)

    def __str__(self) -> str:
        return self.name


def guest_spec(value: Any) -> GuestSpec:
    """A :class:`GuestSpec` from what a grid may hold for ``guest``.

    None: Debian's cloud kernel, the newest build cached here (so every worker boots the
    same build), else the one apt offers each worker. A string: a Debian cloud-kernel ABI
    (``"6.1.0-57"``). A ``Guest``: one of Debian's (found in mvnb's cache) by flavour and
    ABI, any other by its files.
    """
    if isinstance(value, GuestSpec):
        return value
    if value is None:
        from ..vm.debian import cached

        found = cached("cloud-amd64")
        if found is None:
            return GuestSpec(name="debian-cloud-amd64 (newest)", flavour="cloud-amd64")
        value = found
    if isinstance(value, str):
        abi = value.strip().removesuffix("-cloud-amd64")
        if not ABI_PATTERN.fullmatch(abi):
            raise SweepError(f"guest={value!r}: give a Guest, None (Debian's cloud kernel) or "
                             "a Debian cloud-kernel ABI such as 6.1.0-57")
        return GuestSpec(name=f"debian-cloud-{abi}-cloud-amd64", flavour="cloud-amd64",
                         abi=abi)
    if not isinstance(value, Guest):
        raise SweepError(f"guest={value!r} is no guest: give a mvnb.Guest, None or an ABI")
    debian_root = cache_dir() / "debian"
    match = re.fullmatch(r"vmlinuz-(\d+\.\d+\.\d+-\d+)-(.+)", value.kernel.name)
    if (match and match[2] in FLAVOURS and value.kernel.is_relative_to(debian_root)
            and value.symbols == value.kernel.with_name(f"vmlinux-{match[1]}-{match[2]}")):
        return GuestSpec(name=value.name, flavour=match[2], abi=match[1],
                         cmdline=value.cmdline, nokaslr=value.nokaslr)
    return GuestSpec(name=value.name, kernel=str(value.kernel),
                     symbols=None if value.symbols is None else str(value.symbols),
                     cmdline=value.cmdline, nokaslr=value.nokaslr)


@dataclasses.dataclass(frozen=True)
class Run:
    """One run: its id, repetition, seed and parameter set (``guest`` as a GuestSpec)."""

    run: int
    repeat: int
    seed: int
    params: dict[str, Any]

    @property
    def reproducible(self) -> bool:
        """Guest time follows instructions (``icount`` set), so the guest's side repeats."""
        return self.params.get("icount") is not None


def _none(value: Any) -> Any:
    """A DataFrame's NaN/NaT/None as None; anything else as it is."""
    if value is None:
        return None
    try:
        return None if isinstance(value, float) and math.isnan(value) else (
            None if value is pd.NaT else value)
    except TypeError:
        return value


def _sets(grid: Mapping[str, Any] | pd.DataFrame) -> list[dict[str, Any]]:
    if isinstance(grid, pd.DataFrame):
        return [{str(k): _none(v) for k, v in row.items()} for row in grid.to_dict("records")]
    if not isinstance(grid, Mapping):
        raise SweepError(f"grid must be a dict of lists or a DataFrame, not "
                         f"{type(grid).__name__}")
    names, values = [], []
    for name, options in grid.items():
        if isinstance(options, str | bytes) or not isinstance(options, Sequence | np.ndarray
                                                                 | pd.Index | pd.Series):
            options = [options]  # a single value: one option
        if len(options) == 0:
            raise SweepError(f"grid[{name!r}] is empty: give at least one value")
        names.append(str(name))
        values.append(list(options))
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def expand(grid: Mapping[str, Any] | pd.DataFrame, repeat: int = 1,
           seed: int | None = None) -> tuple[list[Run], int]:
    """The runs of ``grid`` × ``repeat`` and the sweep's seed (drawn when ``seed`` is None,
    so a sweep can be repeated with the seed its attrs record)."""
    if int(repeat) < 1:
        raise SweepError(f"repeat must be at least 1, not {repeat}")
    sets = _sets(grid)
    if not sets:
        raise SweepError("the grid has no parameter sets")
    clash = sorted({k for s in sets for k in s} & set(RESERVED))
    if clash:
        raise SweepError(f"grid columns {clash} are names the sweep writes itself "
                         f"({', '.join(RESERVED)}); rename them")
    for params in sets:
        params["guest"] = guest_spec(params.get("guest"))
    root = int(np.random.SeedSequence(seed).entropy) if seed is None else int(seed)
    seeds = np.random.SeedSequence(root).spawn(len(sets) * int(repeat))
    runs = []
    for r in range(int(repeat)):
        for i, params in enumerate(sets):
            n = r * len(sets) + i
            runs.append(Run(n, r, int(seeds[n].generate_state(1, np.uint32)[0]), dict(params)))
    return runs, root
