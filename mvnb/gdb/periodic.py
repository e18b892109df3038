"""``Session.sample_periodic``: interrupt the guest every ``interval`` host seconds.

For clocks no breakpoint reaches (jiffies while the guest idles). Each row is an interrupt
(``-exec-interrupt``, re-sent until the guest stops: :func:`mvnb.gdb.sample_control.halt`),
the reads, and a continue; the rows go to a frame and, as they arrive, to ``path``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Error
from .columns import Column, costs_of, normalize_columns, sources_of
from .rows import Rows
from .sample_control import SLICE, StopFlag, check_args, halt

if TYPE_CHECKING:
    import pandas as pd

    from .session import Session

__all__ = ["sample_periodic"]


def sample_periodic(
    session: Session,
    columns: Mapping[str, Any] | Sequence[Any],
    interval: float,
    count: int,
    *,
    timeout: float | None = None,
    path: str | Path | None = None,
    append: bool = False,
    progress: bool = True,
    on_rows: Callable[[int], object] | None = None,
) -> pd.DataFrame:
    """Let the guest run and interrupt it every ``interval`` host seconds, ``count`` times.

    For clocks no breakpoint reaches (jiffies while the guest idles). The schedule is
    absolute (row k is due at start + k × interval), kept by a timed wait on the stop
    event; the guest runs between rows and is left stopped after the last. A breakpoint
    hit in between ends the run early (``attrs["ended"]``). Ctrl-C ends it with the rows
    so far.
    """
    cols = normalize_columns(columns)
    check_args(count=count, timeout=timeout, on_rows=on_rows)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise ValueError(f"interval is a positive number of seconds, not {interval!r}")
    if session.running:
        raise Error("the target is running; call interrupt() before sample_periodic()")
    for column in cols:
        column.source.prepare(session)
    exprs = [c.source.expression for c in cols if c.in_gdb]
    rows = Rows([c.name for c in cols], int(count), path, progress, on_rows,
                f"sample every {interval:g} s", append=append)
    started_at = time.monotonic()
    give_up = None if timeout is None else started_at + timeout
    try:
        with StopFlag() as flag:
            try:
                _periodic(session, cols, exprs, rows, interval, count, started_at, give_up,
                          flag)
            except KeyboardInterrupt:  # raised by on_rows
                rows.end("interrupt")
            finally:
                if session.connected and session.running:
                    halt(session)
    finally:
        rows.close()
    from ..timing.frame import sample_attrs

    frame = rows.frame()
    frame.attrs = sample_attrs(
        "periodic", None, interrupted=rows.interrupted, provenance=session.provenance(),
        ended=rows.ended or "count", interval=float(interval),
        seconds=round(time.monotonic() - started_at, 3), columns=sources_of(cols),
        costs=costs_of(cols), path=str(path) if path is not None else None,
    )
    return frame


def _periodic(session: Session, cols: list[Column], exprs: list[str], rows: Rows,
              interval: float, count: int, started_at: float, give_up: float | None,
              flag: StopFlag) -> None:
    for k in range(1, int(count) + 1):
        due = started_at + k * interval
        if give_up is not None and due > give_up:
            rows.end("timeout")
            return
        session.cont(wait=False)
        stop = None
        while stop is None and not flag.set:
            left = due - time.monotonic()
            if left <= 0:
                break
            stop = session.wait_for_stop(min(left, SLICE))
        if stop is None:
            halt(session)
        if flag.set:
            rows.end("interrupt")
            return
        if stop is not None:
            rows.end(f"stopped: {stop}")
            return
        host_ns = time.monotonic_ns()
        values = iter(session.eval_many(exprs)) if exprs else iter(())
        row: list[Any] = [host_ns, *(next(values) if c.in_gdb else None for c in cols)]
        cache: dict[str, Any] = {}
        for i in sorted((i for i, c in enumerate(cols) if not c.in_gdb),
                        key=lambda i: int(getattr(cols[i].source, "steps", 0))):
            row[1 + i] = cols[i].source.read(session, cache)
        rows.add([row])
