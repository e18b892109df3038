"""Host time is no reference across GDB stops.

While GDB holds the guest stopped, QEMU's guest clocks (LAPIC timer, PIT, HPET, the TCG
TSC) stand still and the host's monotonic clock keeps going (seen on QEMU 7.2: the LAPIC
current count read twice 2 s apart during one stop was identical; shared/facts/
x86-apic.md). The stop and the resume around it are not free: under free-running TCG each
moves the guest's clocks by some thousands of LAPIC counts the guest did not spend on its
own code (``frame.attrs["observer"]``, :mod:`mvnb.x86.observer`). Every sample
``Session.sample`` takes is such a stop, so a rate of a guest clock against ``host_ns``
measures the stops, not the guest clock. The analysis says so with a
:class:`HostTimeWarning` instead of reporting the gap as drift.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["HOST_TIME_COLUMNS", "HostTimeWarning", "host_reference_columns"]

#: Column names that hold host time rather than a guest clock.
HOST_TIME_COLUMNS = frozenset({"host_ns", "host_s", "host_time", "host_monotonic_ns"})


class HostTimeWarning(UserWarning):
    """A host-time column is used as a clock for samples taken at GDB stops."""


def _sampled_at_stops(frame: Any) -> bool:
    """Whether the rows were taken with the guest stopped (the default for mvnb frames).

    ``frame.attrs["stops"] = False`` says otherwise, e.g. for host-side logs taken while
    the guest ran.
    """
    attrs = getattr(frame, "attrs", None) or {}
    return bool(attrs.get("stops", True))


def host_reference_columns(frame: Any, *names: Any) -> list[str]:
    """The names among ``names`` that are host time, when ``frame`` was sampled at stops."""
    if not _sampled_at_stops(frame):
        return []
    return [str(n) for n in names if n is not None and str(n) in HOST_TIME_COLUMNS]


def host_reference_message(column: str) -> str:
    """What to tell the reader when ``column`` (host time) is used as a clock."""
    return (
        f"{column!r} is host monotonic time. QEMU's guest clocks (LAPIC, PIT, HPET, the TCG "
        "TSC) stand still while GDB holds the guest at each sample (only the stop and resume "
        "around it move them a little, see frame.attrs['observer']), and host time does not, "
        f"so a rate against {column!r} measures how long the stops took, not drift. Use a "
        "guest clock as the reference, or set frame.attrs['stops'] = False if the guest "
        "really ran between these rows."
    )


def warn_host_reference(frame: Any, *names: Any) -> list[str]:
    """Warn (:class:`HostTimeWarning`) for each host-time column among ``names``."""
    found = host_reference_columns(frame, *names)
    for column in found:
        warnings.warn(host_reference_message(column), HostTimeWarning, stacklevel=4)
    return found
