"""Before a sweep: every worker has the guests and QEMU builds its runs boot.

Workers on one machine share its cache (``mvnb.cache.cache_dir()``), so one worker per
machine (per host address) fetches what is missing (Debian's kernel and symbols, a QEMU
build from bookworm-backports), and only then does every worker check that it finds them.
A worker that cannot stops the sweep before any run starts, naming the worker, its machine
and what it said. What each worker found (QEMU, GDB and kernel versions, the host) is the
sweep's provenance.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Iterable
from typing import Any

from .. import _proc
from ..errors import Error
from ..vm import resolve_qemu
from ..vm.builds import fetch_qemu
from ..vm.elf import bzimage_version
from .cluster import cluster_workers
from .grid import GuestSpec, Run, SweepError

__all__ = ["needs", "on_worker", "prepare"]

_VERSION_TIMEOUT = 30.0


def needs(runs: Iterable[Run]) -> tuple[list[GuestSpec], list[str | None]]:
    """The guests and QEMU builds (None: the system's, or $MVNB_QEMU) the runs boot."""
    guests: dict[GuestSpec, None] = {}
    qemus: dict[str | None, None] = {}
    for run in runs:
        guests[run.params["guest"]] = None
        qemus[_qemu_key(run.params.get("qemu"))] = None
    return list(guests), list(qemus)


def _qemu_key(value: Any) -> str | None:
    return None if value is None else os.fspath(value) if not isinstance(value, str) else value


def _gdb_version() -> str:
    path = shutil.which("gdb")
    if path is None:
        return "not installed"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=_VERSION_TIMEOUT).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    return out.splitlines()[0].strip() if out else "unknown"


def on_worker(guests: list[GuestSpec], qemus: list[str | None], fetch: bool) -> dict[str, Any]:
    """Runs on a worker: find (``fetch``: or fetch) each guest and QEMU build; what was
    found, with this machine's GDB and host. Raises SweepError naming what is missing."""
    found: dict[str, Any] = {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
                             "platform": platform.platform(), "python": platform.python_version(),
                             "gdb": _gdb_version(), "guests": {}, "qemu": {}}
    problems = []
    _proc.require("gdb")
    for spec in guests:
        try:
            guest = spec.resolve()
            try:
                found["guests"][spec.name] = bzimage_version(guest.kernel)
            except (Error, OSError):  # not a bzImage (an ELF kernel): what the guest says
                found["guests"][spec.name] = guest.version or guest.name
        except Error as error:
            problems.append(f"guest {spec.name}: {error}")
    for version in qemus:
        try:
            try:
                build = resolve_qemu(version)
            except Error:
                if not (fetch and version is not None and version.replace(".", "").isdigit()):
                    raise
                build = fetch_qemu(version, progress=False)
            found["qemu"][str(version)] = {"version": build.version, "package": build.package,
                                           "origin": build.origin, "binary": str(build.binary)}
        except Error as error:
            problems.append(f"QEMU {version or '(default)'}: {error}")
    if problems:
        raise SweepError("; ".join(problems))
    return found


def prepare(client: Any, runs: list[Run], *, timeout: float = 3600.0) -> dict[str, Any]:
    """Make sure every worker of ``client`` has what ``runs`` need; what each worker found,
    by worker address. SweepError (before any run) when a worker cannot."""
    from distributed import wait

    guests, qemus = needs(runs)
    workers = cluster_workers(client)
    by_host: dict[str, list[str]] = {}
    for address, info in workers.items():
        by_host.setdefault(str(info.get("host", address)), []).append(address)
    found: dict[str, Any] = {}
    for fetch, chosen in ((True, [a[0] for a in by_host.values()]),
                          (False, [a for addrs in by_host.values() for a in addrs[1:]])):
        futures = {address: client.submit(on_worker, guests, qemus, fetch, workers=[address],
                                          allow_other_workers=False, pure=False,
                                          key=f"mvnb-prepare-{'fetch' if fetch else 'check'}-"
                                              f"{address}")
                   for address in chosen}
        if not futures:
            continue
        try:
            with client.as_current():
                wait(list(futures.values()), timeout=timeout)
        except TimeoutError:
            client.cancel(list(futures.values()))
            late = [a for a, f in futures.items() if not f.done()]
            raise SweepError(f"workers {late} did not find or fetch the guests and QEMU "
                             f"builds within {timeout} s") from None
        for address, future in futures.items():
            error = future.exception()
            if error is not None:
                host = workers[address].get("host", address)
                raise SweepError(
                    f"worker {address} (machine {host}) cannot run this sweep: {error}. Fetch "
                    "what is missing there (`mvnb guest fetch`, `mvnb qemu fetch --version "
                    "X`), or copy your kernel files to the same path on every machine")
            found[address] = future.result()
    return found

