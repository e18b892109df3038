"""The MI transport: one GDB process, one reader thread, tokens mapped to waiters.

A command is written as ``TOKEN-command`` and its caller waits on a lock that the reader
releases when ``TOKEN^...`` arrives: a command returns as soon as GDB answers, never after
a quiet period (pygdbmi's ``write()`` waits 0.2 s for more output; shared/facts).
Stream records are attributed to the oldest command still waiting (GDB answers commands in
order, so tokens are taken and written under one lock). A command given up on (timeout,
Ctrl-C) is abandoned: its late result goes to ``stray`` and takes nobody's output.
``*stopped``/``*running`` keep the run state, which only async records carry.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from ...errors import GdbError, MIProtocolError, SessionClosed, TargetTimeout
from .records import AsyncRecord, Record, ResultRecord, StreamRecord, parse_line

__all__ = ["Pending", "Transport"]


class Pending:
    """A command sent to GDB whose result record has not been read yet."""

    __slots__ = ("_done", "_transport", "command", "error", "result", "streams", "token")

    def __init__(self, transport: Transport, token: int, command: str) -> None:
        self._transport = transport
        self.token = token
        self.command = command
        self.streams: list[StreamRecord] = []
        self.result: ResultRecord | None = None
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def _finish(self) -> None:
        self._done.release()

    @property
    def done(self) -> bool:
        """True once the result (or an error) has arrived."""
        return self.result is not None or self.error is not None

    def wait(self, timeout: float | None) -> ResultRecord:
        """The result record; raises GdbError for ``^error``, TargetTimeout when GDB is silent.

        On a timeout or a KeyboardInterrupt the command is abandoned (see the module doc).
        """
        try:
            arrived = self._done.acquire(timeout=-1 if timeout is None else max(timeout, 0))
        except BaseException:
            self._transport._abandon(self)
            raise
        if not arrived:
            self._transport._abandon(self)
            raise TargetTimeout(
                f"gdb did not answer {self.command!r} within {timeout} s; it may be busy "
                "(loading symbols, waiting on the stub); retry with a longer timeout="
            )
        self._done.release()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        if self.result.cls == "error":
            raise GdbError(str(self.result.payload.get("msg", "")), self.command)
        return self.result


class Transport:
    """A GDB/MI process and the thread that reads it.

    ``on_async`` is called on the reader thread with every async record (keep it short).
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
        self._write_lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._order: collections.deque[Pending] = collections.deque()
        self._lock = threading.Lock()  # guards _pending, _order, run state
        self._state_cv = threading.Condition(self._lock)
        self.state = "stopped"
        self.stop_seq = 0
        self.last_stop: AsyncRecord | None = None
        self.on_async = on_async
        self.stray: collections.deque[Record | str] = collections.deque(maxlen=100)
        self.protocol_errors: collections.deque[str] = collections.deque(maxlen=100)
        self.closed_reason: str | None = None
        self._reader = threading.Thread(
            target=self._read_loop, args=(self.process.stdout,), name="mvnb-mi-reader",
            daemon=True,
        )
        self._reader.start()

    # -- sending -----------------------------------------------------------------------

    def send(self, command: str) -> Pending:
        """Write ``command`` with a fresh token; return its ``Pending`` at once."""
        try:
            with self._write_lock:  # token order == write order == GDB's answer order
                token = next(self._tokens)
                pending = Pending(self, token, command)
                with self._lock:
                    if self.closed_reason is not None:
                        raise self._closed_error()
                    self._pending[token] = pending
                    self._order.append(pending)
                view = memoryview(f"{token}{command}\n".encode())
                while view:
                    view = view[os.write(self._stdin_fd, view) :]
        except OSError:
            self._close_all("gdb's standard input is closed")
            raise self._closed_error() from None
        return pending

    def command(self, command: str, timeout: float | None = 30.0) -> ResultRecord:
        """Send ``command`` and wait for its result record."""
        return self.send(command).wait(timeout)

    def json_command(self, command: str, timeout: float | None = 30.0) -> object:
        """Send one of mvnb's in-GDB commands and decode its ``json`` answer."""
        return json.loads(self.command(command, timeout).payload["json"])

    # -- run state ---------------------------------------------------------------------

    def wait_stopped(self, after: int, timeout: float | None) -> AsyncRecord | None:
        """Wait until a ``*stopped`` numbered past ``after`` arrives; None on timeout.

        Returns early (None) if the target or GDB goes away; check ``state``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._state_cv:
            while self.stop_seq <= after and self.state not in ("exited", "closed"):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._state_cv.wait(left)
            return self.last_stop if self.stop_seq > after else None

    # -- reading -----------------------------------------------------------------------

    def _abandon(self, pending: Pending) -> None:
        with self._lock:
            if self._pending.pop(pending.token, None) is not None:
                self._order.remove(pending)

    def _read_loop(self, stdout: IO[bytes]) -> None:
        try:
            for raw in iter(stdout.readline, b""):
                if not raw.endswith(b"\n"):  # cut off: GDB died mid-line
                    self.protocol_errors.append(f"gdb's output ended mid-line: {raw[:200]!r}")
                    break
                self._dispatch_line(raw.decode("utf-8", errors="replace"))
        except Exception as error:  # never die silently: waiters must hear of it
            self._close_all(f"the MI reader failed: {error!r}")
            return
        self._close_all("gdb exited")

    def _dispatch_line(self, line: str) -> None:
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
            pending = self._pending.pop(record.token, None) if record.token is not None else None
            if pending is None and record.token is None and self._order:
                pending = self._pending.pop(self._order[0].token, None)
            if pending is None:  # an unknown token (a command given up on): keep it, go on
                self.stray.append(record)
                return
            # GDB answers in order: commands sent before this one that are still waiting
            # lost their answer (it was not MI, or never came); fail them rather than let
            # them wait for their timeout or take later commands' output.
            lost = []
            while self._order and self._order[0] is not pending:
                older = self._order.popleft()
                self._pending.pop(older.token, None)
                lost.append(older)
            self._order.remove(pending)
            if record.cls == "running":
                self.state = "running"
        for older in lost:
            older.error = MIProtocolError(f"gdb answered a later command before {older.command!r}"
                                          f" (token {older.token}); its answer was lost")
            older._finish()
        pending.result = ResultRecord(record.token, record.cls, record.payload,
                                      tuple(pending.streams))
        pending._finish()

    def _on_async(self, record: AsyncRecord) -> None:
        with self._state_cv:
            if record.kind == "exec" and record.cls == "running":
                self.state = "running"
            elif record.kind == "exec" and record.cls == "stopped":
                self.state = "stopped"
                self.last_stop = record
                self.stop_seq += 1
                self._state_cv.notify_all()
            elif record.kind == "notify" and record.cls == "thread-group-exited":
                self.state = "exited"
                self._state_cv.notify_all()
            elif record.kind == "notify" and record.cls == "thread-group-started":
                if self.state == "exited":
                    self.state = "stopped"
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
        pending.error = error
        pending._finish()

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
        with self._state_cv:
            if self.closed_reason is None:
                self.closed_reason = reason
            self.state = "closed"
            waiting = list(self._order)
            self._order.clear()
            self._pending.clear()
            self._state_cv.notify_all()
        for pending in waiting:
            pending.error = self._closed_error()
            pending._finish()

    @property
    def alive(self) -> bool:
        return self.closed_reason is None and self.process.poll() is None

    def close(self, timeout: float = 5.0) -> None:
        """End GDB: ``-gdb-exit``, then SIGTERM, then SIGKILL; waits for the reader."""
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
        self._reader.join(timeout)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._stderr.close()
        self._close_all("closed")
