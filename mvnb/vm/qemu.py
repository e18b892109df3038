"""``Qemu``: a guest under QEMU (TCG), paused at reset, with a private gdb stub.

The stub's socket is made here, bound and listening before QEMU starts, and handed to QEMU
as a file descriptor (``-chardev socket,fd=N``): nothing to wait for, no port race, and it
never listens on all interfaces (QEMU's ``-s`` does; shared/facts/gdb-mi-qemu.md). The
default is a unix socket in a private 0700 directory; ``gdb="tcp"`` binds 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from .. import _proc
from ..errors import Error, GdbError, GuestError, TargetExited, TargetTimeout
from ..gdb import Session
from .build import check_build
from .builds import QemuBuild, resolve_qemu
from .elf import bzimage_version
from .guest import Guest
from .traps import Trap, known_traps

__all__ = ["Qemu", "QemuWarning"]

_MACHINES = {"microvm", "pc", "q35"}
_EXIT_GRACE = 2.0  # seconds a QEMU whose stub hung up gets to finish exiting


class QemuWarning(UserWarning):
    """Something QEMU said on a successful start (its ``warning:`` lines on stderr), or a
    risk of the chosen options; shown once through Python's warnings."""


_tcp_warned = False


def _warn_tcp(address: str) -> None:
    """``gdb="tcp"``: say once per process what a loopback stub exposes."""
    global _tcp_warned
    if _tcp_warned:
        return
    _tcp_warned = True
    warnings.warn(
        f"gdb='tcp': QEMU's gdb stub listens on {address}, where any local user can connect "
        "(while no debugger is attached) and, through the stub's monitor command, drive "
        "QEMU's monitor, which can run programs as you. Use the default gdb='unix' (a socket "
        "in a private 0700 directory) unless the machine is yours alone.",
        QemuWarning, stacklevel=4,
    )


class _Machine:
    """The running QEMU process and its files: what a session needs of its VM (the
    ``Owner`` protocol) and nothing that refers back to the ``Qemu`` or the session.

    The session holds this, not the ``Qemu``, so a VM and its session form no reference
    cycle: dropping both (``del vm, s``, or re-running a notebook cell that makes new
    ones) ends GDB and QEMU at once, without waiting for the garbage collector.
    """

    def __init__(self, process: subprocess.Popen[bytes],
                 directory: tempfile.TemporaryDirectory[str], build: QemuBuild, machine: str,
                 icount: int | None, guest: Guest) -> None:
        self.process = process
        self.directory = directory
        self.workdir = Path(directory.name)
        self.build = build
        self.machine = machine
        self.icount = icount
        self.guest = guest
        self._warned_upto = 0
        self.finalizer = weakref.finalize(self, _stop, process, directory)

    def poll(self) -> int | None:
        return self.process.poll()

    def serial(self) -> str:
        try:
            return (self.workdir / "serial.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def exited_error(self, message: str | None = None) -> TargetExited:
        status = self.process.poll()
        if status is None:  # the stub closed the connection: QEMU may be on its way out
            try:
                status = self.process.wait(_EXIT_GRACE)
            except subprocess.TimeoutExpired:
                status = None
        if message is None:
            message = (f"QEMU went away (exit status {status})" if status is not None else
                       f"QEMU's gdb stub closed the connection; QEMU (pid {self.process.pid}) "
                       "still runs")
        serial = "\n".join(self.serial().splitlines()[-25:])
        return TargetExited(
            message,
            status=status,
            serial_tail=serial,
            stderr=_read(self.workdir / "qemu.stderr"),
            qemu_log="\n".join(_read(self.workdir / "qemu.log").splitlines()[-25:]),
        )

    def provenance(self) -> dict[str, Any]:
        return {
            "qemu": self.build.version,
            **self.build.provenance,
            "machine": self.machine,
            "icount": self.icount,
            "guest": self.guest.name,
            "kernel": _kernel_release(self.guest),
            "cmdline": self.guest.full_cmdline,
        }

    def warn_stderr(self) -> None:
        """Show QEMU's new ``warning:`` lines on stderr as QemuWarning."""
        text = _read(self.workdir / "qemu.stderr")
        new, self._warned_upto = text[self._warned_upto:], len(text)
        for line in new.splitlines():
            if "warning:" in line:
                message = line.split("warning:", 1)[1].strip()
                warnings.warn(f"QEMU: {message}", QemuWarning, stacklevel=3)


class Qemu:
    """A QEMU x86_64 guest started paused at reset; a context manager.

    >>> with mvnb.Qemu(mvnb.guests.debian_cloud()) as vm:
    ...     s = vm.session()

    The VM lives while it or its session is referred to: dropping both (``del vm, s``, or
    re-running the cell that made them) ends GDB and QEMU at once; ``close()`` or ``with``
    ends them now. QEMU dies with this Python process, whichever thread started it.

    ``guards`` arms, in ``session()``, a guard at each place the guest is known to wait in
    for ever on this machine (:mod:`mvnb.vm.traps`): ``cont()`` then raises
    ``TargetStuck`` naming the cause and the remedy at once instead of timing out.
    ``True`` arms the known ones, ``False`` none, or pass your own ``Trap`` objects.
    """

    def __init__(
        self,
        guest: Guest,
        machine: str = "microvm",
        memory: str = "512M",
        cpus: int = 1,
        icount: int | None = None,
        gdb: Literal["unix", "tcp"] = "unix",
        extra_args: Sequence[str] = (),
        *,
        qemu: str | os.PathLike[str] | QemuBuild | None = None,
        start: bool = True,
        guards: bool | Sequence[Trap] = True,
    ) -> None:
        if machine.split(",")[0] not in _MACHINES:
            raise ValueError(f"machine must be one of {sorted(_MACHINES)}, not {machine!r}")
        if gdb not in ("unix", "tcp"):
            raise ValueError(f"gdb must be 'unix' or 'tcp', not {gdb!r}")
        if icount is not None and not 0 <= int(icount) <= 10:
            raise ValueError(f"icount is a shift between 0 and 10 (2^N ns per instruction), "
                             f"not {icount!r}")
        self.guest = guest
        self.machine = machine
        self.memory = memory
        self.cpus = int(cpus)
        self.icount = icount
        self.gdb = gdb
        self.extra_args = tuple(extra_args)
        #: The QEMU that runs this VM (``qemu=``: a build, a version such as "10.0", a path;
        #: None is $MVNB_QEMU or the system's): its version is the VM's provenance.
        self.qemu_build = resolve_qemu(qemu)
        self.qemu = str(self.qemu_build.binary)
        self.traps: tuple[Trap, ...] = (
            known_traps(guest, machine) if guards is True else
            () if guards is False else tuple(guards)
        )
        self.gdb_address: str = ""
        self.argv_used: list[str] = []
        self._session: Session | None = None
        self._machine: _Machine | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        if start:
            self.start()

    # -- files --------------------------------------------------------------------------

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """QEMU's process (None before ``start()``)."""
        return None if self._machine is None else self._machine.process

    @property
    def workdir(self) -> Path:
        if self._dir is None:
            raise Error("this VM has not been started")
        return Path(self._dir.name)

    @property
    def serial_path(self) -> Path:
        return self.workdir / "serial.log"

    @property
    def log_path(self) -> Path:
        return self.workdir / "qemu.log"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "qemu.stderr"

    # -- starting -----------------------------------------------------------------------

    def argv(self, gdb_fd: int) -> list[str]:
        """QEMU's command line, with the stub on the listening socket ``gdb_fd``."""
        machine = self.machine
        argv = [
            self.qemu,
            *self.qemu_build.args(),
            "-machine", machine,
            "-accel", "tcg",
            "-m", self.memory,
            "-smp", str(self.cpus),
            "-display", "none",
            "-monitor", "none",
            "-parallel", "none",
            "-nic", "none",
            "-no-reboot",
            "-S",
            "-kernel", str(self.guest.kernel),
            "-append", self.guest.full_cmdline,
            "-serial", f"file:{self.serial_path}",
            "-d", "guest_errors,cpu_reset",
            "-D", str(self.log_path),
            "-chardev", f"socket,id=mvnbgdb,fd={gdb_fd},server=on,wait=off",
            "-gdb", "chardev:mvnbgdb",
        ]
        if not machine.startswith("microvm"):
            argv += ["-vga", "none"]
        if self.icount is not None:
            argv += ["-icount", f"shift={int(self.icount)},sleep=off"]
        return argv + list(self.extra_args)

    def start(self) -> None:
        """Start QEMU paused at reset (``-S``), its stub listening privately.

        Before that, the guest's image and symbols are checked to come from one build
        (:func:`mvnb.vm.build.check_build`): GuestError with both version strings if not.
        """
        if self._machine is not None:
            raise Error("this VM is already started")
        check_build(self.guest)
        self._dir = tempfile.TemporaryDirectory(prefix="mvnb-qemu-")
        os.chmod(self._dir.name, 0o700)
        if self.gdb == "unix":
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            path = str(self.workdir / "gdb.socket")
            listener.bind(path)
            self.gdb_address = path
        else:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            self.gdb_address = f"127.0.0.1:{listener.getsockname()[1]}"
        listener.listen(1)
        try:
            argv = self.argv(listener.fileno())
            env = {**os.environ, **self.qemu_build.env()} if self.qemu_build.env() else None
            with open(self.stderr_path, "wb") as stderr:
                process = _proc.spawn(argv, stdin=subprocess.DEVNULL, stdout=stderr,
                                      stderr=stderr, pass_fds=[listener.fileno()], env=env)
        finally:
            listener.close()
        self._machine = _Machine(process, self._dir, self.qemu_build, self.machine,
                                 self.icount, self.guest)
        self.argv_used = argv
        if self.gdb == "tcp":
            _warn_tcp(self.gdb_address)

    # -- the session ----------------------------------------------------------------------

    def session(self, *, timeout: float = 120.0) -> Session:
        """The VM's GDB session, connected, with the guest's symbols (one per VM).

        QEMU's warnings on its start are shown as ``QemuWarning`` once the stub answers
        (QEMU is then past its start-up); the guards of ``traps`` are armed.
        """
        if self._session is not None and not self._session.closed:
            return self._session
        machine = self._started()
        self._check_alive()
        try:
            session = Session.connect(self.gdb_address, symbols=self.guest.symbols,
                                      owner=machine, timeout=timeout)
        except BaseException:
            self._check_alive()
            raise
        machine.warn_stderr()
        for trap in self.traps:
            try:
                session.guard(trap.location, trap.message())
            except GdbError:
                pass  # the guest has no such function: nothing to guard
        self._session = session
        return session

    def provenance(self) -> dict[str, Any]:
        """What ran: QEMU's version, the machine, icount, the guest and its command line."""
        return self._started().provenance()

    def _started(self) -> _Machine:
        if self._machine is None:
            raise Error("this VM has not been started; call start()")
        return self._machine

    # -- the console --------------------------------------------------------------------

    def serial(self) -> str:
        """Everything the guest printed on its serial console so far."""
        try:
            return self.serial_path.read_text(errors="replace")
        except (FileNotFoundError, Error):
            return ""

    def wait_serial(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait for a line matching ``pattern`` (a regex) on the serial console.

        The console is a file QEMU appends to; this blocks on the file growing (inotify
        where available) rather than sleeping a fixed time.
        """
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        with _FileWatch(self.serial_path) as watch:
            while True:
                match = regex.search(self.serial())
                if match:
                    return match
                if self.poll() is not None:
                    raise self.exited_error(f"QEMU exited before the console showed {pattern!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TargetTimeout(f"the serial console did not show {pattern!r} within "
                                        f"{timeout} s (is the guest running? call cont())")
                watch.wait(min(left, 1.0))

    # -- ending -------------------------------------------------------------------------

    def poll(self) -> int | None:
        """QEMU's exit status, or None while it runs."""
        return None if self._machine is None else self._machine.poll()

    def exited_error(self, message: str | None = None) -> TargetExited:
        """A TargetExited carrying QEMU's status, stderr, log and the serial tail."""
        return self._started().exited_error(message)

    def _check_alive(self) -> None:
        if self.poll() is not None:
            raise self.exited_error(f"QEMU exited at start (status {self.poll()}); "
                                    "check the kernel and the options below")

    def close(self) -> None:
        """End GDB and QEMU and remove the private directory. Idempotent."""
        if self._session is not None:
            self._session.close()
        if self._machine is not None:
            self._machine.finalizer()

    def __enter__(self) -> Qemu:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "not started" if self._machine is None else (
            "running" if self.poll() is None else f"exited {self.poll()}")
        return f"<mvnb.Qemu {self.guest.name} {self.machine} {state} gdb={self.gdb_address}>"


def _stop(process: subprocess.Popen[bytes], directory: tempfile.TemporaryDirectory[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    try:
        directory.cleanup()
    except OSError:
        shutil.rmtree(directory.name, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class _FileWatch:
    """Block until a file is modified (inotify), or a timeout; no fixed sleeps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _FileWatch:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd >= 0:
            in_modify = 0x2
            if libc.inotify_add_watch(fd, str(self.path).encode(), in_modify) < 0:
                os.close(fd)
                fd = -1
        self.fd = fd
        return self

    def wait(self, timeout: float) -> None:
        import select

        if self.fd < 0:  # no inotify: wake on the timeout (bounded by the caller to 1 s)
            select.select([], [], [], timeout)
            return
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                os.read(self.fd, 65536)
            except BlockingIOError:
                pass

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def _kernel_release(guest: Guest) -> str:
    try:
        return bzimage_version(guest.kernel)
    except (GuestError, OSError):
        return guest.version or guest.name
