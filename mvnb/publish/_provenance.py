"""What a notebook ran with: mvnb, QEMU, GDB and guest kernel versions, and when.

A notebook records it by displaying ``mvnb.publish.provenance(vm)``: the output carries the
MIME type ``application/vnd.mvnb.provenance+json`` beside a one-line ``text/plain``. The
publisher reads the last such output into the post's footer and leaves the cell out of the
post. The JSON is stored as text on one line (nbformat allows any JSON value for a
``+json`` type) so that nbval's sanitize file can neutralise the versions and the date,
which change from run to run (see tests/nbval-sanitize.cfg).

The versions come from public attributes only (duck typing, no import of mvnb's VM
classes): ``vm.qemu`` (the QEMU binary, asked for ``--version``), ``vm.guest.name`` and
``vm.guest.version``, and the ``gdb`` on the PATH (``gdb --version``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["PROVENANCE_MIME", "Provenance", "from_output", "provenance"]

PROVENANCE_MIME = "application/vnd.mvnb.provenance+json"
SCHEMA = "mvnb-provenance/1"
_VERSION_TIMEOUT = 10.0


@dataclass(frozen=True)
class Provenance:
    """The versions a notebook ran with and the date it ran (ISO 8601, UTC)."""

    mvnb: str
    qemu: str | None = None
    gdb: str | None = None
    guest: str | None = None
    guest_version: str | None = None
    date: str = ""

    def to_json(self) -> str:
        """One line of JSON, schema first, so a sanitize regex can match all of it."""
        return json.dumps({"schema": SCHEMA, **asdict(self)}, separators=(", ", ": "))

    @classmethod
    def from_json(cls, data: str | dict[str, Any]) -> Provenance:
        """Read what :meth:`to_json` wrote (a dict is accepted too)."""
        fields = json.loads(data) if isinstance(data, str) else dict(data)
        fields.pop("schema", None)
        known = {k: fields[k] for k in cls.__dataclass_fields__ if k in fields}
        return cls(**{"mvnb": "", **known})

    def summary(self) -> str:
        """"mvnb 0.1.0, QEMU 7.2.22, GDB 13.1, guest debian-cloud-… (6.1.0-56)"."""
        parts = [f"mvnb {self.mvnb}"]
        if self.qemu:
            parts.append(f"QEMU {self.qemu}")
        if self.gdb:
            parts.append(f"GDB {self.gdb}")
        if self.guest:
            version = f" ({self.guest_version})" if self.guest_version else ""
            parts.append(f"guest {self.guest}{version}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"mvnb provenance: {self.summary()}; ran {self.date}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {PROVENANCE_MIME: self.to_json(), "text/plain": str(self)}


def _version_of(binary: str, pattern: str) -> str | None:
    """The version ``binary --version`` prints, or None when it cannot be run."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True,
                              timeout=_VERSION_TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = done.stdout.splitlines()[0] if done.stdout else ""
    match = re.search(pattern, first)
    return match.group(1) if match else (first.strip() or None)


def _mvnb_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("mvnb")
    except PackageNotFoundError:
        from .. import __version__

        return __version__


def provenance(vm_or_session: object | None = None, *, gdb: str = "gdb") -> Provenance:
    """What this notebook runs with, for the post's footer: display it in a cell.

    ``vm_or_session`` is anything with the public attributes of ``mvnb.Qemu`` (``qemu``,
    ``guest``), or a session that names its VM as ``vm`` or ``owner``; None records mvnb
    and GDB only.
    """
    vm = vm_or_session
    if vm is not None and not isinstance(getattr(vm, "qemu", None), str):
        vm = getattr(vm, "vm", None) or getattr(vm, "owner", None)
    qemu_binary = getattr(vm, "qemu", None) if vm is not None else None
    guest = getattr(vm, "guest", None) if vm is not None else None
    return Provenance(
        mvnb=_mvnb_version(),
        qemu=(_version_of(qemu_binary, r"version (\S+)")
              if isinstance(qemu_binary, str) else None),
        gdb=_version_of(gdb, r"(\d+(?:\.\d+)+)\s*$"),
        guest=(getattr(guest, "name", None) or None) if guest is not None else None,
        guest_version=(getattr(guest, "version", None) or None) if guest is not None else None,
        date=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )


def from_output(output: dict[str, Any]) -> Provenance | None:
    """The provenance an output carries, or None (also when it is unreadable)."""
    data = output.get("data", {}).get(PROVENANCE_MIME)
    if data is None:
        return None
    try:
        return Provenance.from_json(data)
    except (ValueError, TypeError):
        return None
