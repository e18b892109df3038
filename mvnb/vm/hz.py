"""CONFIG_HZ of a Linux guest: its tick rate, which the LAPIC calibration is measured in.

``HZ`` is a preprocessor macro, so no symbol holds it and DWARF (without ``-g3``) does not
know it. :func:`kernel_hz` asks, in order:

1. the kernel's config: ``config-<release>`` beside the image (Debian's layout) or a
   ``.config`` beside the image or the symbol file (a kernel build tree);
2. the symbol file: the configuration embedded with ``CONFIG_IKCONFIG``
   (``kernel_config_data``, gzip data between ``IKCFG_ST`` and ``IKCFG_ED``, kernel/configs.c),
   else the initial value of ``jiffies_64``, which is ``INITIAL_JIFFIES`` =
   ``(unsigned long)(unsigned int)(-300*HZ)`` (include/linux/jiffies.h, kernel/time/timer.c):
   a real constant in ``.data`` of every Linux vmlinux;
3. the running guest: ``tick_nsec``, set by ``ntp_update_frequency`` to
   ``NSEC_PER_SEC / HZ`` (kernel/time/ntp.c) once ``time_init`` has run.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Error, GuestError
from .elf import elf_symbol_bytes

if TYPE_CHECKING:
    from ..gdb import Session
    from .guest import Guest

__all__ = ["config_hz", "kernel_hz", "session_hz", "symbols_hz"]

_CONFIG_HZ = re.compile(rb"^CONFIG_HZ=(\d+)$", re.M)
_IKCONFIG_MAX = 1 << 20  # Debian's full config is 120 kB, about 30 kB compressed


def kernel_hz(guest: Guest | None, session: Session | None = None) -> int:
    """CONFIG_HZ of a Linux guest: from its config, its symbol file, else the running guest.

    Raises GuestError naming what each source said and what to pass instead.
    """
    tried: list[str] = []
    if guest is not None:
        for source in (config_hz, symbols_hz):
            try:
                return source(guest)
            except GuestError as error:
                tried.append(str(error))
    else:
        tried.append("no guest given: no config or symbol file to read")
    if session is not None:
        try:
            return session_hz(session)
        except Error as error:
            tried.append(str(error))
    else:
        tried.append("no session given: pass session= (a guest past time_init) to read "
                     "tick_nsec")
    name = guest.name if guest is not None else "the guest"
    raise GuestError(
        f"CONFIG_HZ of {name} is unknown:\n  - " + "\n  - ".join(tried) + "\n"
        "Pass hz= to the analysis yourself (e.g. mvnb.timing.linux_calibrate_apic(frame, "
        "hz=250)), put the kernel's .config beside the image as config-<release>, or call "
        "kernel_hz(guest, session=s) once the guest has run past time_init."
    )


def config_hz(guest: Guest) -> int:
    """CONFIG_HZ from the kernel's config file beside the image or the symbol file."""
    candidates = _config_files(guest)
    for config in candidates:
        match = _CONFIG_HZ.search(config.read_bytes())
        if match:
            return int(match.group(1))
    if candidates:
        raise GuestError(f"config file: {', '.join(map(str, candidates))} has no CONFIG_HZ")
    raise GuestError(f"config file: none beside {guest.kernel} (config-<release>, .config)")


def _config_files(guest: Guest) -> list[Path]:
    """``config-<release>`` for ``vmlinuz-<release>``, else a lone ``config-*``; ``.config``."""
    kernel = guest.kernel
    found: list[Path] = []
    for prefix in ("vmlinuz-", "vmlinux-", "bzImage-"):
        if kernel.name.startswith(prefix):
            exact = kernel.with_name("config-" + kernel.name.removeprefix(prefix))
            if exact.is_file():
                found.append(exact)
    if not found:
        others = sorted(kernel.parent.glob("config-*"))
        if len(others) == 1:
            found += others
    for directory in dict.fromkeys(p.parent for p in (kernel, guest.symbols) if p is not None):
        if (directory / ".config").is_file():
            found.append(directory / ".config")
    return found


def symbols_hz(guest: Guest) -> int:
    """CONFIG_HZ from the symbol file: its embedded config, else ``jiffies_64``'s start value."""
    if guest.symbols is None:
        raise GuestError("symbol file: the guest has none (symbols=None)")
    try:
        return ikconfig_hz(guest.symbols)
    except GuestError as ikconfig:
        try:
            return initial_jiffies_hz(guest.symbols)
        except GuestError as jiffies:
            raise GuestError(f"symbol file: {ikconfig}; {jiffies}") from None


def ikconfig_hz(path: Path) -> int:
    """CONFIG_HZ from the config a CONFIG_IKCONFIG kernel embeds (kernel/configs.c)."""
    try:
        data = elf_symbol_bytes(path, "kernel_config_data", length=_IKCONFIG_MAX)
    except GuestError:
        raise GuestError(f"{path.name} embeds no config (no CONFIG_IKCONFIG)") from None
    try:
        text = zlib.decompressobj(wbits=31).decompress(data)  # stops at the gzip member's end
    except zlib.error as error:
        raise GuestError(f"{path.name}: kernel_config_data is not gzip data: {error}") from None
    match = _CONFIG_HZ.search(text)
    if not match:
        raise GuestError(f"{path.name}: its embedded config has no CONFIG_HZ")
    return int(match.group(1))


def initial_jiffies_hz(path: Path) -> int:
    """HZ from ``jiffies_64``'s initial value, ``INITIAL_JIFFIES = (u32)(-300 * HZ)``."""
    try:
        raw = elf_symbol_bytes(path, "jiffies_64")
    except GuestError as error:
        raise GuestError(f"{error} (not a Linux vmlinux?)") from None
    value = int.from_bytes(raw, "little")
    hz, rest = divmod((1 << 32) - value, 300)
    if len(raw) != 8 or value >> 32 or rest or not 0 < hz <= 10_000:
        raise GuestError(f"{path.name}: jiffies_64 starts at {value:#x}, which is not "
                         "INITIAL_JIFFIES = (u32)(-300*HZ) of any HZ")
    return hz


def session_hz(session: Session) -> int:
    """HZ from the running guest's ``tick_nsec`` (``NSEC_PER_SEC / HZ`` after time_init)."""
    try:
        (tick_nsec,) = session.eval_many(["tick_nsec"])
    except Error as error:
        raise GuestError(f"session: cannot read tick_nsec: {error}") from None
    if not isinstance(tick_nsec, int) or tick_nsec <= 0:
        raise GuestError(f"session: tick_nsec is {tick_nsec}: the guest has not run "
                         "ntp_init (time_init) yet; ask again at a later stop")
    hz = 1e9 / tick_nsec
    if abs(hz - round(hz)) > 0.01 or not 0 < hz <= 10_000:
        raise GuestError(f"session: tick_nsec is {tick_nsec}, which is not NSEC_PER_SEC/HZ "
                         "of any HZ (do the symbols match the running kernel?)")
    return round(hz)
