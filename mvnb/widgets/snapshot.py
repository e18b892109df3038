"""A LAPIC snapshot as a compact table of registers, with a bitfield view on demand.

Each row is one register of QEMU's ``info lapic`` (see :mod:`mvnb.regs.lapic`): name, raw
value and decoded fields; given a second snapshot, rows and fields that changed are
highlighted. Choosing a register opens its :class:`BitfieldWidget` below the table (built
when first asked for, so a snapshot with 256-bit ISR/IRR stays light).
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as W

from ..regs._figure import CHANGED_COLOR, spec_tooltip
from ..regs.html import fields_summary, snapshot_html
from ..regs.lapic import LapicSnapshot
from .bitfield import BitfieldWidget

__all__ = ["SnapshotWidget"]


class SnapshotWidget(W.VBox):
    """``SnapshotWidget(snap, compare=earlier)``: the table, a register picker and its bits."""

    def __init__(self, snapshot: LapicSnapshot, *, compare: LapicSnapshot | None = None) -> None:
        self.snapshot = snapshot
        self.compare = compare
        self.changes = compare.changes(snapshot) if compare is not None else {}
        self.output = W.Output()
        self.rows: dict[str, W.Button] = {}
        self.summaries: dict[str, W.HTML] = {}
        grid: list[W.Widget] = []
        for name, value in snapshot.items():
            button = W.Button(
                description=name,
                tooltip=spec_tooltip(value.spec),
                layout=W.Layout(width="120px"),
            )
            if name in self.changes:
                button.style.button_color = CHANGED_COLOR
            button.on_click(lambda _b, n=name: self._show(n))
            self.rows[name] = button
            summary = W.HTML(self._summary(name))
            self.summaries[name] = summary
            grid += [button, W.HTML(f"<code>{value.hex()}</code>"), summary]
        self.table = W.GridBox(
            grid, layout=W.Layout(grid_template_columns="124px auto 1fr", grid_gap="1px 6px")
        )
        self.detail = W.VBox()
        self._views: dict[str, BitfieldWidget] = {}
        title = W.HTML(self._title())
        super().__init__([title, self.table, self.detail, self.output])

    def _title(self) -> str:
        bits = ["<b>Local APIC</b>"]
        if self.snapshot.cpu is not None:
            bits.append(f"CPU {self.snapshot.cpu}")
        if self.snapshot.location is not None:
            bits.append(f"at {escape(str(self.snapshot.location))}")
        if self.compare is not None:
            where = self.compare.location
            since = f" since {escape(str(where))}" if where is not None else ""
            bits.append(f"— {len(self.changes)} register(s) changed{since}")
        return " ".join(bits)

    def _summary(self, name: str) -> str:
        summary = fields_summary(self.snapshot[name], self.changes.get(name, ()))
        return f'<span style="font-size:11px">{summary}</span>'

    def view(self, name: str) -> BitfieldWidget:
        """The bitfield widget of register ``name`` (built once)."""
        name = name.upper()
        if name not in self._views:
            before = self.compare.get(name) if self.compare is not None else None
            self._views[name] = BitfieldWidget(self.snapshot[name], compare=before)
        return self._views[name]

    def _show(self, name: str) -> None:
        with self.output:
            self.detail.children = [self.view(name)]

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/html"] = snapshot_html(self.snapshot, compare=self.compare)
        return bundle
