"""What each line of GDB's output does: results to their commands, streams to the oldest
command, async records to the run state.

GDB answers commands in the order it reads them (the transport takes tokens and writes
commands under one lock), so ``_order`` is also the order of the answers: stream records
(``~ @ &``) belong to its head, a result for a later command means the older ones lost
theirs, and a command given up on keeps its place until its late result comes (GDB/MI Output
Syntax, GDB manual). Only async records carry the run state (``*running``, ``*stopped``).
The transport (mvnb.gdb.mi.transport) holds the reader's role while it calls ``_dispatch``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...errors import MIProtocolError
from .records import (
    AsyncRecord,
    Record,
    ResultRecord,
    StreamRecord,
    fast_result,
    parse_general,
    result_record,
)

if TYPE_CHECKING:
    from .transport import Pending

__all__ = ["Dispatcher"]


class Dispatcher:
    """The commands in flight and the run state, changed by GDB's output lines.

    ``state`` is "stopped", "running", "exited" or "closed"; ``stop_seq`` counts ``*stopped``
    records; ``last_stop`` is the latest. ``on_async`` is called with every async record on
    the thread that read it (keep it short and send no commands from it). ``stray`` keeps
    what belonged to nobody waiting (late results with their streams, unknown tokens);
    ``protocol_errors`` the lines that were not MI.
    """

    def __init__(self, on_async: Callable[[AsyncRecord], None] | None) -> None:
        self._lock = threading.Lock()  # guards all the state below
        self._by_token: dict[int, Pending] = {}
        self._order: collections.deque[Pending] = collections.deque()
        self._sleepers: list[threading.Lock] = []  # waiters sleeping while another reads
        self._prompt_due = False  # a result was read and the "(gdb)" after it was not
        self.state = "stopped"
        self.stop_seq = 0
        self.last_stop: AsyncRecord | None = None
        self.on_async = on_async
        self.stray: collections.deque[Record | str] = collections.deque(maxlen=100)
        self.protocol_errors: collections.deque[str] = collections.deque(maxlen=100)

    def _register(self, pending: Pending) -> None:
        """Put ``pending`` at the end of the order (``_lock`` held; token already set)."""
        self._by_token[pending.token] = pending
        self._order.append(pending)

    def _wake_sleepers(self) -> None:
        """Wake every waiter that sleeps while another thread reads (``_lock`` held)."""
        for sleeper in self._sleepers:
            sleeper.release()
        self._sleepers.clear()

    def _dispatch(self, line: bytes) -> None:
        head = line[:1]
        if head.isdigit():
            fast = fast_result(line)
            if fast is not None:
                self._on_result(*fast)
                return
        elif head == b"(" and line.startswith(b"(gdb)"):
            self._prompt_due = False
            return
        try:  # a result line here was no fast one: straight to the general parser
            record = parse_general(line.decode("utf-8", errors="replace"))
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
                self.stray.append(result_record(token, cls, payload, ()))
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
            result = result_record(token, cls, payload, tuple(pending.streams))
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

    def _fail_all(self, error: BaseException) -> None:
        """Every command in flight fails with ``error`` (GDB went away)."""
        with self._lock:
            waiting = list(self._order)
            self._order.clear()
            self._by_token.clear()
            for pending in waiting:
                self._fail(pending, error)
            self._wake_sleepers()
