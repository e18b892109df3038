"""Sampling at breakpoints into pandas frames: ``Session.sample`` and
``Session.sample_periodic``.

Two ways to take rows; ``frame.attrs["method"]`` says which was used:

- "gdb-python": every column is an expression GDB can read (:mod:`mvnb.gdb.columns`). A
  collector breakpoint inside GDB (``mvnb/gdb/helper/mvnb_gdb.py``) records them in
  ``stop()`` and lets the guest run on; rows are fetched in bulk while it runs. As fast as
  a hand-written GDB script.
- "mi": a column must be read at a stop (a LAPIC register through QEMU's monitor, the TSC
  by an ``rdtsc`` executed in the guest). The collector stops at every hit, each column
  source reads itself, and the guest is continued.

Every hit is a stop of the guest, also on the first path (GDB holds it while ``stop()``
runs, then steps over the breakpoint). Guest clocks under TCG are frozen while the guest
is stopped, but each stop and resume moves them by some thousands of LAPIC counts that
the guest did not spend running its own code; a run whose columns stop the guest measures
that on the running guest (``attrs["observer"]``, see :mod:`mvnb.x86.observer`). Host time
is no reference across rows (:class:`mvnb.timing.HostTimeWarning`).

The sampler checks every argument before the collector is armed, removes the collector on
every way out (an error, Ctrl-C, GDB dying), and returns the rows it has.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Error, GdbError
from .columns import Column, costs_of, normalize_columns, sources_of
from .mi import quote
from .periodic import sample_periodic
from .rows import Rows
from .sample_control import Limits, StopFlag, check_args, halt
from .stop import Stop

if TYPE_CHECKING:
    import pandas as pd

    from .session import Session

__all__ = ["sample", "sample_periodic"]


#: Observer rounds at the end of a run: at its last stop (the guest stays there, and goes
#: on from there later: a short measurement) or past it, once ``after=`` was read.
_LAST_STOP_ROUNDS = 5
_PAST_ROUNDS = 20
#: Steps off a hit that leave the pc where it was, before the run gives up (see _step_off).
_STEP_OFF_TRIES = 5


def sample(
    session: Session,
    location: str,
    columns: Mapping[str, Any] | Sequence[Any],
    count: int | None = None,
    duration: float | None = None,
    timeout: float | None = None,
    hardware: bool = True,
    path: str | Path | None = None,
    *,
    append: bool = False,
    after: Sequence[str] | None = None,
    observer: bool | Callable[[Session], dict[str, Any]] = True,
    progress: bool = True,
    on_rows: Callable[[int], object] | None = None,
    include_current: bool | None = None,
) -> pd.DataFrame:
    """Record ``columns`` at every hit of a breakpoint at ``location``: one row per hit.

    Columns: ``hit`` (0-based), ``host_ns`` (host monotonic), then each of ``columns``
    (see :func:`mvnb.gdb.columns.normalize_columns`), as plain integers.
    Stops after ``count`` hits (the guest stays at the last one), after ``duration``
    host seconds, or at ``timeout`` (a warning; the rows so far are returned). Ctrl-C,
    or a ``KeyboardInterrupt`` raised by ``on_rows(n_rows)``, ends it the same way
    with ``attrs["interrupted"] = True``. ``path=`` writes rows to a CSV (or Parquet)
    file as they arrive; a file that already holds rows is refused unless ``append=True``
    (same columns; ``hit`` goes on from the file's last). When the guest already sits at
    ``location`` (``include_current=None``), that stop is the first row: after
    ``boot_to(guest, "lapic_cal_handler")``, ``count=27`` gives Linux's 27 calibration
    calls.

    ``after``: expressions read once more when the last hit's function has returned (a
    temporary breakpoint at the caller's return address), into ``attrs["after"]``; e.g.
    ``after=["lapic_cal_t1", "lapic_cal_t2"]``, which Linux stores inside the last call.
    ``observer``: when a column stops the guest (a LAPIC, PM timer or TSC reader), what a
    stop costs its clocks is measured once at the end of the run, so no row is disturbed
    (:func:`mvnb.x86.measure_observer`), and kept in ``attrs["observer"]``; at the last
    hit the guest stays where it is, and ``moved_lapic`` says how far the measurement
    moved its clocks. False skips it, a callable ``f(session) -> dict`` replaces it.

    Every argument is checked before anything is armed. The collector breakpoint is deleted
    on every way out; the session's own breakpoints at the same address are disabled
    meanwhile and enabled again. An error ends the run with the collector removed; the rows
    taken so far are on the exception (``error.partial_frame``) and in ``path``, also when
    GDB or the guest died.
    """
    cols = normalize_columns(columns)
    after_exprs = check_args(location=location, count=count, duration=duration,
                             timeout=timeout, hardware=hardware,
                             include_current=include_current, after=after,
                             observer=observer, on_rows=on_rows)
    if session.running:
        raise Error("the target is running; call interrupt() before sample()")
    for column in cols:  # e.g. find the rdtsc, the PM timer's port, before anything is armed
        column.source.prepare(session)
    rows = Rows([c.name for c in cols], count, path, progress, on_rows, f"sample {location}",
                append=append)
    sampler = _Sampler(session, cols, rows, observer)
    started_at = time.monotonic()
    try:
        sampler.run(location, count, duration, timeout, hardware, include_current,
                    after_exprs)
    except BaseException as error:
        where = f"; they are in {path}" if path is not None else ""
        try:
            error.partial_frame = rows.frame()  # type: ignore[attr-defined]
            where += " and in error.partial_frame"
        except (AttributeError, TypeError):
            pass
        error.add_note(f"mvnb: the sampling run ended with this error after {len(rows)} "
                       f"rows{where}. The collector breakpoint was removed"
                       + ("." if session.connected else " with GDB."))
        raise
    finally:
        rows.close()
    from ..timing.frame import sample_attrs

    frame = rows.frame()
    frame.attrs = sample_attrs(
        sampler.method, location, interrupted=rows.interrupted,
        provenance=session.provenance(),
        ended=rows.ended or ("count" if count is not None else "stopped"),
        seconds=round(time.monotonic() - started_at, 3), columns=sources_of(cols),
        costs=costs_of(cols), errors=rows.errors[:10],
        path=str(path) if path is not None else None, observer=sampler.observed,
        **({"steps_repeated": sampler.steps_repeated} if sampler.method == "mi" else {}),
        **({"after": sampler.after, "after_at": sampler.after_at} if after_exprs else {}),
    )
    return frame


class _Sampler:
    """One ``sample`` run: the collector breakpoint in GDB and the loop that drives it."""

    def __init__(self, session: Session, cols: list[Column], rows: Rows,
                 observer: bool | Callable[[Session], dict[str, Any]]) -> None:
        self.s = session
        self.cols = cols
        self.rows = rows
        self.method = "gdb-python" if all(c.in_gdb for c in cols) else "mi"
        self.number = 0
        self.hardware = True
        self.last: Stop | None = None  # the last stop seen, to know where the guest sits
        self.flag = StopFlag()
        self.own_observer = _observer(cols, True)
        self.observer = _observer(cols, observer)
        self.observed: dict[str, Any] | None = None
        self.after: dict[str, Any] = {}
        self.after_at: str | None = None
        self.address = 0
        self.at_location = False  # the guest sits at the collector's address
        self.steps_repeated = 0  # steps off a hit that did not move the pc (_step_off)
        # Stop-time sources that do not run the guest are read first, at the frozen stop.
        self.read_order = sorted((i for i, c in enumerate(cols) if not c.in_gdb),
                                 key=lambda i: int(getattr(cols[i].source, "steps", 0)))

    def run(self, location: str, count: int | None, duration: float | None,
            timeout: float | None, hardware: bool, include_current: bool | None,
            after: list[str]) -> None:
        self.hardware = hardware
        exprs = [c.source.expression for c in self.cols if c.in_gdb]
        spec = {"location": location, "exprs": exprs, "hardware": bool(hardware),
                "count": count if self.method == "gdb-python" else None,
                "stop_every": self.method == "mi"}
        with self.flag:  # from arming until the collector is gone, Ctrl-C only sets a flag
            started = self.s.mi(f"-mvnb-collect-start {quote(json.dumps(spec))}").payload
            self.number, address = int(started["number"]), int(started["address"])
            self.address = address
            paused = []
            try:
                paused = [bp for bp in self.s.breakpoints()
                          if bp.enabled and address and bp.address == address]
                for bp in paused:
                    bp.disable()
                self._take(address, count, Limits(time.monotonic(), duration, timeout,
                                                  self.flag), include_current)
            except BaseException as error:
                try:
                    self._remove(failed=True)
                    self._enable(paused)
                except Exception as cleanup:  # keep the first error; say what else failed
                    error.add_note(f"mvnb: while removing the collector: {cleanup!r}")
                raise
            at_hit = self._remove(failed=False)
            if after:
                self._read_after(after, at_hit, timeout)
            if self.observer is not None and not self.flag.set:
                self._observe(past=bool(after) and bool(self.after))
            self._enable(paused)

    # -- taking rows ----------------------------------------------------------------------

    def _take(self, address: int, count: int | None, limits: Limits,
              include_current: bool | None) -> None:
        try:
            here = self.s.eval_many(["$pc"])[0] == address if address else False
            self.at_location = here
            if include_current or (include_current is None and here):
                self.s.mi(f"-mvnb-collect-control {self.number} record")
                self._row_at_stop()
            if self.flag.set:
                self.rows.end("interrupt")
            elif count is None or len(self.rows) < count:
                if self.method == "gdb-python":
                    self._fast(limits)
                else:
                    self._stop_every(count, limits)
        except KeyboardInterrupt:  # raised by on_rows
            self.rows.end("interrupt")

    def _fast(self, limits: Limits) -> None:
        """The collector records inside GDB; rows are fetched every slice while it runs."""
        self.s.cont(wait=False)
        stop = self._wait(limits, lambda: self.rows.add(self._fetch()))
        if stop is not None:
            self._is_hit(stop)

    def _stop_every(self, count: int | None, limits: Limits) -> None:
        """The collector stops at every hit; the stop-time sources read themselves."""
        while count is None or len(self.rows) < count:
            if self.flag.set:
                self.rows.end("interrupt")
                return
            if not self._step_off():
                return
            self.s.cont(wait=False)
            stop = self._wait(limits, None)
            if stop is None or not self._is_hit(stop):
                return
            self.at_location = True
            self._row_at_stop()
            if self.rows.ended is not None:
                return

    def _step_off(self) -> bool:
        """Leave the location by one instruction, the collector disabled, and check that
        the guest moved; False when the step stopped for another reason (sampling ends).

        GDB steps over a breakpoint by itself on ``continue``, but QEMU 7.2's stub now and
        then answers that step without executing the instruction (seen on ``-M pc`` under
        TCG in about one run in six on a loaded host): GDB then reports the same hit again,
        and the run got the same row twice. A step that leaves the pc where it was is made
        again (``attrs["steps_repeated"]`` counts them). The step is the stop-and-resume
        GDB's own step-over makes, so it costs the guest's clocks nothing more.
        """
        if not self.at_location:
            return True  # the guest has not reached the location yet
        self.at_location = False
        self.s.mi(f"-break-disable {self.number}")
        try:
            for _ in range(_STEP_OFF_TRIES):
                stop = self.s.stepi(timeout=30.0)
                self.last = stop
                if stop.reason != "end-stepping-range":
                    self.rows.end(f"stopped elsewhere: {stop}")
                    warnings.warn(f"sampling ended early: the guest stopped elsewhere ({stop})",
                                  RuntimeWarning, stacklevel=6)
                    return False
                if stop.frame is None or stop.frame.address != self.address:
                    return True
                self.steps_repeated += 1
            raise Error(f"the guest does not leave {self.address:#x}: {_STEP_OFF_TRIES} "
                        "single steps left the pc where it was (the stub does not step)")
        finally:
            self.s.mi(f"-break-enable {self.number}")

    def _row_at_stop(self) -> None:
        """The row of the hit the guest sits at."""
        self.rows.add(self._fetch(live=True))

    def _observe(self, *, past: bool) -> None:
        """What a stop costs the guest's clocks, measured once, at the end, so no row is
        disturbed; the guest stays where it is (probe steps, every register restored).
        ``past``: it has left the location (``after=`` was read), so nothing of the run is
        left to disturb and the measurement takes more rounds; else ``moved_lapic`` says
        how far the measurement moved the clocks before the guest's next read there."""
        assert self.observer is not None
        how = self.observer
        try:
            if how is self.own_observer:
                rounds = _PAST_ROUNDS if past else _LAST_STOP_ROUNDS
                self.observed = dict(how(self.s, rounds=rounds))  # type: ignore[call-arg]
            else:
                self.observed = dict(how(self.s))
        except Error as error:  # a measurement that cannot be made never fails the run
            self.observed = {"unmeasured": {"all": str(error)}}
        where = (f"hit {self.rows.first_hit + len(self.rows) - 1}"
                 if self._at_collector(self.last) and len(self.rows) else "its last stop")
        self.observed["at"] = ("the end of the run (after= was read)" if past
                               else f"the end of the run, at {where}")
        self.observed["probe_steps_per_row"] = sum(
            int(getattr(c.source, "steps", 0)) for c in self.cols if not c.in_gdb)

    def _wait(self, limits: Limits, each: Callable[[], None] | None) -> Stop | None:
        """The next stop, waited for in slices; the guest is halted on Ctrl-C, at the
        duration or at the timeout (then None)."""
        while True:
            stop = self.s.wait_for_stop(limits.next_wait())
            if stop is not None:  # the rows since the last fetch come with the final one
                self.last = stop
                return stop
            why = limits.expired()
            if why is not None:
                self.rows.end(why, interrupted=why != "duration")
                if why == "timeout":
                    warnings.warn(f"sampling timed out after {len(self.rows)} rows; returning "
                                  "them (attrs['interrupted'] is True)", RuntimeWarning,
                                  stacklevel=6)
                self.last = halt(self.s, self.number)
                return None
            if each is not None:
                each()

    def _is_hit(self, stop: Stop) -> bool:
        """True when the stop is the collector's hit; else note why sampling ended."""
        if self._at_collector(stop):
            return True
        self.rows.end(f"stopped elsewhere: {stop}")
        warnings.warn(f"sampling ended early: the guest stopped elsewhere ({stop})",
                      RuntimeWarning, stacklevel=6)
        return False

    def _at_collector(self, stop: Stop | None) -> bool:
        return (stop is not None and stop.reason == "breakpoint-hit"
                and str(stop.raw.get("bkptno")) == str(self.number))

    def _fetch(self, *, live: bool = False, delete: bool = False) -> list[list[Any]]:
        """The collector's rows since the last fetch; with ``live``, the guest sits at the
        (single) hit and the stop-time sources are read now."""
        command = f"-mvnb-collect-fetch {self.number}{' delete' if delete else ''}"
        answer = json.loads(self.s.mi(command).payload["json"])
        self.rows.errors.extend(answer.get("errors", []))
        out = []
        for raw in answer["rows"]:
            values = iter(raw[1:])
            row: list[Any] = [raw[0], *(next(values) if c.in_gdb else None for c in self.cols)]
            if live:
                cache: dict[str, Any] = {}
                for i in self.read_order:
                    row[1 + i] = self.cols[i].source.read(self.s, cache)
            out.append(row)
        return out

    # -- ending ---------------------------------------------------------------------------

    def _remove(self, *, failed: bool) -> bool:
        """Stop the guest if it runs, take the last rows, delete the collector (all with
        timeouts; Ctrl-C meanwhile only sets the flag). True if the guest sits at a hit."""
        if not self.s.connected:
            return False  # GDB or the target is gone, and the collector with it
        try:
            if self.s.running:
                self.last = halt(self.s, self.number)
                self.rows.interrupted = self.rows.interrupted or self.rows.ended is not None
        finally:
            at_hit = self._at_collector(self.last)
            live = self.method == "mi" and at_hit and not failed
            try:
                rows = self._fetch(live=live, delete=True)
            except BaseException:
                if self.s.connected:
                    try:
                        self.s.mi(f"-break-delete {self.number}", timeout=10.0)
                    except GdbError:
                        pass  # the fetch deleted it before its reads failed
                raise
        if self.method == "gdb-python" or live:  # else: a hit whose stop-time columns
            try:                                    # can no longer be read
                self.rows.add(rows)
            except KeyboardInterrupt:  # raised by on_rows: the run is ending anyway
                self.rows.end("interrupt")
        return at_hit

    def _enable(self, paused: list[Any]) -> None:
        if not self.s.connected:
            return
        for bp in paused:
            if not bp.deleted:
                bp.enable()

    def _read_after(self, exprs: list[str], at_hit: bool, timeout: float | None) -> None:
        """Run until the last hit's function returns, then read ``exprs`` once."""
        if not at_hit or self.flag.set or (self.rows.ended not in (None, "count")):
            self.after_at = ("not read: the run did not end at a hit of the location "
                             f"({self.rows.ended or 'no hit'})")
            return
        caller = self.s.mi("-stack-list-frames 1 1").payload.get("stack", [])
        address = caller[0].get("addr") if caller else None
        if not address or not str(address).startswith("0x"):
            self.after_at = "not read: GDB found no caller frame to return to"
            return
        bp = self.s.break_at(f"*{address}", hardware=self.hardware, temporary=True)
        try:
            self.s.cont(wait=False)
            limits = Limits(time.monotonic(), None, timeout or 30.0, self.flag)
            stop = self._wait(limits, None)
        finally:
            if not bp.deleted and self.s.connected and not self.s.running:
                bp.delete()
        if stop is None or stop.breakpoint is not bp:
            self.after_at = f"not read: the guest stopped elsewhere ({stop or 'interrupted'})"
            warnings.warn(f"after= was not read: {self.after_at}", RuntimeWarning, stacklevel=5)
            return
        answer = json.loads(self.s.mi(
            f"-mvnb-eval-many {quote(json.dumps(exprs))}").payload["json"])
        self.after = {e: (None if isinstance(v, dict) else v) for e, v in zip(exprs, answer,
                                                                                strict=True)}
        self.after_at = f"returned to {stop.frame}" if stop.frame else "returned to the caller"


def _observer(cols: list[Column], observer: bool | Callable[[Session], dict[str, Any]]
              ) -> Callable[[Session], dict[str, Any]] | None:
    """The measurement to run once: the stop-time sources' own (``source.observer``)."""
    if observer is False:
        return None
    if callable(observer):
        return observer
    found = [getattr(c.source, "observer", None) for c in cols if not c.in_gdb]
    found = [f for f in found if callable(f)]
    return found[0] if found else None
