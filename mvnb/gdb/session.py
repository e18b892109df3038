"""``Session``: one real GDB, driven over MI, attached to a target's gdb stub.

Single commands cost what GDB's MI costs (about 0.2 ms); bulk reads run inside GDB's own
Python through mvnb's helper (``mvnb/gdb/helper/mvnb_gdb.py``), one MI round trip for many
values. Every call that waits takes ``timeout=`` and leaves the session usable when it
fires: a target that does not stop in time is interrupted, then ``TargetTimeout`` is raised.

The session knows nothing of QEMU or x86. Whoever started the target may pass itself as
``owner`` (see :class:`Owner`) to explain why the target went away and where it came from;
architecture helpers hang off the session as accessors (:mod:`mvnb.gdb.extensions`).

This module is longer than the others (about 650 lines) on purpose: the ``Session`` class
is the public surface, and a reader finds each of its methods here. What is not surface
lives beside it: the MI transport (``mi/``), the breakpoint table (``breakpoints.py``), MI
answers as pandas objects (``frames.py``), the sampler (``sampling.py``) and which stubs
are taken (``stubs.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
import weakref
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import _proc
from ..cache import cache_dir
from ..errors import (
    Error,
    FaultError,
    GdbError,
    SessionClosed,
    TargetExited,
    TargetStuck,
    TargetTimeout,
    Unsupported,
)
from . import frames, physical, sampling, stubs, symbols
from .breakpoints import Breakpoint, BreakpointTable
from .mi import AsyncRecord, ResultRecord, Transport, quote
from .stop import Frame, Stop
from .value import Value

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Capabilities", "Owner", "Session", "current", "use"]

_INTERRUPT_GRACE = 10.0
_REINTERRUPT = 0.25  # an interrupt can be lost at an auto-resumed hit: see wait_stopped
_CONNECT_TIMEOUT = 15.0  # a stub answers in milliseconds; one that is busy never does
_EXITED = ("exited", "exited-normally", "exited-signalled")
_sessions: list[weakref.ref[Session]] = []
_chosen: weakref.ref[Session] | None = None


class Owner(Protocol):
    """What started the target (a ``Qemu``'s process record): asked why the target went
    away, and for the provenance recorded with samples. It must not refer back to the
    session, so that dropping both ends them without the garbage collector."""

    def poll(self) -> int | None: ...

    def exited_error(self, message: str | None = None) -> Exception: ...

    def provenance(self) -> dict[str, Any]: ...


class Capabilities:
    """What the stub offers, found out once after connecting."""

    def __init__(self, qemu: bool) -> None:
        self.qemu = qemu
        self.monitor = qemu  # QEMU's human monitor through qRcmd
        self.watchpoints: bool | None = True if qemu else None  # None: unknown, try it

    def __repr__(self) -> str:
        return (f"Capabilities(qemu={self.qemu}, monitor={self.monitor}, "
                f"watchpoints={self.watchpoints})")


class Session:
    """A GDB process attached to one target. Create with ``Session.connect`` or ``vm.session()``.

    The session is a context manager; ``close()`` ends GDB, which detaches from the stub as
    it exits: the target is not ended, and QEMU's stub lets a stopped guest run on.
    Nothing but the caller keeps a session alive (breakpoints and values hold it weakly):
    dropping the last reference closes it.
    """

    def __init__(self, *, gdb: str = "gdb", owner: Owner | None = None,
                 timeout: float = 60.0) -> None:
        self._owner = owner
        self._closed = False
        self._workdir = tempfile.TemporaryDirectory(prefix="mvnb-gdb-")
        os.chmod(self._workdir.name, 0o700)
        self._table = BreakpointTable()
        self._register_names: list[str] | None = None
        self._resumed_at = 0  # stop_seq when the target was last resumed
        self._detached = False
        self.capabilities = Capabilities(qemu=False)
        self.address: str | None = None
        self.symbols: Path | None = None
        self.symbol_offset = 0  # what load_symbols() relocated the symbols by
        argv = [_proc.require(gdb), "--interpreter=mi3", "--nx", "-q"]
        self._transport = Transport(argv, workdir=Path(self._workdir.name),
                                    on_async=self._table.on_async, popen=_proc.spawn)
        self._finalizer = weakref.finalize(self, _finalize, self._transport, self._workdir)
        try:
            self._setup(timeout)
        except BaseException:
            self.close()
            raise
        _sessions[:] = [ref for ref in _sessions if ref() is not None]
        _sessions.append(weakref.ref(self))

    def _setup(self, timeout: float) -> None:
        for setting in ("mi-async on", "pagination off", "confirm off", "width 0", "height 0",
                        "print pretty off", "breakpoint pending off"):
            self.mi(f"-gdb-set {setting}", timeout=timeout)
        cache = _index_cache_dir()
        if cache is not None:
            self.console(f"set index-cache directory {cache}", timeout=timeout)
            self.console("set index-cache enabled on", timeout=timeout)
        helper = resources.files("mvnb.gdb") / "helper" / "mvnb_gdb.py"
        try:
            self.console(f"source {helper}", timeout=timeout)
        except GdbError as error:
            raise Error(
                "GDB could not load mvnb's helper; mvnb needs GDB >= 13 built with Python "
                f"(Debian's `gdb` package is): {error.message}"
            ) from None

    # -- connecting --------------------------------------------------------------------

    @classmethod
    def connect(cls, address: str | os.PathLike[str],
                symbols: str | os.PathLike[str] | None = None,
                symbol_offset: int | None = None, *, gdb: str = "gdb",
                owner: Owner | None = None, timeout: float = 60.0) -> Session:
        """Attach a new GDB to a stub at ``address``: a unix socket path or ``host:port``.

        ``symbols`` is the guest's unstripped ELF; ``symbol_offset`` relocates it (a kernel
        loaded somewhere other than its link address). A stub takes one client: while a
        session of this process is attached to ``address`` this raises ``Error`` at once
        (close or detach that one first); a stub busy with another process's debugger is
        reported within about 20 s (15 s for GDB to give up, then its exit).
        """
        stubs.check_free(str(address))  # before GDB starts: fail at once
        session = cls(gdb=gdb, owner=owner, timeout=timeout)
        try:
            if symbols is not None:
                session.load_symbols(symbols, offset=symbol_offset, timeout=timeout)
            session._attach(str(address), timeout)
        except BaseException:
            session.close()
            raise
        return session

    def load_symbols(self, path: str | os.PathLike[str], *, offset: int | None = None,
                     timeout: float = 120.0) -> None:
        """Read symbols from the ELF file at ``path`` (optionally relocated by ``offset``)."""
        path = Path(path)
        if not path.is_file():
            raise Error(f"symbol file {path} does not exist")
        if offset:
            self.console(f"symbol-file -o {offset & (1 << 64) - 1:#x} {path}", timeout=timeout)
        else:
            self.mi(f"-file-exec-and-symbols {quote(str(path))}", timeout=timeout)
        self.symbols = path
        self.symbol_offset = offset or 0

    def check_symbols(self, *, timeout: float | None = 30.0) -> symbols.SymbolCheck:
        """Whether the symbols describe the running code (a KASLR slide, a constant offset):
        a ``SymbolCheck`` with the offset found and ``.apply()`` (mvnb/gdb/symbols.py)."""
        return symbols.check(self, timeout=timeout)

    def _attach(self, address: str, timeout: float) -> None:
        if "/" in address or os.path.exists(address):
            if not os.path.exists(address):
                raise Error(f"no gdb stub socket at {address}; is the VM running?")
        elif not re.fullmatch(r"[\w.\-\[\]:]*:\d+", address):
            raise Error(f"{address!r} is neither a socket path nor host:port")
        if " " in address:
            raise Error(f"GDB cannot connect to a path with spaces: {address!r}")
        stubs.check_free(address, self)
        seq = self._transport.stop_seq
        wait = _CONNECT_TIMEOUT if timeout is None else min(timeout, _CONNECT_TIMEOUT)
        try:
            self.mi(f"-target-select remote {address}", timeout=wait)
        except TargetTimeout:
            raise TargetTimeout(
                f"the stub at {address} did not answer within {wait} s. A gdb stub takes one "
                "client at a time: is another debugger attached to it (another notebook or "
                "process)? Detach or close that one and connect again."
            ) from None
        self.address = address
        stubs.hold(address, self)
        # GDB reports the target's initial stop after ^connected.
        self._transport.wait_stopped(seq, 5.0)
        probe = self.console("maintenance packet qqemu.sstepbits", timeout=timeout)
        self.capabilities = Capabilities(qemu="ENABLE=" in probe)

    # -- commands ----------------------------------------------------------------------

    def mi(self, command: str, *, timeout: float | None = 30.0) -> ResultRecord:
        """One raw GDB/MI command and its result record (``^done``/``^running``).

        ``GdbError`` for ``^error``; a target that went away raises ``TargetExited``.
        """
        self._check_open()
        try:
            return self._transport.command(command, timeout)
        except GdbError as error:
            if self._transport.state == "exited" or "Remote connection closed" in error.message:
                raise self._gone_error() from error
            raise
        except SessionClosed:
            if self._owner is not None and self._owner.poll() is not None:
                raise self._gone_error() from None
            raise

    def console(self, command: str, *, timeout: float | None = 30.0) -> str:
        """Run any GDB CLI command and return what it printed (the escape hatch)."""
        result = self.mi(f"-interpreter-exec console {quote(command)}", timeout=timeout)
        return result.text("console", "target")

    def monitor(self, command: str, *, timeout: float | None = 30.0) -> str:
        """A QEMU monitor command through the stub (``info lapic``, ``info registers``)."""
        if not self.capabilities.monitor:
            raise Unsupported(
                f"the stub at {self.address} is not QEMU's and has no QEMU monitor "
                "(Firecracker's and gdbserver's have none); use console() for what GDB offers"
            )
        return self.console(f"monitor {command}", timeout=timeout)

    def _json(self, command: str, timeout: float | None) -> Any:
        return json.loads(self.mi(command, timeout=timeout).payload["json"])

    def _check_open(self) -> None:
        if self._detached:
            raise SessionClosed(
                f"this session detached from the stub at {self.address}; attach a new one "
                f"with mvnb.Session.connect({self.address!r}, symbols=...)"
            )
        if self._closed:
            raise SessionClosed("this session was closed; open a new one")
        if self._transport.state == "exited":
            raise self._gone_error()

    def _gone_error(self) -> Exception:
        if self._owner is not None:
            return self._owner.exited_error()
        return TargetExited(f"the target at {self.address} closed the connection")

    # -- run control -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._transport.state == "running"

    def cont(self, *, timeout: float | None = 30.0, wait: bool = True) -> Stop | None:
        """Continue until the target stops; on timeout, interrupt it and raise TargetTimeout.

        ``wait=False`` returns None at once with the target running: wait for its stop with
        ``wait_for_stop()`` or stop it with ``interrupt()``.
        """
        return self._resume("-exec-continue", timeout, "continue", wait)

    def step(self, count: int = 1, *, timeout: float | None = 30.0) -> Stop:
        """Step ``count`` source lines, entering calls."""
        return self._resume(f"-exec-step {int(count)}", timeout, "step")

    def next(self, count: int = 1, *, timeout: float | None = 30.0) -> Stop:
        """Step ``count`` source lines, stepping over calls."""
        return self._resume(f"-exec-next {int(count)}", timeout, "next")

    def stepi(self, count: int = 1, *, timeout: float | None = 30.0) -> Stop:
        """Step ``count`` machine instructions."""
        return self._resume(f"-exec-step-instruction {int(count)}", timeout, "stepi")

    def nexti(self, count: int = 1, *, timeout: float | None = 30.0) -> Stop:
        """Step ``count`` machine instructions, stepping over calls."""
        return self._resume(f"-exec-next-instruction {int(count)}", timeout, "nexti")

    def finish(self, *, timeout: float | None = 30.0) -> Stop:
        """Run until the current function returns."""
        return self._resume("-exec-finish", timeout, "finish")

    def until(self, location: str, *, timeout: float | None = 30.0) -> Stop:
        """Run until ``location`` is reached in the current frame, or the frame returns.

        GDB's MI says "location-reached" either way; here a stop because the frame returned
        (at its caller's resume address, one frame up) has ``reason="function-finished"``,
        as ``finish()`` would report it, and ``raw["reason"]`` keeps GDB's word.
        """
        caller = self._caller_pc()
        stop = self._resume(f"-exec-until {quote(location)}", timeout, f"until {location}")
        if (stop.reason == "location-reached" and caller is not None
                and stop.frame is not None and stop.frame.address == caller
                and caller not in self._addresses(location)):
            stop = dataclasses.replace(stop, reason="function-finished")
        return stop

    def _caller_pc(self) -> int | None:
        """The resume address in the caller of the selected frame (None at the outermost)."""
        try:
            frames = self.mi("-stack-list-frames 1 1").payload.get("stack", [])
        except GdbError:
            return None
        addr = frames[0].get("addr", "") if frames else ""
        return int(addr, 16) if isinstance(addr, str) and addr.startswith("0x") else None

    def _addresses(self, location: str) -> set[int]:
        """The code addresses ``location`` names, as GDB's ``info line`` resolves them."""
        if location.startswith("*"):
            try:
                return {int(self.eval_many([location[1:]])[0])}
            except (GdbError, TypeError, ValueError):
                return set()
        try:
            text = self.console(f"info line {location}")
        except GdbError:
            return set()
        return {int(a, 16) for a in re.findall(r"starts at address (0x[0-9a-fA-F]+)", text)}

    def interrupt(self, *, timeout: float = _INTERRUPT_GRACE) -> Stop | None:
        """Stop a running target; returns the Stop (None if it was not running)."""
        if not self.running:
            return None
        seq = self._transport.stop_seq
        self.mi("-exec-interrupt", timeout=timeout)
        record = self._transport.wait_stopped(seq, timeout, interrupt_every=_REINTERRUPT)
        if record is None:
            if self._transport.state in ("exited", "closed"):
                raise self._gone_error()
            raise TargetTimeout(f"the target did not stop within {timeout} s of an interrupt")
        return self._stop(record)

    def wait_for_stop(self, timeout: float | None) -> Stop | None:
        """The target's next stop since it was last resumed; None if it still runs after
        ``timeout`` seconds (it is left running). Ctrl-C propagates and leaves it running."""
        record = self._transport.wait_stopped(self._resumed_at, timeout)
        if record is None:
            if self._transport.state in ("exited", "closed"):
                raise self._gone_error()
            return None
        stop = self._stop(record)
        if stop.reason in _EXITED:
            raise self._exited(stop)
        self._check_guard(stop)
        return stop

    def _resume(self, command: str, timeout: float | None, what: str,
                wait: bool = True) -> Any:
        self._check_open()
        if self.running:
            raise Error(f"the target is already running; call interrupt() before {what}")
        seq = self._resumed_at = self._transport.stop_seq
        self.mi(command)
        if not wait:
            return None
        try:
            record = self._transport.wait_stopped(seq, timeout)
        except KeyboardInterrupt:
            # A notebook's interrupt: stop the target, keep the session, then let it raise.
            self._interrupt_after(seq)
            raise
        if record is None:
            if self._transport.state in ("exited", "closed"):
                raise self._gone_error()
            stop = self._interrupt_after(seq)
            raise TargetTimeout(
                f"{what}: the target did not stop within {timeout} s; it was interrupted"
                + (f" {stop}" if stop else "") + ". The session is usable."
                + (symbols.timeout_note(self) if stop else ""),
                stop,
            )
        stop = self._stop(record)
        if stop.reason in _EXITED:
            raise self._exited(stop)
        self._check_guard(stop)
        return stop

    def _check_guard(self, stop: Stop) -> None:
        if stop.breakpoint is not None and stop.breakpoint.guard:
            raise TargetStuck(f"{stop.breakpoint.guard}\n(stopped at {stop})", stop)

    def _interrupt_after(self, seq: int) -> Stop | None:
        if self._transport.state in ("exited", "closed"):
            return None
        if self._transport.stop_seq <= seq:
            self._transport.send("-exec-interrupt")
        record = self._transport.wait_stopped(seq, _INTERRUPT_GRACE,
                                              interrupt_every=_REINTERRUPT)
        return self._stop(record) if record is not None else None

    def _stop(self, record: AsyncRecord) -> Stop:
        number = Stop.breakpoint_number(record.payload)
        return Stop.from_mi(record.payload, self._table.known(number))

    def _exited(self, stop: Stop) -> Exception:
        if self._owner is not None:
            return self._gone_error()
        return TargetExited(f"the program exited ({stop.reason}, code {stop.exit_code})")

    # -- breakpoints -------------------------------------------------------------------

    def break_at(self, location: str, *, hardware: bool = False, temporary: bool = False,
                 condition: str | None = None) -> Breakpoint:
        """A breakpoint at a function, ``file:line`` or ``*address``."""
        options = []
        if hardware:
            options.append("-h")
        if temporary:
            options.append("-t")
        if condition:
            options.append(f"-c {quote(condition)}")
        result = self.mi(f"-break-insert {' '.join(options)} {quote(location)}")
        return self._table.add(Breakpoint(self, result.payload["bkpt"], location))

    def hbreak(self, location: str, *, temporary: bool = False,
               condition: str | None = None) -> Breakpoint:
        """A hardware breakpoint: works from the first instruction, before paging is up."""
        return self.break_at(location, hardware=True, temporary=temporary, condition=condition)

    def watch(self, expr: str, access: str = "write") -> Breakpoint:
        """A watchpoint on ``expr``: access is "write", "read" or "access"."""
        flags = {"write": "", "read": "-r ", "access": "-a "}
        if access not in flags:
            raise ValueError(f"access must be 'write', 'read' or 'access', not {access!r}")
        if self.capabilities.watchpoints is False:
            raise Unsupported(f"the stub at {self.address} offers no watchpoints")
        result = self.mi(f"-break-watch {flags[access]}{quote(expr)}")
        info = next(v for k, v in result.payload.items() if k in ("wpt", "hw-rwpt", "hw-awpt"))
        info = {"type": f"{access} watchpoint", **info}
        return self._table.add(Breakpoint(self, info, expr))

    def guard(self, location: str, message: str) -> Breakpoint:
        """A hardware breakpoint at a place the target is known never to leave.

        A stop there raises ``TargetStuck(message)`` from ``cont()``, the steps and
        ``wait_for_stop()`` at once, instead of a timeout much later; ``message`` should
        say why the target got there and what to do. The target stays there and the
        session is usable. ``Qemu`` arms the guards its guest needs (:mod:`mvnb.vm.traps`).
        """
        bp = self.hbreak(location)
        bp.guard = message
        return bp

    def breakpoints(self) -> list[Breakpoint]:
        """The breakpoints and watchpoints made through this session and not deleted."""
        return self._table.live()

    # -- values ------------------------------------------------------------------------

    def eval(self, expr: str, *, depth: int = 2, timeout: float | None = 30.0) -> Value:
        """Evaluate a C expression now: a ``Value`` (members ``depth`` levels deep)."""
        data = self._json(f"-mvnb-eval {quote(expr)} {int(depth)}", timeout)
        return Value(data, expr, self)

    def eval_many(self, exprs: Iterable[str], *, timeout: float | None = 30.0) -> list[Any]:
        """Evaluate many expressions in one round trip: ints, floats, or GDB's text."""
        exprs = list(exprs)
        results = self._json(f"-mvnb-eval-many {quote(json.dumps(exprs))}", timeout)
        for expr, result in zip(exprs, results, strict=False):
            if isinstance(result, dict):
                raise GdbError(result["error"], expr)
        return results

    def read_many(self, ranges: Iterable[tuple[int, int]], *,
                  timeout: float | None = 30.0) -> list[bytes]:
        """Read many (address, length) ranges of memory in one round trip."""
        ranges = [(int(a), int(n)) for a, n in ranges]
        results = self._json(f"-mvnb-read-many {quote(json.dumps(ranges))}", timeout)
        out = []
        for (address, _), result in zip(ranges, results, strict=False):
            if isinstance(result, dict):
                raise FaultError(f"cannot read memory at {address:#x}: {result['error']}",
                                 result.get("address", address))
            out.append(bytes.fromhex(result))
        return out

    def set(self, lhs: str, value: int | str) -> None:
        """Assign to a variable, a memory location or a register: ``set("$eax", 1)``."""
        rhs = str(int(value)) if isinstance(value, int) else value
        self.mi(f"-data-evaluate-expression {quote(f'{lhs} = {rhs}')}")

    # -- memory and registers ----------------------------------------------------------

    def read_memory(self, address: int, size: int, *, timeout: float | None = 30.0) -> bytes:
        """``size`` bytes at virtual ``address``; an unreadable byte raises FaultError."""
        try:
            result = self.mi(f"-data-read-memory-bytes {int(address):#x} {int(size)}",
                             timeout=timeout)
        except GdbError as error:
            raise _fault(error, address) from None
        data = bytearray()
        expected = int(address)
        for block in result.payload.get("memory", []):
            begin = int(block["begin"], 16)
            if begin != expected:
                raise FaultError(f"cannot read memory at {expected:#x}", expected)
            chunk = bytes.fromhex(block["contents"])
            data += chunk
            expected = begin + len(chunk)
        if len(data) < size:
            raise FaultError(f"cannot read memory at {expected:#x}", expected)
        return bytes(data)

    def read_physical(self, address: int, size: int, *,
                      timeout: float | None = 30.0) -> bytes:
        """``size`` bytes at guest-physical ``address``, read the safest way the stub
        offers (mvnb/gdb/physical.py); an unreadable range raises FaultError."""
        return physical.read_physical(self, address, size, timeout=timeout)

    def write_memory(self, address: int, data: bytes) -> None:
        """Write ``data`` at virtual ``address``."""
        try:
            self.mi(f"-data-write-memory-bytes {int(address):#x} {bytes(data).hex()}")
        except GdbError as error:
            raise _fault(error, address) from None

    def register_names(self) -> list[str]:
        """GDB's register names by number (empty strings for unused numbers)."""
        if self._register_names is None:
            names = self.mi("-data-list-register-names").payload["register-names"]
            self._register_names = list(names)
        return self._register_names

    def registers(self) -> pd.Series:
        """General, segment, control registers and EFER as name → int (vector ones left out)."""
        names = self.register_names()
        values = self.mi("-data-list-register-values --skip-unavailable x").payload
        return frames.registers_series(values.get("register-values", []), names)

    def register(self, name: str) -> int:
        """One register by GDB's name (``rax``, ``rip``, ``eflags``, ``cr3``)."""
        return int(self.eval_many([f"${name.lstrip('$')}"])[0])

    # -- threads / vCPUs, stack -----------------------------------------------------------

    def cpus(self) -> pd.DataFrame:
        """One row per vCPU (GDB thread): cpu, thread, pc, function, state, current."""
        return frames.cpus_frame(self.mi("-thread-info").payload)

    def select_cpu(self, cpu: int) -> None:
        """Make vCPU ``cpu`` (0-based, as in ``cpus()``) the current thread."""
        cpus = self.cpus()
        if not 0 <= cpu < len(cpus):
            raise ValueError(f"no vCPU {cpu}; this target has {len(cpus)}")
        self.mi(f"-thread-select {int(cpus.loc[cpu, 'thread'])}")

    def backtrace(self, limit: int | None = None) -> pd.DataFrame:
        """The current thread's stack: level, function, file, line, address, args."""
        bound = f" 0 {int(limit) - 1}" if limit else ""
        stack = self.mi(f"-stack-list-frames{bound}").payload.get("stack", [])
        try:
            args = self.mi(f"-stack-list-arguments --simple-values{bound}").payload
            by_level = {int(f["level"]): f.get("args", []) for f in args.get("stack-args", [])}
        except GdbError:
            by_level = {}
        return frames.backtrace_frame(stack, by_level)

    def frame(self) -> Frame:
        """The selected frame (where the target stopped, unless another was selected)."""
        return Frame.from_mi(self.mi("-stack-info-frame").payload["frame"])

    # -- sampling (mvnb/gdb/sampling.py) -----------------------------------------------

    sample = sampling.sample
    sample_periodic = sampling.sample_periodic

    def provenance(self) -> dict[str, Any]:
        """Where this session's data comes from: GDB's version, and what the owner (a
        ``Qemu``) says of the machine, guest and QEMU build."""
        out: dict[str, Any] = {}
        if self._owner is not None:
            out.update(self._owner.provenance())
        try:
            out["gdb"] = self.console("show version", timeout=10).splitlines()[0].strip()
        except Error:
            pass
        return out

    # -- ending --------------------------------------------------------------------------

    def detach(self) -> None:
        """Let the target go on without GDB, and end GDB: the stub is free for another
        client (``Session.connect(s.address)``). The session then says it is detached."""
        self._check_open()
        if self.running:
            self.interrupt()
        self.mi("-target-detach")
        self._detached = True
        self.close()

    def kill(self) -> None:
        """Kill the target (QEMU exits: "Terminated via GDBstub")."""
        try:
            self.console("kill", timeout=10)
        except (TargetExited, SessionClosed):
            pass

    def close(self) -> None:
        """End GDB (it detaches: QEMU's stub resumes a stopped guest). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.address is not None:
            stubs.release(self.address, self)
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once ``close()`` or ``detach()`` ended this session's GDB."""
        return self._closed

    @property
    def detached(self) -> bool:
        """True once ``detach()`` let the target go (the stub is free for another client)."""
        return self._detached

    @property
    def connected(self) -> bool:
        """True while GDB runs and the target is there (not closed, not gone away)."""
        return not self._closed and self._transport.state not in ("exited", "closed")

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ("detached" if self._detached else "closed" if self._closed
                 else self._transport.state)
        return f"<mvnb.Session {self.address or '(not attached)'} {state}>"


def _finalize(transport: Transport, workdir: tempfile.TemporaryDirectory[str]) -> None:
    transport.close()
    workdir.cleanup()


def _fault(error: GdbError, address: int) -> Error:
    match = re.search(r"(?:at|address)\s+(0x[0-9a-fA-F]+)", error.message)
    if match or "memory" in error.message.lower():
        at = int(match.group(1), 16) if match else int(address)
        return FaultError(f"{error.message} (reading at {int(address):#x})", at)
    return error


def _index_cache_dir() -> Path | None:
    path = cache_dir() / "gdb-index"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path


def use(session: Session) -> Session:
    """Make ``session`` the one ``%gdb`` magics talk to."""
    global _chosen
    _chosen = weakref.ref(session)
    return session


def current() -> Session:
    """The session ``%gdb`` uses: the one given to ``use()``, else the newest open one."""
    if _chosen is not None:
        chosen = _chosen()
        if chosen is not None and not chosen.closed:
            return chosen
    for ref in reversed(_sessions):
        session = ref()
        if session is not None and not session.closed:
            return session
    raise Error("no open mvnb session; open one with vm.session() or mvnb.Session.connect()")
