"""The host's TSC rate, where it came from, and how far to trust it.

Under TCG the guest's TSC is the host's (QEMU's ``cpu_get_host_ticks`` is ``rdtsc``), so
``tsc_early_khz=`` (:mod:`mvnb.vm.boot`) should be the host's TSC rate. Linux gives user
space no exact TSC rate, so the sources are tried best first:

1. CPUID leaf 0x15 (TSC/crystal ratio and crystal Hz, SDM Vol. 2A "CPUID"): exact, the
   CPU's own nominal rate; Intel since Skylake, and only with the crystal rate filled in.
2. CPUID leaf 0x40000010 (the hypervisor timing leaf, EAX = TSC kHz; VMware, some KVM
   setups): what the hypervisor says.
3. The host kernel's log: ``tsc: Refined TSC clocksource calibration: N MHz`` (its own
   measurement against HPET or the PM timer, arch/x86/kernel/tsc.c), else
   ``tsc: Detected N MHz TSC/processor``: a rate it was given (``tsc_known_freq``) or its
   quick calibration at boot.
4. /proc/cpuinfo ``cpu MHz``: the kernel's ``cpu_khz``, but the *effective* clock of the
   last few milliseconds where APERF/MPERF exist (flag ``aperfmperf``, arch/x86/kernel/
   cpu/aperfmperf.c); used only without that flag and with ``constant_tsc``.
5. CPUID leaf 0x16 EAX (nominal base MHz, whole MHz): the TSC runs near it, not at it.

CPUID is read through ``/dev/cpu/0/cpuid`` (the ``cpuid`` module, root) and the kernel
log through ``/dev/kmsg`` (readable when ``kernel.dmesg_restrict`` allows); each is skipped
when it cannot be read.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["HostTsc", "host_tsc", "host_tsc_khz"]

Cpuid = Callable[[int], tuple[int, int, int, int] | None]

_REFINED = re.compile(r"tsc: Refined TSC clocksource calibration: (\d+\.\d+) MHz")
_DETECTED_TSC = re.compile(r"tsc: Detected (\d+\.\d+) MHz TSC")  # when it differs from cpu_khz
_DETECTED = re.compile(r"tsc: Detected (\d+\.\d+) MHz processor")


@dataclasses.dataclass(frozen=True)
class HostTsc:
    """A host TSC rate in kHz, the source it was read from, and how far to trust it."""

    khz: int
    source: str
    note: str

    def __str__(self) -> str:
        return f"{self.khz} kHz from {self.source} ({self.note})"


def host_tsc(*, cpuid: Cpuid | None = None, kernel_log: Iterable[str] | None = None,
             cpuinfo: str | None = None) -> HostTsc | None:
    """The best host TSC rate this process can read (see the module docstring), or None.

    The arguments replace what is read from the host (for tests and other hosts):
    ``cpuid(leaf)`` returns (eax, ebx, ecx, edx) or None, ``kernel_log`` the kernel's log
    lines, ``cpuinfo`` the text of /proc/cpuinfo.
    """
    cpuid = _dev_cpuid if cpuid is None else cpuid
    log = list(_kmsg() if kernel_log is None else kernel_log)
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    basic = cpuid(0)
    top = basic[0] if basic else 0
    if top >= 0x15:
        leaf = cpuid(0x15)
        if leaf and leaf[0] and leaf[1] and leaf[2]:
            eax, ebx, ecx, _ = leaf
            return HostTsc(round(ecx * ebx / eax / 1000), "CPUID leaf 0x15",
                           f"exact: crystal {ecx} Hz x {ebx}/{eax}, the CPU's own TSC rate")
    features = cpuid(1) if top >= 1 else None
    under_hypervisor = bool(features and features[2] >> 31 & 1)  # CPUID.1:ECX[31]
    hyper = cpuid(0x40000000) if under_hypervisor else None
    if hyper and 0x40000010 <= hyper[0] < 0x40010000:
        leaf = cpuid(0x40000010)
        if leaf and leaf[0]:
            return HostTsc(leaf[0], "CPUID leaf 0x40000010",
                           "the hypervisor's timing leaf: the TSC rate it gives its guests")
    for pattern, note in (
        (_REFINED, "the host kernel's own calibration against HPET or the PM timer at boot, "
                   "kHz resolution"),
        (_DETECTED_TSC, None),
        (_DETECTED, None),
    ):
        for line in reversed(log):
            match = pattern.search(line)
            if match:
                if note is None:
                    note = ("the rate the host kernel was given (tsc_known_freq: CPUID, an "
                            "MSR or the hypervisor), kHz resolution"
                            if "tsc_known_freq" in _flags(cpuinfo) else
                            "the host kernel's quick calibration at boot; it can be a few "
                            "hundred ppm off (no refined calibration was logged)")
                return HostTsc(round(float(match.group(1)) * 1000),
                               f"host kernel log: {match.group(0)!r}", note)
    flags = _flags(cpuinfo)
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo.split("\n\n", 1)[0], re.M)
    if mhz and "constant_tsc" in flags and "aperfmperf" not in flags:
        known = "tsc_known_freq" in flags
        return HostTsc(round(float(mhz.group(1)) * 1000), '/proc/cpuinfo "cpu MHz"',
                       "the kernel's cpu_khz, " + (
                           "equal to its TSC rate (tsc_known_freq)" if known else
                           "usually its TSC rate as calibrated at boot")
                       + "; Linux gives user space no exact TSC rate")
    if top >= 0x16:
        leaf = cpuid(0x16)
        if leaf and leaf[0]:
            return HostTsc(leaf[0] * 1000, "CPUID leaf 0x16 (base frequency)",
                           "the CPU's nominal base clock in whole MHz: the TSC runs near "
                           "it, not exactly at it")
    return None


def host_tsc_khz(cpuinfo: str | None = None) -> int | None:
    """The host's TSC rate in kHz from the best source (:func:`host_tsc`), or None."""
    found = host_tsc(cpuinfo=cpuinfo) if cpuinfo is None else host_tsc(
        cpuid=lambda leaf: None, kernel_log=(), cpuinfo=cpuinfo)
    return found.khz if found else None


def _flags(cpuinfo: str) -> set[str]:
    match = re.search(r"^flags\s*:(.*)$", cpuinfo.split("\n\n", 1)[0], re.M)
    return set(match.group(1).split()) if match else set()


def _dev_cpuid(leaf: int) -> tuple[int, int, int, int] | None:
    """CPUID ``leaf`` on CPU 0 through the cpuid driver (the file offset is the leaf)."""
    try:
        fd = os.open("/dev/cpu/0/cpuid", os.O_RDONLY)
    except OSError:
        return None
    try:
        return struct.unpack("<4I", os.pread(fd, 16, leaf))
    except OSError:
        return None
    finally:
        os.close(fd)


def _kmsg() -> list[str]:
    """The kernel log's ``tsc:`` lines from /dev/kmsg (one record per read), or []."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return []
    lines = []
    try:
        while True:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break  # the end of the buffer
            except BrokenPipeError:
                continue  # records were overwritten while reading: go on with the next
            except OSError:
                break
            if not record:
                break
            text = record.decode(errors="replace").split(";", 1)[-1]
            if "tsc:" in text:
                lines.append(text.split("\n", 1)[0])
    finally:
        os.close(fd)
    return lines
