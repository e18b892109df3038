"""The metadata a sample frame carries in ``DataFrame.attrs``.

``Session.sample`` (issue 4) records how the rows were taken so the analysis can judge
them: the method ("gdb-python" collector or the "mi" loop, or "periodic" interrupts),
the breakpoint location, whether the run was interrupted, and the provenance (QEMU
version, guest kernel, command line).  Every such row is taken with the guest stopped, so
``stops`` is True and host time is no reference across rows (see
:class:`mvnb.timing.HostTimeWarning`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SAMPLE_METHODS", "sample_attrs"]

#: How a sampler can take its rows.
SAMPLE_METHODS = ("gdb-python", "mi", "periodic")


def sample_attrs(
    method: str,
    location: str | None,
    *,
    interrupted: bool = False,
    provenance: Mapping[str, Any] | None = None,
    stops: bool = True,
    host_time: str | None = "host_ns",
    **extra: Any,
) -> dict[str, Any]:
    """The ``frame.attrs`` dict for a sample frame; plain data only, so it pickles and
    survives ``DataFrame.copy``.

    ``location`` is the breakpoint (None for periodic sampling); ``provenance`` e.g.
    ``{"qemu": "7.2.0", "kernel": "6.1.0-13-cloud-amd64", "cmdline": "..."}``;
    ``host_time`` names the host-clock column, if any; ``extra`` is kept as given.
    """
    if method not in SAMPLE_METHODS:
        raise ValueError(f"method must be one of {', '.join(SAMPLE_METHODS)}, not {method!r}")
    if method == "periodic" and location is not None:
        raise ValueError("periodic sampling has no breakpoint location; pass location=None")
    attrs: dict[str, Any] = {
        "method": method,
        "location": location,
        "interrupted": bool(interrupted),
        "stops": bool(stops),
        "host_time": host_time,
        "provenance": dict(provenance or {}),
    }
    attrs.update(extra)
    return attrs
