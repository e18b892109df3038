"""Validation findings: what a table should hold, what it holds, and where.

Decoders in this package never raise on malformed bytes: every check that fails becomes a
:class:`Finding`, so a table that would make a kernel panic ("Unknown MP Config Entry 68")
still decodes, and says where and why.
"""

from __future__ import annotations

import dataclasses
from html import escape

__all__ = ["Finding", "checksum", "hexdump"]


@dataclasses.dataclass(frozen=True)
class Finding:
    """One check that failed: ``what`` was checked, ``expected`` against ``found``.

    ``offset`` is the byte offset in the table (None for the table as a whole); ``address``
    the physical address of that byte when the table's address is known; ``context`` a hex
    and ASCII dump of the bytes around it, and ``note`` what that means.
    """

    what: str
    expected: str
    found: str
    offset: int | None = None
    address: int | None = None
    context: str = ""
    note: str = ""
    severity: str = "error"  # "error" (the table is wrong) or "warning" (odd but usable)

    def __str__(self) -> str:
        where = ""
        if self.offset is not None:
            where = f" at offset {self.offset:#x}"
            if self.address is not None:
                where += f" (address {self.address:#x})"
        text = f"{self.severity}: {self.what}{where}: expected {self.expected}, found {self.found}"
        if self.note:
            text += f"; {self.note}"
        if self.context:
            text += "\n" + "\n".join(f"    {line}" for line in self.context.splitlines())
        return text

    def row(self) -> dict[str, object]:
        """The finding as a table row."""
        return {"severity": self.severity, "what": self.what, "offset": self.offset,
                "address": self.address, "expected": self.expected, "found": self.found,
                "note": self.note}

    def _repr_html_(self) -> str:
        return findings_html([self])


def checksum(data: bytes) -> int:
    """The sum of ``data`` modulo 256 (0 for a valid MP or ACPI structure)."""
    return sum(data) & 0xFF


def hexdump(data: bytes, start: int, *, base: int = 0, mark: int | None = None,
            width: int = 16) -> str:
    """Lines of ``offset  hex bytes  |ascii|`` for ``data`` (which begins at table offset
    ``start``); offsets shown are ``base + offset`` and the byte at ``mark`` is bracketed."""
    lines = []
    for at in range(0, len(data), width):
        chunk = data[at : at + width]
        cells = []
        for i, b in enumerate(chunk):
            text = f"{b:02x}"
            cells.append(f"[{text}]" if mark is not None and start + at + i == mark else
                         f" {text} ")
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{base + start + at:#010x} {''.join(cells):<{width * 4}} |{ascii_}|")
    return "\n".join(lines)


def context(data: bytes, offset: int, *, base: int = 0, before: int = 16,
            after: int = 32) -> str:
    """A hexdump of the bytes around ``offset`` (aligned to 16), the byte there marked."""
    start = max(0, (offset - before) // 16 * 16)
    end = min(len(data), offset + after)
    if start >= end:
        return ""
    return hexdump(data[start:end], start, base=base, mark=offset)


_COLORS = {"error": "#b00020", "warning": "#8a6d00"}


def findings_html(findings: list[Finding]) -> str:
    """The findings as a list, each with its hex context in a ``<pre>``."""
    if not findings:
        return '<div style="color:#2a7a2a">no findings: every check passed</div>'
    items = []
    for f in findings:
        head = escape(str(dataclasses.replace(f, context="")))
        color = _COLORS.get(f.severity, "#000")
        pre = (f'<pre style="margin:2px 0;font-size:11px">{escape(f.context)}</pre>'
               if f.context else "")
        items.append(f'<li><span style="color:{color}">{head}</span>{pre}</li>')
    return f'<ul style="margin:2px 0">{"".join(items)}</ul>'
