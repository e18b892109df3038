"""pandas DataFrames (their ``text/html``) as Kramdown tables.

A notebook keeps only the HTML of a DataFrame (``DataFrame._repr_html_``: a
``<table class="dataframe">`` with a ``<thead>`` and a ``<tbody>`` whose first cell per row
is the index). A post reads better with a Markdown table: themes style it (Chirpy wraps it
to scroll) and Kramdown renders it (kramdown.gettalong.org/syntax.html#tables). Tables with
merged cells (a MultiIndex) stay HTML. Cell text is escaped so that Kramdown and Liquid
take it literally.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["dataframe_markdown", "is_dataframe"]

_ESCAPE = re.compile(r"([\\`*_\[\]{}<>|$#!])")
_NUMBER = re.compile(r"^[-+]?(\d[\d,_]*\.?\d*|\.\d+)([eE][-+]?\d+)?%?$|^(nan|NaN|inf|-inf|<NA>)$")


def is_dataframe(html: str) -> bool:
    """Whether ``html`` is pandas' rendering of a DataFrame or Series frame."""
    return 'class="dataframe"' in html


class _Table(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.head: list[list[str]] = []
        self.body: list[list[str]] = []
        self.after: list[str] = []
        self.merged = False
        self.tables = 0
        self._section: list[list[str]] | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_table = False
        self._in_style = False
        self._trailing: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "style":
            self._in_style = True
        elif tag == "table":
            self.tables += 1
            self._in_table = True
        elif tag == "thead":
            self._section = self.head
        elif tag == "tbody":
            self._section = self.body
        elif tag == "tr" and self._in_table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            if any(k in ("colspan", "rowspan") and v not in (None, "1") for k, v in attrs):
                self.merged = True
            self._cell = []
        elif tag == "p" and not self._in_table:
            self._trailing = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        elif tag == "table":
            self._in_table = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            (self._section if self._section is not None else self.body).append(self._row)
            self._row = None
        elif tag == "p" and self._trailing is not None:
            self.after.append(" ".join("".join(self._trailing).split()))
            self._trailing = None

    def handle_data(self, data: str) -> None:
        if self._in_style:
            return
        if self._cell is not None:
            self._cell.append(data)
        elif self._trailing is not None:
            self._trailing.append(data)


def _escape(text: str) -> str:
    return _ESCAPE.sub(r"\\\1", text) if text else ""


def dataframe_markdown(html: str) -> str | None:
    """A Kramdown table for a DataFrame's HTML, or None when it needs HTML (merged cells)."""
    table = _Table()
    table.feed(html)
    table.close()
    if table.tables != 1 or table.merged or not table.head or not table.body:
        return None
    head = table.head
    if len(head) == 2 and all(not c for c in head[1][1:]) and not head[0][0]:
        # pandas puts a named index on a second header row: fold it into the first.
        head = [[head[1][0], *head[0][1:]]]
    if len(head) != 1:
        return None
    width = len(head[0])
    if any(len(row) != width for row in table.body):
        return None
    numeric = [all(_NUMBER.match(row[c]) or row[c] in ("", "...") for row in table.body)
               and any(row[c] not in ("", "...") for row in table.body)
               for c in range(width)]
    lines = ["| " + " | ".join(_escape(c) for c in head[0]) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in table.body]
    text = "\n".join(lines) + "\n"
    for paragraph in table.after:
        if paragraph:
            text += "\n" + _escape(paragraph) + "\n"
    return text
