"""Ready-made experiments, and the grid columns they read.

An experiment is a plain function of one parameter set (a dict keyed by the grid's
columns, plus ``repeat`` and ``seed``; ``guest`` is a :class:`~mvnb.vm.Guest` from the
worker's cache) that returns a DataFrame or a dict of scalars. The ones here are callable
dataclasses, so they carry their own settings to the workers:

- :class:`Sample`: boot to a location with ``boot_to`` and sample columns there;
- :class:`Reach`: boot once, plainly, and say how far the guest got and why it stopped:
  ``reached`` the location, ``stuck`` at a known trap (the VM's guards,
  :func:`mvnb.vm.known_traps`: on Debian's 6.1 kernel on microvm the failed TSC
  calibration, ``calibrate_delay_converge``), ``panic``, ``exited`` or ``timeout``.

Grid columns both read (:func:`qemu_options`): ``machine``, ``cpu`` (``-cpu``),
``icount`` (a shift; None for free-running TCG), ``qemu`` (a build: "10.0", a path; None
for the system's), ``memory``, ``cpus``, ``cmdline`` (words added to the guest's command
line), ``guest``. ``host_load`` is the runner's (:mod:`mvnb.sweep.runner`).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..errors import TargetExited, TargetStuck, TargetTimeout
from ..vm import Guest, Qemu, boot_to
from ..x86 import TIMER_CCR, TSC

__all__ = ["DEFAULT_COLUMNS", "Reach", "Sample", "guest_of", "qemu_options"]

#: What :class:`Sample` records by default at each hit (``lapic_cal_handler``'s state).
DEFAULT_COLUMNS: dict[str, Any] = {"loops": "lapic_cal_loops", "ccr": TIMER_CCR, "tsc": TSC,
                                   "jiffies": "jiffies"}
_QEMU_KEYS = ("machine", "memory", "cpus", "icount", "qemu")


def guest_of(params: Mapping[str, Any]) -> Guest:
    """The run's guest, with the grid's ``cmdline`` words added to its command line."""
    guest = params["guest"]
    if not isinstance(guest, Guest):
        raise TypeError(f"params['guest'] is {guest!r}, not a Guest: experiments get the "
                        "guest from mvnb.sweep.run, which resolves it on the worker")
    extra = params.get("cmdline")
    if extra:
        guest = dataclasses.replace(guest, cmdline=f"{guest.cmdline} {extra}")
    return guest


def qemu_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """``mvnb.Qemu`` keyword arguments from the grid's columns (absent or None: the default)."""
    options = {k: params[k] for k in _QEMU_KEYS if params.get(k) is not None}
    if "icount" in options:
        options["icount"] = int(options["icount"])
    if "cpus" in options:
        options["cpus"] = int(options["cpus"])
    extra: list[str] = []
    if params.get("cpu"):
        extra += ["-cpu", str(params["cpu"])]
    if params.get("extra_args"):
        extra += list(params["extra_args"])
    if extra:
        options["extra_args"] = extra
    return options


def _tsc_lines(console: str) -> str:
    """The console's ``tsc:`` lines, without their timestamps, one per line."""
    return "\n".join(re.sub(r"^\[\s*[\d.]+\]\s*", "", line).strip()
                     for line in console.splitlines() if "tsc:" in line)


@dataclasses.dataclass(frozen=True)
class Sample:
    """Boot to ``location`` (``mvnb.boot_to``, past the TSC trap) and record ``columns`` at
    ``count`` hits there (``Session.sample``): one row per hit."""

    location: str = "lapic_cal_handler"
    columns: Mapping[str, Any] | Sequence[Any] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_COLUMNS))
    count: int = 1
    timeout: float = 120.0
    attempts: int = 4

    def __call__(self, params: Mapping[str, Any]) -> pd.DataFrame:
        started = time.monotonic()
        vm, session, _ = boot_to(guest_of(params), self.location, attempts=self.attempts,
                                 timeout=self.timeout, **qemu_options(params))
        with vm:
            booted = time.monotonic() - started
            frame = session.sample(self.location, self.columns, count=self.count,
                                   timeout=self.timeout, progress=False)
            frame["boot_s"] = round(booted, 3)
            frame["cmdline_used"] = vm.guest.full_cmdline
            return frame


@dataclasses.dataclass(frozen=True)
class Reach:
    """Boot once with ``mvnb.Qemu`` (no retry, no ``tsc_early_khz=``), a hardware breakpoint
    at ``location`` and one at ``panic``, and continue: where did the guest stop, and why.

    Columns: ``status`` (reached, stuck, panic, exited, timeout), ``stopped_in`` (the
    function), ``boot_s`` (host seconds from reset to the stop), ``tsc`` (the console's
    ``tsc:`` lines), ``console_last`` (its last line), ``qemu_version``, ``kernel``.
    """

    location: str = "lapic_cal_handler"
    timeout: float = 60.0
    panic: str | None = "panic"
    guards: bool = True

    def __call__(self, params: Mapping[str, Any]) -> dict[str, Any]:
        with Qemu(guest_of(params), guards=self.guards, **qemu_options(params)) as vm:
            session = vm.session()
            target = session.hbreak(self.location)
            panic = session.hbreak(self.panic) if self.panic else None
            started = time.monotonic()
            status, where = "reached", None
            try:
                stop = session.cont(timeout=self.timeout)
                where = stop.frame.function if stop.frame is not None else None
                if panic is not None and stop.breakpoint is panic:
                    status = "panic"
                elif stop.breakpoint is not target:
                    status = f"stopped ({stop.reason})"
            except TargetStuck as error:
                status = "stuck"
                frame = getattr(error.stop, "frame", None)
                where = frame.function if frame is not None else None
            except TargetTimeout as error:
                status = "timeout"
                frame = getattr(error.stop, "frame", None)
                where = frame.function if frame is not None else None
            except TargetExited:
                status = "exited"
            seconds = time.monotonic() - started
            console = vm.serial()
            provenance = vm.provenance()
            return {"status": status, "stopped_in": where, "boot_s": round(seconds, 3),
                    "tsc": _tsc_lines(console),
                    "console_last": (console.strip().splitlines() or [""])[-1],
                    "qemu_version": provenance.get("qemu"), "kernel": provenance.get("kernel")}
