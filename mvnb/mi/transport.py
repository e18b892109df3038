"""The MI transport: one GDB process; the caller that waits reads GDB's output itself.

A command is written as ``TOKEN-command`` and its caller reads GDB's stdout until
``TOKEN^...`` arrives (leader/follower): whole chunks (``os.read`` of up to 64 KiB) split on
newlines, every line dispatched on the way. A command thus returns as soon as GDB answers,
with no handoff between threads (a reader thread that wakes the caller cost about 15 % of
the bare MI loop's rate; pygdbmi's ``write()`` waits 0.2 s for more output: shared/facts).
One reader at a time: other waiting threads sleep until the reader has dispatched what they
wait for or lets go. A background thread reads only while nobody waits, so async records
(``*stopped``, ``=breakpoint-modified``) are handled at once also then: it sleeps in
``epoll`` on GDB's stdout, armed one-shot only while no caller waits.

GDB answers commands in the order it reads them, and tokens are taken and written under one
lock, so stream records (``~ @ &``) belong to the oldest command whose result has not come.
A command given up on (timeout, Ctrl-C) keeps its place until its late result arrives: its
stream output is swallowed with it and the result is kept in ``stray``. ``*stopped`` and
``*running`` keep the run state, which only async records carry.

Ctrl-C in the main thread: while the main thread reads and dispatches, a SIGINT is held and
raised once it sleeps in ``poll`` or lets go, so a ``KeyboardInterrupt`` never lands between
reading a chunk and dispatching it.
"""

from __future__ import annotations

import _signal  # signal.signal without the enum wrapping: 0.8 µs a pair instead of 12 µs
import collections
import itertools
import json
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from ..errors import GdbError, MIProtocolError, SessionClosed, TargetTimeout
from .records import AsyncRecord, Record, ResultRecord, StreamRecord, fast_result, parse_bytes

__all__ = ["Pending", "Transport"]

_CHUNK = 1 << 16  # a pipe holds 64 KiB; a longer line arrives over several reads
_SLICE = 0.5  # longest single sleep: bounds how late a SIGINT caught just before one acts
_PROMPT_MS = 2  # GDB writes "(gdb) " microseconds after a result: read it with the result
_PROMPT_READS = 8  # but not for ever (output that goes on without a prompt)
_BIG_COMMAND = 4096  # longer commands are written before their caller counts as waiting
_ARMED = select.EPOLLIN | select.EPOLLONESHOT
_DISARMED = select.EPOLLONESHOT  # the kernel still adds EPOLLHUP: one-shot keeps it to one
_SIGINT = _signal.SIGINT
_MAIN = threading.main_thread().ident


class Pending:
    """A command sent to GDB whose result record has not been read yet."""

    __slots__ = ("_transport", "abandoned", "command", "done", "error", "result", "streams",
                 "token")

    def __init__(self, transport: Transport, command: str) -> None:
        self._transport = transport
        self.token = 0
        self.command = command
        self.streams: list[StreamRecord] = []
        self.result: ResultRecord | None = None
        self.error: BaseException | None = None
        self.done = False  # the result (or an error) has arrived
        self.abandoned = False  # given up on: its late result goes to ``stray``

    def wait(self, timeout: float | None) -> ResultRecord:
        """The result record; raises GdbError for ``^error``, TargetTimeout when GDB is silent.

        On a timeout or a KeyboardInterrupt the command is abandoned (see the module doc).
        """
        return self._transport._finish(self, timeout, write=False)

    def _outcome(self) -> ResultRecord:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        if self.result.cls == "error":
            raise GdbError(str(self.result.payload.get("msg", "")), self.command)
        return self.result


class _Shield:
    """The main thread's SIGINT handler while it reads: holds the signal while lines are
    dispatched, passes it to the handler it replaced while the thread sleeps."""

    __slots__ = ("held", "original", "sleeping")

    def __init__(self, original: Callable[[int, FrameType | None], Any]) -> None:
        self.original = original
        self.held = False
        self.sleeping = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.sleeping:
            self.original(signum, frame)  # KeyboardInterrupt out of poll: nothing half-done
        else:
            self.held = True

    def pass_on(self) -> None:
        """Let a held SIGINT act now (the thread is between lines, about to sleep)."""
        self.held = False
        self.original(_SIGINT, None)

    @classmethod
    def install(cls) -> _Shield | None:
        if threading.get_ident() != _MAIN:
            return None  # only the main thread runs Python signal handlers
        original = _signal.getsignal(_SIGINT)
        if not callable(original):
            return None  # SIG_DFL, SIG_IGN or a handler set from C: no KeyboardInterrupt
        shield = cls(original)
        try:
            _signal.signal(_SIGINT, shield)
        except ValueError:  # not the main interpreter
            return None
        return shield

    def remove(self) -> None:
        _signal.signal(_SIGINT, self.original)
        if self.held:
            self.pass_on()


class Transport:
    """A GDB/MI process, read by whichever caller waits and otherwise by one thread.

    ``on_async`` is called with every async record on the thread that read it (a waiting
    caller or the background thread): keep it short and send no commands from it.
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
        self._write_lock = threading.Lock()  # token order == write order == answer order
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()  # guards everything below but the reader's own state
        self._by_token: dict[int, Pending] = {}
        self._order: collections.deque[Pending] = collections.deque()
        self._waiting = 0  # callers in _wait: while there are any, the thread does not read
        self._reading = False  # one thread holds the reader's role
        self._sleepers: list[threading.Lock] = []  # waiters sleeping while another reads
        # The reader's own state (only the role's holder touches it):
        self._parts: list[bytes] = []  # the start of a line whose end has not arrived
        self._prompt_due = False  # a result was read and the "(gdb)" after it was not
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        # The background thread's:
        self._epoll = select.epoll()
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
        pending = Pending(self, command)
        self._write(pending)
        return pending

    def command(self, command: str, timeout: float | None = 30.0) -> ResultRecord:
        """Send ``command`` and wait for its result record.

        The caller counts as waiting before the command is written, so GDB's answer never
        wakes the background thread.
        """
        return self._finish(Pending(self, command), timeout, write=True)

    def json_command(self, command: str, timeout: float | None = 30.0) -> object:
        """Send one of mvnb's in-GDB commands and decode its ``json`` answer."""
        return json.loads(self.command(command, timeout).payload["json"])

    def _write(self, pending: Pending) -> None:
        """Give ``pending`` its token and write it; tokens reach GDB in ``_order``'s order."""
        with self._write_lock:
            with self._lock:
                if self.closed_reason is not None:
                    raise self._closed_error()
                pending.token = token = next(self._tokens)
                self._by_token[token] = pending
                self._order.append(pending)
            view = memoryview(f"{token}{pending.command}\n".encode())
            try:
                while view:
                    view = view[os.write(self._stdin_fd, view) :]
            except OSError:
                failed = True
            else:
                failed = False
        if failed:
            self._close_all("gdb's standard input is closed")
            raise self._closed_error()

    def _finish(self, pending: Pending, timeout: float | None, write: bool) -> ResultRecord:
        """Wait for ``pending`` (writing it first when ``write``); abandon it on a timeout or
        a KeyboardInterrupt unless its result came in the meantime."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        try:
            arrived = self._wait(lambda: pending.done, deadline, pending if write else None)
        except BaseException:
            self._abandon(pending)
            raise
        if not arrived and not self._abandon(pending):
            raise TargetTimeout(
                f"gdb did not answer {pending.command!r} within {timeout} s; it may be busy "
                "(loading symbols, waiting on the stub); retry with a longer timeout="
            )
        return pending._outcome()

    def _abandon(self, pending: Pending) -> bool:
        """Give up on ``pending`` unless it is done; True if it is (its result is not lost)."""
        with self._lock:
            if not pending.done:
                pending.abandoned = True
            return pending.done

    # -- run state ---------------------------------------------------------------------

    def wait_stopped(self, after: int, timeout: float | None, *,
                     interrupt_every: float | None = None) -> AsyncRecord | None:
        """Wait until a ``*stopped`` numbered past ``after`` arrives; None on timeout.

        Returns early (None) if the target or GDB goes away; check ``state``. With
        ``interrupt_every``, ``-exec-interrupt`` is sent again each time that many seconds
        pass without a stop: GDB 13 (all-stop, remote) loses an interrupt that reaches the
        stub while the target sits at a breakpoint hit GDB then resumes by itself (a Python
        ``stop()`` that returns False, a false condition). QEMU's stub drops the ^C byte of
        a stopped target (gdb_read_byte), and GDB forgets its pending ^C at the next stop
        reply (remote_target::wait_as). Once the target has stopped, a repeated ^C is
        dropped the same way, so repeating is harmless.
        """
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)

        def stopped() -> bool:
            return self.stop_seq > after or self.state in ("exited", "closed")

        if interrupt_every is None:
            self._wait(stopped, deadline, None)
        else:
            while True:
                step = time.monotonic() + interrupt_every
                if self._wait(stopped, step if deadline is None else min(step, deadline),
                              None):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self.send("-exec-interrupt")
        return self.last_stop if self.stop_seq > after else None

    # -- waiting: leader/follower ------------------------------------------------------

    def _wait(self, done: Callable[[], bool], deadline: float | None,
              write: Pending | None) -> bool:
        """Wait until ``done()``, reading GDB's output meanwhile unless another thread does.

        Writes ``write`` first. False when ``deadline`` passes first.
        """
        if write is None and done():
            return True
        shield = _Shield.install()
        try:
            if write is not None and len(write.command) > _BIG_COMMAND:
                self._write(write)  # GDB may need a reader to drain its output meanwhile
                write = None
            with self._lock:
                self._waiting += 1
                if self._waiting == 1:
                    self._arm(False)
            try:
                if write is not None:
                    self._write(write)
                return self._take_turn(done, deadline, shield)
            finally:
                with self._lock:
                    self._waiting -= 1
                    if self._waiting == 0 and self.closed_reason is None:
                        self._arm(True)
        finally:
            if shield is not None:
                shield.remove()

    def _take_turn(self, done: Callable[[], bool], deadline: float | None,
                   shield: _Shield | None) -> bool:
        """Sleep while another thread reads; read once the role is free."""
        while True:
            with self._lock:
                if done():
                    return True
                if not self._reading:
                    self._reading = True
                    break
                sleeper = threading.Lock()
                sleeper.acquire()
                self._sleepers.append(sleeper)
            try:
                left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
                if left <= 0:
                    return done()
                self._sleep(shield, sleeper.acquire, True, left)
            finally:
                with self._lock:
                    if sleeper in self._sleepers:
                        self._sleepers.remove(sleeper)
        try:
            return self._lead(done, deadline, shield)
        finally:
            with self._lock:
                self._reading = False
                self._wake_sleepers()

    def _lead(self, done: Callable[[], bool], deadline: float | None,
              shield: _Shield | None) -> bool:
        """With the reader's role: read and dispatch until ``done()`` or ``deadline``."""
        poll = self._poll.poll
        while not done():
            if deadline is None:
                wait_ms = int(_SLICE * 1000)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                wait_ms = min(int(_SLICE * 1000), int(left * 1000) + 1)
            if shield is None:
                ready = poll(wait_ms)
            else:
                ready = self._sleep(shield, poll, wait_ms)
            if ready and not self._read():
                return done()  # gdb exited; every waiter has been failed
        for _ in range(_PROMPT_READS):  # read it now: it would wake the background thread
            if not (self._prompt_due and poll(_PROMPT_MS) and self._read()):
                break
        return True

    @staticmethod
    def _sleep(shield: _Shield | None, block: Callable[..., Any], *args: Any) -> Any:
        """``block(*args)`` (a poll or a lock wait) with SIGINT acting at once."""
        if shield is None:
            return block(*args)
        if shield.held:
            shield.pass_on()
        shield.sleeping = True
        try:
            return block(*args)
        finally:
            shield.sleeping = False

    def _wake_sleepers(self) -> None:
        """Wake every waiter that sleeps while another thread reads (``_lock`` held)."""
        for sleeper in self._sleepers:
            sleeper.release()
        self._sleepers.clear()

    def _arm(self, armed: bool) -> None:
        """Let the background thread wake on GDB's output, or not (``_lock`` held)."""
        try:
            self._epoll.modify(self._fd, _ARMED if armed else _DISARMED)
        except (OSError, ValueError):  # closed
            pass

    def _background(self) -> None:
        """Read while no caller waits: async records, late results, the prompt."""
        fd = self._fd
        while True:
            try:
                events = self._epoll.poll()
            except (OSError, ValueError):
                return
            if self._stopping:
                return
            if not any(ready == fd for ready, _ in events):
                continue
            with self._lock:
                if self._waiting or self._reading or self.closed_reason is not None:
                    continue  # a waiting caller reads; the last one to leave re-arms
                self._reading = True
            alive = False
            try:
                alive = self._read()
            finally:
                with self._lock:
                    self._reading = False
                    self._wake_sleepers()
                    if alive and self._waiting == 0:
                        self._arm(True)
            if not alive:
                return

    # -- reading -----------------------------------------------------------------------

    def _read(self) -> bool:
        """Read what GDB wrote and dispatch the complete lines; False at end of file."""
        try:
            chunk = os.read(self._fd, _CHUNK)
        except BlockingIOError:
            return True
        except OSError as error:
            self._close_all(f"reading gdb's output failed: {error}")
            return False
        if not chunk:
            if self._parts:  # gdb died mid-line: not a record to act on
                line = b"".join(self._parts)
                self._parts = []
                self.protocol_errors.append(f"gdb's output ended mid-line: {line[:200]!r}")
            self._close_all("gdb exited")
            return False
        if b"\n" not in chunk:
            self._parts.append(chunk)
            return True
        lines = chunk.split(b"\n")
        if self._parts:
            self._parts.append(lines[0])
            lines[0] = b"".join(self._parts)
            self._parts = []
        tail = lines.pop()
        if tail:
            self._parts.append(tail)
        for line in lines:
            try:
                self._dispatch(line)
            except Exception as error:  # never fail silently: waiters must hear of it
                self._close_all(f"the MI reader failed on {line[:200]!r}: {error!r}")
                return False
        return True

    def _dispatch(self, line: bytes) -> None:
        if line.startswith(b"(gdb)"):
            self._prompt_due = False
            return
        fast = fast_result(line)
        if fast is not None:
            self._on_result(*fast)
            return
        try:
            record = parse_bytes(line)
        except MIProtocolError as error:
            self._protocol_error(error)
            return
        if record is None:
            return
        if isinstance(record, ResultRecord):
            self._on_result(record.token, record.cls, record.payload)
        elif isinstance(record, StreamRecord):
            with self._lock:
                if self._order:
                    self._order[0].streams.append(record)
                else:
                    self.stray.append(record)
        else:
            self._on_async(record)

    def _on_result(self, token: int | None, cls: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._prompt_due = True
            pending = self._by_token.pop(token, None) if token is not None else None
            if pending is None and token is None and self._order:
                pending = self._by_token.pop(self._order[0].token, None)
            if pending is None:  # an unknown token: keep it, go on
                self.stray.append(ResultRecord(token, cls, payload))
                return
            # GDB answers in order: a command older than this one lost its answer (it was
            # not MI, or never came); fail it rather than let it wait for its timeout.
            while self._order[0] is not pending:
                lost = self._order.popleft()
                self._by_token.pop(lost.token, None)
                self._fail(lost, MIProtocolError(
                    f"gdb answered a later command ({pending.command!r}) before "
                    f"{lost.command!r} (token {lost.token}); its answer was lost"))
            self._order.popleft()
            if cls == "running":
                self.state = "running"
            result = ResultRecord(token, cls, payload, tuple(pending.streams))
            if pending.abandoned:
                self.stray.append(result)  # with its streams: they were nobody else's
            if not pending.done:
                pending.result = result
                pending.done = True
            if self._sleepers:
                self._wake_sleepers()

    def _fail(self, pending: Pending, error: BaseException) -> None:
        """Finish ``pending`` with ``error`` unless it is done (``_lock`` held)."""
        if not pending.done:
            pending.error = error
            pending.done = True

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
                self._wake_sleepers()
        if self.on_async is not None:
            try:
                self.on_async(record)
            except Exception as error:  # a listener's bug must not stop the reader
                self.protocol_errors.append(f"async listener failed: {error!r}")

    def _protocol_error(self, error: MIProtocolError) -> None:
        """A line that is not MI belongs to the oldest command, like stream output: fail
        it with the error (no hang); it keeps its place until its result comes."""
        self.protocol_errors.append(str(error))
        with self._lock:
            if not self._order:
                return
            pending = self._order[0]
            self._fail(pending, error)
            pending.abandoned = True
            if self._sleepers:
                self._wake_sleepers()

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
        with self._lock:
            if self.closed_reason is None:
                self.closed_reason = reason
            self.state = "closed"
            waiting = list(self._order)
            self._order.clear()
            self._by_token.clear()
            self._wake_sleepers()
        error = self._closed_error()
        with self._lock:
            for pending in waiting:
                self._fail(pending, error)
        self._stop_background()

    def _stop_background(self) -> None:
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

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
        self._stop_background()
        if self._reader is not threading.current_thread():
            self._reader.join(timeout)
        self._close_all("closed")
        if not self._reader.is_alive():
            self._epoll.close()
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._stderr.close()
