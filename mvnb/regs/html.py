"""Static HTML for registers, specs, LAPIC snapshots and CPUID results.

One rendering function per object; ``_repr_html_``, the widget's no-frontend fallback and
published posts all use these. The register figure follows the Intel SDM's register
diagrams (Vol. 3A, Order Number 253668-068US, e.g. Figure 10-8): bit numbers across the
top, field names in boxes, reserved bits shaded, plus a legend of values and meanings.
Inline styles only, so the output survives notebook sanitizers and blog templates.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING

from ._figure import CHANGED_COLOR, field_color, field_tooltip, rows, spec_tooltip
from .spec import RegisterSpec
from .value import RegisterValue

if TYPE_CHECKING:
    from .cpuid import CpuidResult
    from .lapic import LapicSnapshot

__all__ = ["cpuid_html", "fields_summary", "register_html", "snapshot_html", "spec_html"]

_TABLE = "border-collapse:collapse;font-family:monospace;font-size:11px;margin:2px 0"
_CELL = "border:1px solid #999;padding:1px 3px;text-align:center"
_NUM = "padding:0 1px;text-align:center;font-size:9px;color:#555;min-width:14px"


def _attr(text: str) -> str:
    return escape(text, quote=True)


def _header(spec: RegisterSpec, value: RegisterValue | None) -> str:
    shown = f" = <code>{value.hex()}</code>" if value is not None else ""
    flags = " <i>volatile</i>" if spec.volatile else ""
    ref = escape(str(spec.reference))
    return (
        f'<div title="{_attr(spec_tooltip(spec))}"><b>{escape(spec.name)}</b>{shown}'
        f" — {escape(spec.title)}{flags}"
        f' <span style="color:#666;font-size:90%">[{ref}]</span></div>'
    )


def _figure(spec: RegisterSpec, value: RegisterValue | None, changed: set[str]) -> str:
    raw = int(value) if value is not None else None
    out = [f'<table style="{_TABLE}">']
    for row in rows(spec):
        top, bottom = row[0].msb, row[-1].lsb
        nums = "".join(f'<td style="{_NUM}">{b}</td>' for b in range(top, bottom - 1, -1))
        out.append(f"<tr>{nums}</tr>")
        names, bits, values = [], [], []
        for seg in row:
            f = seg.field
            color = CHANGED_COLOR if f is not None and f.name in changed else field_color(spec, f)
            tip = _attr(field_tooltip(spec, f, seg.lsb if f is None else None))
            label = escape(f.name) if f is not None else ""
            style = f"{_CELL};background:{color}"
            names.append(f'<td colspan="{seg.width}" style="{style}" title="{tip}">{label}</td>')
            if raw is None:
                continue
            for b in range(seg.msb, seg.lsb - 1, -1):
                bits.append(f'<td style="{_CELL};background:{color}">{(raw >> b) & 1}</td>')
            text = ""
            if f is not None and value is not None and seg.msb == f.msb:
                text = escape(str(value[f.name]))
            values.append(f'<td colspan="{seg.width}" style="{_CELL}" title="{tip}">{text}</td>')
        out.append(f"<tr>{''.join(names)}</tr>")
        if raw is not None:
            out.append(f"<tr>{''.join(bits)}</tr><tr>{''.join(values)}</tr>")
    out.append("</table>")
    return "".join(out)


def _legend(spec: RegisterSpec, value: RegisterValue | None, changed: set[str]) -> str:
    head = ["field", "bits"] + (["value", "meaning"] if value is not None else []) + ["description"]
    out = [f'<table style="{_TABLE}"><tr>']
    out.extend(f'<th style="{_CELL};text-align:left">{h}</th>' for h in head)
    out.append("</tr>")
    for f in spec.fields:
        bg = f";background:{CHANGED_COLOR}" if f.name in changed else ""
        cells = [f"<b>{escape(f.name)}</b>", escape(f.bits_text)]
        if value is not None:
            fv = value[f.name]
            cells += [escape(fv.number_text()), escape(fv.enum or "")]
        enum = "; ".join(f"{e.value:#x} {e.name}" for e in f.enum)
        desc = escape(f.description) + (
            f'<br><span style="color:#666">{escape(enum)}</span>' if enum else ""
        )
        cells.append(desc)
        out.append("<tr>")
        out.extend(f'<td style="{_CELL};text-align:left{bg}">{c}</td>' for c in cells)
        out.append("</tr>")
    if value is not None and value.reserved:
        span = len(head) - 2
        out.append(
            f'<tr><td style="{_CELL};text-align:left">(reserved)</td>'
            f'<td style="{_CELL}"></td><td colspan="{span}" style="{_CELL};text-align:left">'
            f"{value.reserved:#x} (kept as read)</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def register_html(value: RegisterValue, *, changed: Iterable[str] = ()) -> str:
    """A decoded register as an SDM-style figure plus a legend; ``changed`` fields highlighted."""
    changed = set(changed)
    spec = value.spec
    return (
        f'<div class="mvnb-register">{_header(spec, value)}'
        f"{_figure(spec, value, changed)}{_legend(spec, value, changed)}</div>"
    )


def spec_html(spec: RegisterSpec) -> str:
    """A register's layout without a value (the figure and its field descriptions)."""
    return (
        f'<div class="mvnb-register-spec">{_header(spec, None)}'
        f"{_figure(spec, None, set())}{_legend(spec, None, set())}</div>"
    )


def fields_summary(value: RegisterValue, changed: Iterable[str] = ()) -> str:
    """``name=value (enum), ...`` for one register, changed fields highlighted."""
    changed = set(changed)
    parts = []
    for name, fv in value.fields.items():
        text = f"{escape(name)}={escape(str(fv))}"
        if name in changed:
            text = f'<span style="background:{CHANGED_COLOR};font-weight:bold">{text}</span>'
        parts.append(text)
    if "(reserved)" in changed:
        parts.append(
            f'<span style="background:{CHANGED_COLOR}">reserved={value.reserved:#x}</span>'
        )
    return ", ".join(parts)


def snapshot_html(snap: LapicSnapshot, compare: LapicSnapshot | None = None) -> str:
    """A LAPIC snapshot as a compact table; with ``compare``, fields that differ highlighted."""
    changes = compare.changes(snap) if compare is not None else {}
    where = []
    if snap.cpu is not None:
        where.append(f"CPU {snap.cpu}")
    if snap.location is not None:
        where.append(f"at {escape(str(snap.location))}")
    if snap.timestamp is not None:
        where.append(f"({escape(str(snap.timestamp))})")
    out = [
        f'<div class="mvnb-lapic"><b>Local APIC</b> {" ".join(where)}',
        f'<table style="{_TABLE}"><tr>',
        "".join(
            f'<th style="{_CELL};text-align:left">{h}</th>' for h in ("register", "value", "fields")
        ),
        "</tr>",
    ]
    for name, value in snap.items():
        mark = f";background:{CHANGED_COLOR}" if name in changes else ""
        tip = _attr(spec_tooltip(value.spec))
        left = f"{_CELL};text-align:left"
        out.append(
            f'<tr><td style="{left}{mark}" title="{tip}">{escape(name)}</td>'
            f'<td style="{left}"><code>{value.hex()}</code></td>'
            f'<td style="{left}">{fields_summary(value, changes.get(name, ()))}</td></tr>'
        )
    out.append("</table></div>")
    return "".join(out)


def cpuid_html(result: CpuidResult) -> str:
    """A CPUID result: the four registers, the vendor if any, and decoded registers."""
    out = [
        f'<div class="mvnb-cpuid"><b>CPUID</b> leaf {result.leaf:#x} subleaf {result.subleaf:#x}'
    ]
    try:
        out.append(f" — vendor <code>{escape(repr(result.vendor))}</code>")
    except ValueError:
        pass
    out.append(f'<table style="{_TABLE}"><tr>')
    out.extend(f'<th style="{_CELL}">{r}</th>' for r in result)
    out.append("</tr><tr>")
    out.extend(f'<td style="{_CELL}"><code>{result[r]:#010x}</code></td>' for r in result)
    out.append("</tr></table>")
    out.extend(register_html(v) for v in result.decode().values())
    out.append("</div>")
    return "".join(out)
