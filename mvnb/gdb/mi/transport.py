"""The MI transport: one GDB process; the caller that waits reads GDB's output itself.

A command is written as ``TOKEN-command`` and its caller reads GDB's stdout until
``TOKEN^...`` arrives (leader/follower): whole chunks (``os.read`` of up to 64 KiB) split on
newlines, every line dispatched on the way. A command thus returns as soon as GDB answers,
with no handoff between threads (a reader thread that wakes the caller cost about 15 % of
the bare MI loop's rate; pygdbmi's ``write()`` waits 0.2 s for more output: shared/facts).
One reader at a time: other waiting threads sleep until the reader has dispatched what they
wait for or lets go. A background thread reads while nobody waits, when GDB may write on its
own (the target runs, or a command nobody waits for is unanswered), so async records
(``*stopped``, ``=breakpoint-modified``) are handled at once also then: it sleeps in
``epoll`` on GDB's stdout, armed one-shot only then, so it never wakes during a command.

Tokens are taken and commands written under one lock, so GDB answers in the order the
commands are kept in; what each line does to them and to the run state is in
mvnb.gdb.mi.dispatch. A command given up on (timeout, Ctrl-C) keeps its place until its late
result arrives: its stream output is swallowed with it, and a result that came just before
the give-up is returned. Ctrl-C while the main thread reads is held between lines and acted
on in ``poll`` (mvnb.gdb.mi.sigint).
"""

from __future__ import annotations

import itertools
import json
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...errors import GdbError, SessionClosed, TargetTimeout
from .dispatch import Dispatcher
from .records import AsyncRecord, ResultRecord, StreamRecord
from .sigint import SigintShield

__all__ = ["Pending", "Transport"]

_CHUNK = 1 << 16  # a pipe holds 64 KiB; a longer line arrives over several reads
_SLICE = 0.5  # longest single sleep: bounds how late a SIGINT caught just before one acts
_PROMPT_MS = 2  # GDB writes "(gdb) " microseconds after a result: read it with the result
_PROMPT_READS = 8  # but not for ever (output that goes on without a prompt)
_BIG_COMMAND = 4096  # longer commands are written before their caller counts as waiting
_ARMED = select.EPOLLIN | select.EPOLLONESHOT
_DISARMED = select.EPOLLONESHOT  # the kernel still adds EPOLLHUP: one-shot keeps it to one
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


class Transport(Dispatcher):
    """A GDB/MI process, read by whichever caller waits and otherwise by one thread.

    The run state, ``stray``, ``protocol_errors`` and ``on_async`` are ``Dispatcher``'s;
    ``wait_stopped(after)`` waits for the ``*stopped`` numbered past ``after``.
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
        super().__init__(on_async)
        self._write_lock = threading.Lock()  # token order == write order == answer order
        self._tokens = itertools.count(1)
        self._waiting = 0  # callers in _wait: while there are any, the thread does not read
        self._reading = False  # one thread holds the reader's role
        self._parts: list[bytes] = []  # the start of a line whose end has not arrived
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        # The background thread's:
        self._epoll = select.epoll()
        self._epoll.register(self._fd, _ARMED)
        self._armed = True
        self._wake_r, self._wake_w = os.pipe()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._stopping = False
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

    def _write(self, pending: Pending, *, enter: bool = False) -> bool:
        """Give ``pending`` its token and write it; tokens reach GDB in ``_order``'s order.

        With ``enter``, the caller also starts waiting (as ``_enter``) under the same lock,
        and the result says whether it took the reader's role.
        """
        leading = False
        with self._write_lock:
            with self._lock:
                if self.closed_reason is not None:
                    raise self._closed_error()
                pending.token = token = next(self._tokens)
                self._register(pending)
                if enter:
                    leading = self._enter()
                elif self._waiting == 0:  # sent without a waiter: its answer is unattended
                    self._arm(True)
            view = memoryview(f"{token}{pending.command}\n".encode())
            try:
                while view:
                    view = view[os.write(self._stdin_fd, view) :]
            except OSError:
                failed = True
            else:
                failed = False
        if failed:
            if enter:
                self._leave(leading)
            self._close_all("gdb's standard input is closed")
            raise self._closed_error()
        return leading

    def _enter(self) -> bool:
        """Count the caller as waiting (its thread reads: the background one is disarmed) and
        give it the reader's role if free; True if it took it (``_lock`` held)."""
        self._waiting += 1
        if self._armed:
            self._arm(False)
        if self._reading:
            return False
        self._reading = True
        return True

    def _leave(self, leading: bool) -> None:
        """Undo ``_enter``; the last waiter to go arms the background thread if needed."""
        with self._lock:
            if leading:
                self._reading = False
                if self._sleepers:
                    self._wake_sleepers()
            self._waiting -= 1
            if self._waiting == 0 and self._unattended_output():
                self._arm(True)

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
                try:
                    self.send("-exec-interrupt")
                except SessionClosed:
                    break
        return self.last_stop if self.stop_seq > after else None

    # -- waiting: leader/follower ------------------------------------------------------

    def _wait(self, done: Callable[[], bool], deadline: float | None,
              write: Pending | None) -> bool:
        """Wait until ``done()``, reading GDB's output meanwhile unless another thread does.

        Writes ``write`` first. False when ``deadline`` passes first. A small command is
        written before the SIGINT shield goes up (one ``write``: Ctrl-C cannot cut it), so
        that GDB works on it meanwhile; a big one after (it may take several).
        """
        if write is None and done():
            return True
        main = threading.get_ident() == _MAIN
        small = write is not None and len(write.command) <= _BIG_COMMAND
        shield = SigintShield.install() if main and not small else None
        try:
            if small:
                assert write is not None
                leading = self._write(write, enter=True)  # raises before entering, or enters
            else:
                if write is not None:
                    self._write(write)  # GDB may need a reader to drain its output meanwhile
                with self._lock:
                    leading = self._enter()
        except BaseException:
            if shield is not None:
                shield.remove()
            raise
        try:
            if main and shield is None:
                shield = SigintShield.install()
            if leading:
                return self._lead(done, deadline, shield)
            return self._take_turn(done, deadline, shield)
        finally:
            self._leave(leading)
            if shield is not None:
                shield.remove()

    def _take_turn(self, done: Callable[[], bool], deadline: float | None,
                   shield: SigintShield | None) -> bool:
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
            self._let_go()

    def _let_go(self) -> None:
        """Give the reader's role up and wake the waiters that sleep meanwhile."""
        with self._lock:
            self._reading = False
            if self._sleepers:
                self._wake_sleepers()

    def _lead(self, done: Callable[[], bool], deadline: float | None,
              shield: SigintShield | None) -> bool:
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
            else:  # as _sleep, inline: this is every command's path
                if shield.held:
                    shield.pass_on()
                shield.sleeping = True
                try:
                    ready = poll(wait_ms)
                finally:
                    shield.sleeping = False
            if ready and not self._read():
                return done()  # gdb exited; every waiter has been failed
        if self.state == "running" or self._order:  # the background thread will be armed:
            for _ in range(_PROMPT_READS):  # read the "(gdb)" now, it would only wake it
                if not (self._prompt_due and poll(_PROMPT_MS) and self._read()):
                    break
        return True

    @staticmethod
    def _sleep(shield: SigintShield | None, block: Callable[..., Any], *args: Any) -> Any:
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

    def _unattended_output(self) -> bool:
        """Whether GDB may write while nobody waits, so the background thread must read:
        the target runs, or commands nobody waits for are unanswered (``_lock`` held).
        A stopped target with every command answered leaves GDB silent: a "(gdb)" left in
        the pipe then is read by the next caller, and no thread wakes for it."""
        return self.state == "running" or bool(self._order)

    def _arm(self, armed: bool) -> None:
        """Let the background thread wake on GDB's output, or not (``_lock`` held)."""
        if armed == self._armed or self.closed_reason is not None:
            return
        self._armed = armed
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
                self._armed = False  # one-shot: the kernel disarmed it as it fired
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
                    if alive and self._waiting == 0 and self._unattended_output():
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
        self._fail_all(self._closed_error())
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
