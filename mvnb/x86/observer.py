"""What looking costs: how far a stop, and a read, move the guest's clocks.

QEMU freezes the guest's virtual clock (LAPIC timer, PM timer, HPET) and its TSC while the
guest is stopped (``vm_stop`` → ``cpu_disable_ticks``, softmmu/cpus.c), so two reads in
one stop agree. But a stop and the resume after it are not free: under TCG without
icount the clocks follow host time whenever the guest is "running", also while QEMU
wakes the vCPU, steps over the breakpoint (GDB removes it, single-steps, inserts it
again), translates code again, and stops. Seen on QEMU 7.2, GDB 13.1: a GDB ``stepi``
cycle moved the LAPIC timer by 6k-15k counts at divide-by-16 (100-250 µs of guest time),
one ``rdtsc`` probe by about 5k (shared/facts/observed-2026-11.md). Under ``icount`` the
clocks follow executed instructions, and a stop costs nothing but the instructions a
probe or a step executes.

:func:`measure_observer` measures this on the running guest, at the stop it is called at:

- ``lapic_per_read`` / ``tsc_per_read``: two adjacent reads of the same clock in one stop
  (a LAPIC read is a monitor command and does not run the guest; a TSC read runs one
  ``rdtsc`` in the guest, which is itself a resume and a stop);
- ``lapic_per_stop`` / ``tsc_per_stop``: a read, one stop-and-resume, a read (for the TSC,
  less the median ``tsc_per_read``: the second read's own resume). The stop is an
  ``rdtsc`` run by the probe engine with every register restored, so the guest stays
  where it is; ``move=True`` makes it a GDB ``stepi`` instead (as a ``cont`` from a
  breakpoint steps over it). Both cost about the same: 6.2k and 7.0k LAPIC counts,
  medians of 20 on QEMU 7.2 TCG. (A measurement that stepped the guest on past Linux's
  calibration on ``-M pc`` once left it where a probe's single step never returned.)
- ``lapic_per_probe``: the LAPIC moved by one probe (the TSC reader's ``rdtsc``).

Each is the median of ``rounds`` measurements; ``samples`` keeps them all. A value the
guest cannot give (the LAPIC timer stopped, no kernel mode for the probe) is None with the
reason in ``unmeasured``.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from ..errors import Error
from .probe import lapic_counted as _counted
from .probe import lapic_timer as _lapic

if TYPE_CHECKING:
    from ..gdb import Session

__all__ = ["NO_STEP", "measure_observer"]

#: Instructions a measurement does not single-step: they wait for an interrupt or an event
#: that QEMU's single step masks (``qqemu.sstepbits`` NOIRQ), so the step would not end.
NO_STEP = ("hlt", "mwait", "monitor", "umwait", "tpause", "pause")


def _steppable(s: Session) -> str | None:
    """None when the instruction at the pc can be stepped; else why not."""
    pc = int(s.eval_many(["$pc"])[0])
    listing = s.mi(f"-data-disassemble -s {pc:#x} -e {pc + 16:#x} -- 0").payload
    insns = listing.get("asm_insns", [])
    mnemonic = insns[0].get("inst", "").split()[0] if insns and insns[0].get("inst") else ""
    if mnemonic in NO_STEP:
        return f"the guest sits at a {mnemonic} instruction, which a masked single step never ends"
    return None


def measure_observer(session: Session, *, rounds: int = 5, move: bool = False,
                     timeout: float = 10.0) -> dict[str, Any]:
    """Measure what a stop and a read cost the guest's clocks, at the current stop.

    A "stop" is one resume and stop of the guest: one ``rdtsc`` run by the probe engine
    with every register restored (the guest stays where it is), or with ``move`` a GDB
    ``stepi`` (the guest goes ``rounds`` instructions on). The first error ends the
    measurement (``unmeasured["stopped"]``) with what was measured so far.
    ``moved_lapic`` is how far the whole measurement moved the LAPIC timer: the guest's
    next read of it comes that much later. See the module doc for each figure.
    """
    s = session
    if s.running:
        raise Error("measure_observer: the target is running; stop it first")
    samples: dict[str, list[int]] = {k: [] for k in
                                     ("lapic_per_read", "tsc_per_read", "lapic_per_probe",
                                      "lapic_per_stop", "tsc_per_stop")}
    unmeasured: dict[str, str] = {}
    lapic_ok = bool(s.capabilities.monitor)
    if not lapic_ok:
        unmeasured["lapic"] = "the stub has no QEMU monitor to read the LAPIC timer from"
    start = _lapic(s) if lapic_ok else None
    tsc_ok = True
    try:
        first_tsc = int(s.x86.tsc(timeout=timeout))  # type: ignore[attr-defined]
    except Error as error:
        tsc_ok, first_tsc = False, 0
        unmeasured["tsc"] = f"no rdtsc probe here: {error}"
    why_not_step = _steppable(s) if move else None
    if why_not_step:
        unmeasured["stop"] = why_not_step + "; the stops were probe steps instead"
    stop_and_read: list[int] = []

    def tsc() -> int:
        return int(s.x86.tsc(timeout=timeout))  # type: ignore[attr-defined]

    def stop() -> None:
        nonlocal why_not_step
        if move and why_not_step is None:
            s.stepi(timeout=timeout)
            why_not_step = _steppable(s)
        else:
            tsc()

    last_tsc = first_tsc

    def measure_rounds() -> None:
        nonlocal last_tsc
        for _ in range(rounds):
            if lapic_ok:
                a = _lapic(s)
                b = _lapic(s)
                _add(samples["lapic_per_read"], _counted(a, b))
                if tsc_ok:
                    tsc()
                    _add(samples["lapic_per_probe"], _counted(b, _lapic(s)))
            if tsc_ok:
                t0, t1 = tsc(), tsc()
                samples["tsc_per_read"].append(t1 - t0)
            if (move and why_not_step is None) or tsc_ok:
                if lapic_ok:
                    a = _lapic(s)
                    stop()
                    _add(samples["lapic_per_stop"], _counted(a, _lapic(s)))
                if tsc_ok:
                    t1 = tsc()
                    stop()
                    last_tsc = tsc()
                    stop_and_read.append(last_tsc - t1)

    try:
        measure_rounds()
    except Error as error:  # keep what was measured; a stuck stub is not worth waiting on
        unmeasured["stopped"] = f"the measurement stopped early: {error}"
    if stop_and_read and samples["tsc_per_read"]:  # a read's own resume taken off
        read = int(statistics.median(samples["tsc_per_read"]))
        samples["tsc_per_stop"] = [t - read for t in stop_and_read]
    if lapic_ok and not samples["lapic_per_read"]:
        unmeasured["lapic"] = "the LAPIC timer is stopped (initial count 0): it does not count"
    out: dict[str, Any] = {
        key: (int(statistics.median(values)) if values else None)
        for key, values in samples.items()
    }
    out["samples"] = {k: v for k, v in samples.items() if v}
    out["rounds"] = rounds
    out["moved_lapic"] = None
    if start is not None and "stopped" not in unmeasured:
        out["moved_lapic"] = _counted(start, _lapic(s))
    out["moved_tsc"] = last_tsc - first_tsc if tsc_ok else None
    out["how"] = ("reads at one stop; a stop is one " + (
        "GDB stepi (resume, step over the breakpoint, stop)" if move and not why_not_step
        else "rdtsc run by the probe engine, every register restored") +
        "; tsc_per_stop has the median TSC read's cost taken off")
    if unmeasured:
        out["unmeasured"] = unmeasured
    return out


def _add(values: list[int], value: int | None) -> None:
    if value is not None:
        values.append(value)
