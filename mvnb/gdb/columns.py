"""Column sources for ``Session.sample``: objects that say how to read themselves.

A source is an expression GDB's Python reads inside the collector breakpoint (the guest
runs on: a few microseconds a hit), or an object whose ``read(session, cache)`` runs at a
stop (the guest is held while it runs: a monitor command, an instruction executed in the
guest). The sampler needs to know no more than this protocol; ``mvnb.x86`` supplies the
LAPIC timer registers and the TSC as sources of the second kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..regs.spec import RegisterSpec

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Column", "ColumnSource", "Expression", "costs_of", "normalize_columns", "sources_of"]


@runtime_checkable
class ColumnSource(Protocol):
    """What ``Session.sample`` needs of a column source.

    ``expression`` is a C expression (or ``$register``) when GDB can read the column
    inside the breakpoint without stopping the guest, else None. ``read`` is called with
    the guest stopped; ``cache`` is shared by the columns of one row (a LAPIC snapshot
    read once for three LAPIC columns). ``cost`` says what one read costs the guest.

    Optional: ``steps`` (guest instructions one read executes; the sampler reads sources
    with 0 first, at the frozen stop) and ``observer`` (a callable ``f(session, rounds=N)
    -> dict`` measuring what a stop costs the guest's clocks, run once per sample run).
    """

    name: str
    expression: str | None
    cost: str

    def prepare(self, session: Session) -> None: ...

    def read(self, session: Session, cache: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Expression:
    """A C expression or ``$register``, read by GDB's Python at each hit (no extra stop)."""

    text: str
    cost = "read inside GDB at the breakpoint: no stop beyond the breakpoint's own"

    @property
    def name(self) -> str:
        return self.text

    @property
    def expression(self) -> str:
        return self.text

    def prepare(self, session: Session) -> None:
        pass

    def read(self, session: Session, cache: dict[str, Any]) -> Any:
        return session.eval_many([self.text])[0]

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Column:
    """One sampled column: its name and its source."""

    name: str
    source: ColumnSource

    @property
    def in_gdb(self) -> bool:
        """True when GDB reads it inside the breakpoint (no stop needed)."""
        return self.source.expression is not None


def normalize_columns(columns: Mapping[str, Any] | Sequence[Any]) -> list[Column]:
    """Columns as given to ``sample``: a dict name → source, or a list named by themselves.

    Sources: a C expression or ``$register`` (str), a register spec GDB shows as a
    register (``mvnb.regs.CR3``), or any :class:`ColumnSource` (``mvnb.x86.TIMER_CCR``,
    ``mvnb.x86.TSC``).
    """
    if isinstance(columns, str):
        raise TypeError("columns is a dict name → source or a list, not one string; "
                        f"write [{columns!r}]")
    if isinstance(columns, Mapping):
        pairs = [(str(name), _source(source)) for name, source in columns.items()]
    else:
        pairs = [(s.name, s) for s in map(_source, columns)]
    out = []
    for name, source in pairs:
        if name in ("hit", "host_ns"):
            raise ValueError(f"column name {name!r} is taken by the sampler; choose another")
        out.append(Column(name, source))
    names = [c.name for c in out]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"duplicate column names {duplicated}; pass a dict to name them")
    if not out:
        raise ValueError("no columns to sample")
    return out


def _source(source: Any) -> ColumnSource:
    if isinstance(source, str):
        if not source.strip():
            raise ValueError("an empty expression is not a column source")
        return Expression(source)
    if isinstance(source, RegisterSpec):
        if source.gdb_register:
            return Expression(f"${source.gdb_register}")
        raise TypeError(
            f"the register spec {source.name} has no reader for sampling; GDB's registers "
            "sample as '$name', the LAPIC timer as mvnb.x86.TIMER_CCR / TIMER_ICR / "
            "TIMER_DCR and the TSC as mvnb.x86.TSC"
        )
    if isinstance(source, ColumnSource):
        return source
    raise TypeError(f"a column source is a C expression, '$register', or a column source "
                    f"object such as mvnb.x86.TIMER_CCR, not {type(source).__name__}")


def sources_of(cols: list[Column]) -> dict[str, str]:
    """Each column's source as text, for ``frame.attrs["columns"]``."""
    return {c.name: str(c.source) for c in cols}


def costs_of(cols: list[Column]) -> dict[str, str]:
    """What reading each column costs the guest, for ``frame.attrs["costs"]``."""
    return {c.name: str(getattr(c.source, "cost", "")) for c in cols}
