"""The machine: guests (``Guest``, Debian's kernels), QEMU (``Qemu``, ``vm.session()``),
and ``boot_to`` (boot a guest to a location, past a Linux TSC calibration that failed).
"""

from __future__ import annotations

from . import guests
from .boot import boot_to, host_tsc, host_tsc_khz
from .builds import QemuBuild, fetch_qemu, qemu_builds, resolve_qemu
from .guest import Guest
from .hz import kernel_hz
from .qemu import Qemu, QemuWarning
from .traps import Trap, known_traps

__all__ = ["Guest", "Qemu", "QemuBuild", "QemuWarning", "Trap", "boot_to", "fetch_qemu",
           "guests", "host_tsc", "host_tsc_khz", "kernel_hz", "known_traps", "qemu_builds",
           "resolve_qemu"]
