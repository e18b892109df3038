"""Timer counts as frames: counter preparation, rate fits, drift and jitter, and replays of
the kernels' timer calibrations (FreeBSD ``clockcalib``, Linux ``calibrate_APIC_clock``,
NetBSD ``lapic_calibrate_timer``) on sampled data.

The sampler itself (``Session.sample``) lives with the session; everything here is pure
computation on numpy arrays and pandas frames. The ``plot_*`` functions load matplotlib on
first use, so importing this package does not.
"""

from typing import Any

from mvnb.timing._reference import HOST_TIME_COLUMNS, HostTimeWarning
from mvnb.timing.counters import (
    ACPI_PM_BITS,
    ACPI_PM_HZ,
    HPET_HZ,
    PIT_BITS,
    PIT_HZ,
    QEMU_LAPIC_BUS_HZ,
    countdown_elapsed,
    dcr_divisor,
    elapsed,
    jiffies_seconds,
    lapic_timer_hz,
    to_seconds,
    unwrap,
)
from mvnb.timing.drift import Diagnosis, Finding, Jitter, diagnose, jitter, windowed_drift
from mvnb.timing.fit import RateFit, fit_rate
from mvnb.timing.frame import SAMPLE_METHODS, sample_attrs
from mvnb.timing.freebsd import (
    DUMMY_TC_FREQUENCY,
    ClockCalibration,
    clockcalib,
    dummy_timecounter,
)
from mvnb.timing.linux import (
    APIC_DIVISOR,
    LINUX_APIC_CAL_VARIABLES,
    ApicCheck,
    LinuxApicCalibration,
    linux_calibrate_apic,
)
from mvnb.timing.linux_apic_verbose import LinuxApicVerbose, linux_apic_verbose
from mvnb.timing.netbsd import NetbsdLapicCalibration, netbsd_calibrate_lapic

__all__ = [
    "ACPI_PM_BITS",
    "ACPI_PM_HZ",
    "APIC_DIVISOR",
    "DUMMY_TC_FREQUENCY",
    "HOST_TIME_COLUMNS",
    "HPET_HZ",
    "LINUX_APIC_CAL_VARIABLES",
    "PIT_BITS",
    "PIT_HZ",
    "QEMU_LAPIC_BUS_HZ",
    "SAMPLE_METHODS",
    "ApicCheck",
    "ClockCalibration",
    "Diagnosis",
    "Finding",
    "HostTimeWarning",
    "Jitter",
    "LinuxApicCalibration",
    "LinuxApicVerbose",
    "NetbsdLapicCalibration",
    "RateFit",
    "clockcalib",
    "countdown_elapsed",
    "dcr_divisor",
    "diagnose",
    "dummy_timecounter",
    "elapsed",
    "fit_rate",
    "jiffies_seconds",
    "jitter",
    "lapic_timer_hz",
    "linux_apic_verbose",
    "linux_calibrate_apic",
    "netbsd_calibrate_lapic",
    "plot_clockcalib",
    "plot_counts",
    "plot_drift",
    "plot_intervals",
    "plot_rate_histogram",
    "plot_residuals",
    "sample_attrs",
    "to_seconds",
    "unwrap",
    "windowed_drift",
]

_PLOTS = ("plot_clockcalib", "plot_counts", "plot_drift", "plot_intervals",
          "plot_rate_histogram", "plot_residuals")


def __getattr__(name: str) -> Any:
    if name in _PLOTS:
        from mvnb.timing import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'mvnb.timing' has no attribute {name!r}")
