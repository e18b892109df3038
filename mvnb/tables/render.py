"""One rendering function per table object: ``to_frame()`` and ``_repr_html_`` use these.

Each object renders as a title, its header fields, its findings and its entries, the
entries being the object's own ``to_frame()``; numbers that are addresses, flags or raw
bytes show in hex. Inline styles only, so the HTML survives notebook sanitizers and blog
templates, and a published post shows the same tables as the notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from .findings import findings_html

if TYPE_CHECKING:
    import pandas as pd

    from .acpi import RSDP, AcpiTable, AcpiTables
    from .ioapic import IoApicState
    from .madt import MADT
    from .mp import MPFloatingPointer, MPTable

__all__ = ["acpi_table_html", "acpi_tables_html", "entries_frame", "fields_frame",
           "floating_pointer_html", "ioapic_html", "madt_html", "mp_table_html", "rsdp_html"]

#: Columns and fields shown in hex.
HEX = {"address", "table_address", "lapic_address", "oem_table_pointer", "checksum",
       "cpu_signature", "feature_flags", "raw", "vector", "offset", "flags", "feature2",
       "rsdt_address", "xsdt_address", "select", "destination"}
_TABLE = ("border-collapse:collapse;font-family:monospace;font-size:12px;margin:2px 0")
_CELL = "border:1px solid #ccc;padding:1px 6px;text-align:left"
_HEAD = "padding:1px 6px;text-align:left;border-bottom:1px solid #999"
_DATA = "padding:1px 6px;text-align:left"


def _hex(value: Any) -> str:
    if value is None or (not isinstance(value, (int, str, bool)) and _isna(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, int):
        return str(value)
    return f"{value:#x}"


def _isna(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fields_frame(fields: Sequence[tuple[str, Any, str]]) -> pd.DataFrame:
    """(field, value, meaning) rows as a frame."""
    import pandas as pd

    return pd.DataFrame(list(fields), columns=["field", "value", "meaning"])


def entries_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows of differing fields as one frame: integer columns with gaps stay integers
    (pandas' nullable Int64), flags stay booleans (nullable boolean)."""
    import pandas as pd

    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    data = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        present = [v for v in values if v is not None]
        dtype: str | None = None
        if present and all(isinstance(v, bool) for v in present):
            dtype = "boolean"
        elif present and all(isinstance(v, int) and not isinstance(v, bool)
                             and -(1 << 63) <= v < 1 << 63 for v in present):
            dtype = "Int64"
        data[column] = pd.Series(values, dtype=dtype if dtype else object)
    return pd.DataFrame(data, columns=list(columns))


def _frame_html(frame: pd.DataFrame) -> str:
    """One table; empty cells for what an entry does not have, hex where HEX says."""
    if frame.empty:
        return '<div style="color:#666">(no entries)</div>'
    shown = frame.astype(object).where(frame.notna(), None)
    formatters = {c: (_hex if c in HEX else _plain) for c in shown.columns}
    html = shown.to_html(index=False, formatters=formatters, border=0, escape=True)
    for tag, style in (('<table class="dataframe">', _TABLE),
                       ('<table border="0" class="dataframe">', _TABLE),
                       ("<th>", _HEAD), ("<td>", _DATA)):
        html = html.replace(tag, f'{tag[:-1]} style="{style}">')
    return html


def _plain(value: Any) -> str:
    return "" if value is None or _isna(value) else str(value)


def _entries_html(frame: pd.DataFrame) -> str:
    """Entries grouped by kind, each group with only the columns it fills (a frame of mixed
    entries is wide and mostly empty; the groups read like the spec's tables)."""
    if frame.empty or "kind" not in frame.columns:
        return _frame_html(frame)
    parts = []
    for kind in dict.fromkeys(frame["kind"]):
        group = frame[frame["kind"] == kind].dropna(axis=1, how="all")
        parts.append(f'<div style="margin:4px 0 0 0"><i>{escape(str(kind))}</i> '
                     f'({len(group)})</div>' + _frame_html(group.drop(columns=["kind"])))
    return "".join(parts)


def _fields_html(fields: Sequence[tuple[str, Any, str]]) -> str:
    rows = []
    for name, value, meaning in fields:
        shown = _hex(value) if name in HEX else ("" if value is None else str(value))
        rows.append(f'<tr><td style="{_CELL}"><b>{escape(name)}</b></td>'
                    f'<td style="{_CELL}">{escape(shown)}</td>'
                    f'<td style="{_CELL};color:#555">{escape(meaning)}</td></tr>')
    return f'<table style="{_TABLE}">{"".join(rows)}</table>'


def _block(title: str, *parts: str) -> str:
    return (f'<div class="mvnb-table"><div style="font-weight:bold;margin:4px 0">'
            f'{escape(title)}</div>{"".join(parts)}</div>')


def floating_pointer_html(pointer: MPFloatingPointer) -> str:
    """The MP floating pointer: its fields and findings."""
    return _block(f"MP floating pointer at {pointer.address:#x}",
                  _fields_html(pointer.fields()), findings_html(pointer.findings))


def mp_table_html(table: MPTable) -> str:
    """The MP configuration table: header, findings, one row per entry."""
    return _block(f"MP configuration table at {table.address:#x}",
                  _fields_html(table.fields()), findings_html(table.findings),
                  _entries_html(table.to_frame()))


def rsdp_html(rsdp: RSDP) -> str:
    """The ACPI RSDP: its fields and findings."""
    return _block(f"ACPI RSDP at {rsdp.address:#x}", _fields_html(rsdp.fields()),
                  findings_html(rsdp.findings))


def acpi_table_html(table: AcpiTable) -> str:
    """Any ACPI table: header fields, findings, and the entries of the ones decoded."""
    from .acpi import RootTable

    parts = [_fields_html(table.fields()), findings_html(table.findings)]
    if isinstance(table, RootTable):
        parts.append(_frame_html(table.to_frame()))
    return _block(f"ACPI {table.signature} at {table.address:#x}", *parts)


def madt_html(madt: MADT) -> str:
    """The MADT: header, local APIC address and flags, findings, one row per structure."""
    return _block(f"ACPI MADT (APIC) at {madt.address:#x}", _fields_html(madt.fields()),
                  findings_html(madt.findings), _entries_html(madt.to_frame()))


def acpi_tables_html(tables: AcpiTables) -> str:
    """Every table found: one row each, and the walk's findings."""
    where = f" (RSDP at {tables.rsdp.address:#x})" if tables.rsdp is not None else \
        ": no RSDP found"
    parts = [_frame_html(tables.to_frame())] if tables else []
    if tables.findings:
        parts.append(findings_html(tables.findings))
    return _block(f"ACPI tables{where}", *parts)


def ioapic_html(state: IoApicState) -> str:
    """One I/O APIC: id, version, one row per pin with its decoded redirection entry."""
    irr = ", ".join(map(str, state.irr)) or "none"
    remote = ", ".join(map(str, state.remote_irr)) or "none"
    fields = [("id", state.id, ""), ("version", state.version, ""),
              ("IRR", irr, "pins with a pending interrupt"),
              ("remote IRR", remote, "level-triggered pins accepted, not yet EOIed")]
    return _block(f"I/O APIC #{state.index}", _fields_html(fields),
                  _frame_html(state.to_frame()))
