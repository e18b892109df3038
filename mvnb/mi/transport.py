"""The MI transport: one GDB process, tokens mapped to waiters, leader/follower reading.

A command is written as ``TOKEN-command``; the caller that waits for it reads GDB's output
itself ("leads") until ``TOKEN^...`` arrives, dispatching every line it reads on the way, so
a command costs one wake-up of the caller and no handoff between threads (a reader thread
that wakes a waiting caller cost about a third of the bare MI loop's rate on two cores).
One background thread reads only while no caller leads: it sleeps in ``epoll`` on GDB's
stdout, armed one-shot, and a leader disarms it while it reads and re-arms it when it lets
go, so async records (``*stopped``, ``=breakpoint-modified``) that arrive while nobody waits
are still handled at once and the thread never wakes during a command.

Stream records are attributed to the oldest command still waiting (GDB answers commands in
order). ``*stopped``/``*running`` keep the run state, which only async records carry.
A SIGINT that lands while the main thread dispatches lines is held until the lines are
dispatched; while it waits in ``poll`` it interrupts at once (KeyboardInterrupt leaves the
transport consistent; the abandoned command's result goes to ``stray``).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from ..errors import GdbError, MIProtocolError, SessionClosed, TargetTimeout
from .records import AsyncRecord, Record, ResultRecord, StreamRecord, parse_line

__all__ = ["Pending", "Transport"]

_PROMPT_WAIT_MS = 1
_CHUNK = 1 << 16  # a pipe holds 64 KiB; a longer line arrives over several reads
_ARMED = select.EPOLLIN | select.EPOLLONESHOT
# Disarmed but still one-shot: the kernel always adds EPOLLHUP, which must not fire forever.
_DISARMED = select.EPOLLONESHOT


class Pending:
    """A command sent to GDB whose result record has not been read yet."""

    __slots__ = ("_transport", "abandoned", "command", "done", "error", "result", "streams",
                 "token")

    def __init__(self, token: int, command: str, transport: Transport) -> None:
        self.token = token
        self.command = command
        self.streams: list[StreamRecord] = []
        self.result: ResultRecord | None = None
        self.error: BaseException | None = None
        self.done = False
        self.abandoned = False  # timed out or interrupted: its result goes to ``stray``
        self._transport = transport

    def wait(self, timeout: float | None) -> ResultRecord:
        """The result record; raises GdbError for ``^error``, TargetTimeout when GDB is silent."""
        return self._wait(timeout, None)

    def _wait(self, timeout: float | None, write: Callable[[], None] | None) -> ResultRecord:
        if write is not None or not self.done:
            transport = self._transport
            deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
            try:
                finished = transport._wait_until(lambda: self.done, deadline, write)
            except BaseException:  # KeyboardInterrupt: forget this command, keep the rest
                transport._abandon(self)
                raise
            if not finished:
                transport._abandon(self)
                if not self.done:
                    raise TargetTimeout(
                        f"gdb did not answer {self.command!r} within {timeout} s; it may be "
                        "busy (loading symbols, waiting on the stub); retry with a longer "
                        "timeout="
                    )
        if self.error is not None:
            raise self.error
        assert self.result is not None
        if self.result.cls == "error":
            raise GdbError(str(self.result.payload.get("msg", "")), self.command)
        return self.result


class _SigintShield:
    """Holds a SIGINT while the main thread dispatches GDB's output; passes it on in ``poll``.

    Installed for one leading span (two ``signal.signal`` calls). The original handler runs
    as soon as the shield is removed, or at once while the leader waits for output.
    """

    __slots__ = ("held", "in_poll", "original")

    def __init__(self) -> None:
        self.held = False
        self.in_poll = False
        original = signal.signal(signal.SIGINT, self)
        self.original: Any = signal.default_int_handler if original is None else original

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.held = True
        if self.in_poll:  # nothing half-done: let the original handler act now
            self.remove()

    def remove(self) -> None:
        if self.original is None:
            return
        original, self.original = self.original, None
        signal.signal(signal.SIGINT, original)
        if self.held:
            self.held = False
            signal.raise_signal(signal.SIGINT)  # runs the original handler here


def _shield() -> _SigintShield | None:
    if threading.current_thread() is not threading.main_thread():
        return None  # only the main thread runs Python signal handlers
    try:
        return _SigintShield()
    except (ValueError, OSError):  # not the main interpreter
        return None


class Transport:
    """A GDB/MI process, read by whichever caller waits and otherwise by one thread.

    ``on_async`` is called with every async record, on the thread that read it (a waiting
    caller or the background thread; keep it short, and send no commands from it).
    Run state: ``state`` is "stopped", "running", "exited" or "closed"; ``stop_seq`` counts
    ``*stopped`` records and ``wait_stopped(after)`` waits for the next one.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        workdir: Path,
        on_async: Callable[[AsyncRecord], None] | None = None,
        popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.stderr_path = workdir / "gdb.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.process = popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin_fd = self.process.stdin.fileno()
        self._fd = self.process.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._write_lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._order: collections.deque[Pending] = collections.deque()
        self._lock = threading.Lock()  # guards _pending, _order, run state, the reading role
        self._cv = threading.Condition(self._lock)
        self._leading = False  # a thread holds the reading role (reads and dispatches)
        self._sleepers = 0  # threads in _cv.wait: notify only when there are some
        self._partial: list[bytes] = []  # the start of a line whose end has not arrived
        self._prompt_due = False  # a result was read and the "(gdb)" after it was not
        self._poll = select.poll()  # the leader's (one leader at a time)
        self._poll.register(self._fd, select.POLLIN)
        self._epoll = select.epoll()  # the background thread's
        self._epoll.register(self._fd, _ARMED)
        self._wake_r, self._wake_w = os.pipe()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._stopping = False
        self.state = "stopped"
        self.stop_seq = 0
        self.last_stop: AsyncRecord | None = None
        self.on_async = on_async
        self.stray: collections.deque[Record | str] = collections.deque(maxlen=100)
        self.protocol_errors: collections.deque[str] = collections.deque(maxlen=100)
        self.closed_reason: str | None = None
        self._reader = threading.Thread(target=self._background, name="mvnb-mi-reader",
                                        daemon=True)
        self._reader.start()

    # -- sending -----------------------------------------------------------------------

    def send(self, command: str) -> Pending:
        """Write ``command`` with a fresh token; return its ``Pending`` at once."""
        pending = Pending(0, command, self)
        self._write(pending)
        return pending

    def command(self, command: str, timeout: float | None = 30.0) -> ResultRecord:
        """Send ``command`` and wait for its result record.

        The reading role is taken before the command is written, so GDB's answer cannot
        wake the background thread first.
        """
        pending = Pending(0, command, self)
        return pending._wait(timeout, lambda: self._write(pending))

    def _write(self, pending: Pending) -> None:
        """Give ``pending`` its token and write it; tokens reach GDB in the order of ``_order``."""
        with self._write_lock:
            with self._lock:
                if self.closed_reason is not None:
                    raise self._closed_error()
                pending.token = token = next(self._tokens)
                self._pending[token] = pending
                self._order.append(pending)
            data = f"{token}{pending.command}\n".encode()
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._stdin_fd, view) :]
            except OSError:
                pass
            else:
                return
        self._close_all("gdb's standard input is closed")
        raise self._closed_error()

    def json_command(self, command: str, timeout: float | None = 30.0) -> object:
        """Send one of mvnb's in-GDB commands and decode its ``json`` answer."""
        return json.loads(self.command(command, timeout).payload["json"])

    # -- run state ---------------------------------------------------------------------

    def wait_stopped(self, after: int, timeout: float | None) -> AsyncRecord | None:
        """Wait until a ``*stopped`` numbered past ``after`` arrives; None on timeout.

        Returns early (None) if the target or GDB goes away; check ``state``.
        """
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        self._wait_until(
            lambda: self.stop_seq > after or self.state in ("exited", "closed"), deadline)
        return self.last_stop if self.stop_seq > after else None

    # -- waiting: leader/follower ------------------------------------------------------

    def _wait_until(self, done: Callable[[], bool], deadline: float | None,
                    write: Callable[[], None] | None = None) -> bool:
        """Wait until ``done()``, reading GDB's output meanwhile unless another thread does.

        ``write`` (the command) runs once the role is settled. False when ``deadline``
        passes first. A thread that finds the reading role taken sleeps until the role is
        free or something it may wait for was dispatched.
        """
        if write is None and done():
            return True
        shield = _shield()
        try:
            return self._wait_shielded(done, deadline, write, shield)
        finally:
            if shield is not None:
                shield.remove()

    def _wait_shielded(self, done: Callable[[], bool], deadline: float | None,
                       write: Callable[[], None] | None, shield: _SigintShield | None) -> bool:
        leading = waited = False
        try:
            if write is not None:
                with self._lock:
                    if not self._leading:
                        self._leading = leading = True
                if leading:  # the background thread sleeps while we read
                    self._arm(_DISARMED)
                write()
            if not leading:
                with self._lock:
                    while not done():
                        if not self._leading:
                            self._leading = leading = True
                            break
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            break
                        waited = True
                        self._sleepers += 1
                        if shield is not None:
                            shield.in_poll = True
                        try:
                            self._cv.wait(left)
                        finally:
                            self._sleepers -= 1
                            if shield is not None:
                                shield.in_poll = False
                if not leading:
                    if waited:  # the background thread may have deferred to us: re-arm it
                        self._rearm()
                    return done()
                self._arm(_DISARMED)
            return self._lead(done, deadline, shield)
        finally:
            if leading:
                with self._lock:
                    self._leading = False
                    if self._sleepers:
                        self._cv.notify_all()
                self._rearm()

    def _lead(self, done: Callable[[], bool], deadline: float | None,
              shield: _SigintShield | None) -> bool:
        """With the reading role: read and dispatch until ``done()`` or ``deadline``."""
        poll = self._poll.poll
        while not done():
            if deadline is None:
                wait_ms = None
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                wait_ms = int(left * 1000) + 1
            if shield is not None:
                shield.in_poll = True
                try:
                    ready = poll(wait_ms)
                finally:
                    shield.in_poll = False
            else:
                ready = poll(wait_ms)
            if ready and not self._read_once():
                return done()  # gdb exited; every waiter has been failed
        if self._prompt_due and poll(_PROMPT_WAIT_MS):
            # GDB writes "(gdb) " a few microseconds after a result: reading it here spares
            # the background thread a wake-up (and the GIL a handoff) per command. Only an
            # optimisation: a prompt that comes later is the background thread's.
            self._read_once()
        return True

    def _rearm(self) -> None:
        self._arm(_ARMED)

    def _arm(self, events: int) -> None:
        try:
            self._epoll.modify(self._fd, events)
        except (OSError, ValueError):  # closed
            pass

    def _read_once(self) -> bool:
        """Read what GDB wrote and dispatch the complete lines; False at end of file."""
        try:
            chunk = os.read(self._fd, _CHUNK)
        except BlockingIOError:
            return True
        except OSError as error:
            chunk = b""
            reason = f"reading gdb's output failed: {error}"
        else:
            reason = "gdb exited"
        if not chunk:
            if self._partial:  # gdb died mid-line: not a record to act on
                line, self._partial = b"".join(self._partial), []
                self.protocol_errors.append(
                    f"gdb's output ended mid-line: {line[:200].decode(errors='replace')!r}")
            self._close_all(reason)
            return False
        if b"\n" not in chunk:
            self._partial.append(chunk)
            return True
        lines = chunk.split(b"\n")
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
            self._partial = []
        tail = lines.pop()
        if tail:
            self._partial.append(tail)
        self._dispatch_lines(lines)
        return True

    def _background(self) -> None:
        """Read while no caller waits: async records, late results, the prompt."""
        fd = self._fd
        while not self._stopping:
            try:
                events = self._epoll.poll()
            except (OSError, ValueError):
                return
            if self._stopping:
                return
            if not any(ready == fd for ready, _ in events):
                continue
            with self._lock:
                if self._leading or self._sleepers:
                    continue  # the role's holder (or the waiter about to take it) re-arms
                self._leading = True
            try:
                alive = self._read_once()
            finally:
                with self._lock:
                    self._leading = False
                    if self._sleepers:
                        self._cv.notify_all()
                self._rearm()
            if not alive:
                return

    # -- dispatching -------------------------------------------------------------------

    def _dispatch_lines(self, lines: list[bytes]) -> None:
        try:
            for raw in lines:
                self._dispatch_line(raw.decode("utf-8", errors="replace"))
        except Exception as error:  # never fail silently: waiters must hear of it
            self._close_all(f"the MI reader failed: {error!r}")

    def _dispatch_line(self, line: str) -> None:
        if line.startswith("(gdb)"):
            self._prompt_due = False
            return
        try:
            record = parse_line(line)
        except MIProtocolError as error:
            self._protocol_error(error)
            return
        if record is None:
            return
        if isinstance(record, ResultRecord):
            self._on_result(record)
        elif isinstance(record, StreamRecord):
            with self._lock:
                if self._order:
                    self._order[0].streams.append(record)
                else:
                    self.stray.append(record)
        else:
            self._on_async(record)

    def _on_result(self, record: ResultRecord) -> None:
        with self._lock:
            token = record.token
            pending = self._pending.pop(token, None) if token is not None else None
            if pending is None and token is None and self._order:
                pending = self._pending.pop(self._order[0].token, None)
            if pending is None:  # an unknown token (a command given up on): keep it, go on
                self.stray.append(record)
                return
            # GDB answers in order: a command older than this one lost its answer.
            while self._order and self._order[0] is not pending:
                lost = self._order.popleft()
                self._pending.pop(lost.token, None)
                self._fail(lost, MIProtocolError(
                    f"gdb answered a later command ({pending.command!r}) before "
                    f"{lost.command!r}; its answer was lost"))
            if self._order:
                self._order.popleft()
            if record.cls == "running":
                self.state = "running"
            self._prompt_due = True
            result = ResultRecord(token, record.cls, record.payload, tuple(pending.streams))
            if pending.abandoned:
                self.stray.append(result)
            else:
                pending.result = result
            pending.done = True
            if self._sleepers:
                self._cv.notify_all()

    def _fail(self, pending: Pending, error: BaseException) -> None:
        """Finish ``pending`` with ``error`` (``_lock`` held)."""
        if not pending.abandoned:
            pending.error = error
        pending.done = True

    def _abandon(self, pending: Pending) -> None:
        with self._lock:
            if not pending.done:
                pending.abandoned = True

    def _on_async(self, record: AsyncRecord) -> None:
        with self._lock:
            if record.kind == "exec" and record.cls == "running":
                self.state = "running"
            elif record.kind == "exec" and record.cls == "stopped":
                self.state = "stopped"
                self.last_stop = record
                self.stop_seq += 1
            elif record.kind == "notify" and record.cls == "thread-group-exited":
                self.state = "exited"
            elif record.kind == "notify" and record.cls == "thread-group-started":
                if self.state == "exited":
                    self.state = "stopped"
            if self._sleepers:
                self._cv.notify_all()
        if self.on_async is not None:
            try:
                self.on_async(record)
            except Exception as error:  # a listener's bug must not stop the reader
                self.protocol_errors.append(f"async listener failed: {error!r}")

    def _protocol_error(self, error: MIProtocolError) -> None:
        """A line that is not MI: fail the oldest waiting command with it (no hang)."""
        self.protocol_errors.append(str(error))
        with self._lock:
            if not self._order:
                return
            pending = self._order.popleft()
            self._pending.pop(pending.token, None)
            self._fail(pending, error)
            if self._sleepers:
                self._cv.notify_all()

    # -- shutting down ----------------------------------------------------------------

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _closed_error(self) -> SessionClosed:
        return SessionClosed(f"the GDB session is closed ({self.closed_reason})",
                             self.stderr_tail())

    def _close_all(self, reason: str) -> None:
        if self.closed_reason is None and reason != "closed":
            # GDB may still be flushing its last words to stderr: wait for it to exit.
            try:
                self.process.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
        with self._lock:
            if self.closed_reason is None:
                self.closed_reason = reason
            self.state = "closed"
            waiting = list(self._order)
            self._order.clear()
            self._pending.clear()
            error = self._closed_error()
            for pending in waiting:
                self._fail(pending, error)
            self._cv.notify_all()

    @property
    def alive(self) -> bool:
        return self.closed_reason is None and self.process.poll() is None

    def close(self, timeout: float = 5.0) -> None:
        """End GDB: ``-gdb-exit``, then SIGTERM, then SIGKILL; stops the background thread."""
        if self.process.poll() is None:
            try:
                self.send("-gdb-exit")
            except SessionClosed:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._reader.join(timeout)
        self._close_all("closed")
        if not self._reader.is_alive():
            self._epoll.close()
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._wake_r = self._wake_w = -1
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._stderr.close()
