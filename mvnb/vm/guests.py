"""``mvnb.guests``: the guests the kit knows how to get, and the ``Guest`` of your own.

``mvnb.guests.debian_cloud()`` (Debian's cloud kernel with its debug symbols, fetched
once), ``mvnb.guests.debian(flavour="amd64")`` (another of Debian's flavours: the generic
kernel by default), ``mvnb.guests.Guest(kernel=..., symbols=...)``,
``mvnb.guests.kernel_hz(guest)``.
"""

from __future__ import annotations

from .debian import debian, debian_cloud
from .guest import Guest
from .hz import kernel_hz

__all__ = ["Guest", "debian", "debian_cloud", "kernel_hz"]
