"""Jupyter Markdown to the Markdown Kramdown (Jekyll's converter) reads the same way.

Jupyter renders ``$x_1$`` as math; Kramdown knows only ``$$…$$`` and would read the ``_``
as emphasis, so inline ``$…$`` becomes ``$$…$$`` (Kramdown's inline math when it shares the
paragraph, see kramdown.gettalong.org/syntax.html#math-blocks) and display math gets the
blank lines Kramdown needs to make it a block. Code spans and fences are never touched,
and everything the author did not write as Liquid is made Liquid-safe. Image links to
notebook attachments or files beside the notebook are handed to a callback that places
them in the site and returns their URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .blocks import has_liquid, liquid_safe

__all__ = ["Converted", "Segment", "convert", "segments"]

_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})[ \t]*([^`\n]*)$")
_INLINE = re.compile(
    r"(?P<code>(?P<ticks>`+)(?:.|\n)*?(?<!`)(?P=ticks)(?!`))"
    r"|(?P<esc>\\[\\$`{}])"
    r"|(?P<dmath>\$\$(?:.|\n)+?\$\$)"
    r"|(?P<env>\\begin\{(?P<envname>[A-Za-z]+\*?)\}(?:.|\n)*?\\end\{(?P=envname)\})"
    r"|(?P<imath>\$(?=[^\s$])(?:[^$\n\\]|\\.|\n(?![ \t]*\n))*?(?<=[^\s\\])\$(?!\d))"
)
_IMAGE = re.compile(
    r"!\[(?P<alt>[^\]\n]*)\]\((?P<url><[^>\n]*>|[^)\s]+)(?P<title>\s+\"[^\"\n]*\")?\)"
    r"|<img\b(?P<before>[^>]*?)\bsrc=(?P<q>[\"'])(?P<src>[^\"'>]*)(?P=q)"
)


@dataclass(frozen=True)
class Segment:
    """A piece of a Markdown cell: ``prose``, ``fence``, ``code`` (a span) or ``math``."""

    kind: str
    text: str
    display: bool = False
    language: str = ""

    @property
    def tex(self) -> str:
        """A math segment's TeX, without its ``$``/``$$`` delimiters."""
        if self.text.startswith("$$"):
            return self.text[2:-2]
        if self.text.startswith("$"):
            return self.text[1:-1]
        return self.text


@dataclass
class Converted:
    """A cell converted for Kramdown, and what the front matter needs to know about it."""

    text: str
    math: bool = False
    mermaid: bool = False
    images: list[str] = field(default_factory=list)


def segments(text: str) -> Iterator[Segment]:
    """Split Markdown into fenced blocks, code spans, math and prose, in order."""
    lines = text.split("\n")
    prose: list[str] = []
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        if opening is None:
            prose.append(lines[i])
            i += 1
            continue
        if prose:
            yield from _inline("\n".join(prose) + "\n")
            prose = []
        marker = opening.group(2)
        closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
        block = [lines[i]]
        i += 1
        while i < len(lines):
            block.append(lines[i])
            i += 1
            if closing.match(block[-1]):
                break
        end = "\n" if i < len(lines) else ""
        yield Segment("fence", "\n".join(block) + end, language=opening.group(3).strip())
    if prose:
        yield from _inline("\n".join(prose))


def _inline(text: str) -> Iterator[Segment]:
    position = 0
    for match in _INLINE.finditer(text):
        if match.start() > position:
            yield Segment("prose", text[position:match.start()])
        if match.group("code") is not None:
            yield Segment("code", match.group(0))
        elif match.group("esc") is not None:
            yield Segment("prose", match.group(0))
        elif match.group("dmath") is not None:
            yield Segment("math", match.group(0), display=_alone(text, match.start(),
                                                                   match.end()))
        elif match.group("env") is not None:
            yield Segment("math", match.group(0), display=True)
        else:
            yield Segment("math", match.group(0))
        position = match.end()
    if position < len(text):
        yield Segment("prose", text[position:])


def _alone(text: str, start: int, end: int) -> bool:
    """Whether the span has its own lines (nothing but blanks before and after it)."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    return not text[line_start:start].strip() and not text[end:line_end].strip()


def convert(
    text: str,
    image: Callable[[str, str], str | None] | None = None,
    *,
    liquid: bool = False,
) -> Converted:
    """Convert one Markdown cell (or ``text/markdown`` output) for Kramdown.

    ``image(url, alt)`` may return the new URL (already Liquid) of an image it placed, or
    None to leave the link alone. With ``liquid=True`` the author's Liquid is kept as is.
    """
    out = Converted("")
    pieces: list[str] = []
    for segment in segments(text):
        if segment.kind == "fence":
            if segment.language.split()[:1] == ["mermaid"]:
                out.mermaid = True
            pieces.append(liquid_safe(segment.text))
        elif segment.kind == "code":
            pieces.append(liquid_safe(segment.text))
        elif segment.kind == "math":
            out.math = True
            pieces.append(_math(segment, pieces))
        else:
            pieces.append(_prose(segment.text, image, liquid, out))
    out.text = _blank_lines_after_blocks("".join(pieces))
    return out


_BLOCK_END = "\x00end-of-math-block\x00"


def _math(segment: Segment, before: list[str]) -> str:
    tex = segment.tex
    if not segment.display:
        return liquid_safe(f"$${tex}$$")
    previous = "".join(before[-3:])
    lead = "" if not previous or previous.endswith("\n\n") else (
        "\n" if previous.endswith("\n") else "\n\n")
    body = tex.strip("\n") if not tex.startswith("\\begin") else tex
    return lead + liquid_safe(f"$$\n{body}\n$$") + _BLOCK_END


def _blank_lines_after_blocks(text: str) -> str:
    """Kramdown makes ``$$…$$`` a block only when a blank line follows it."""
    parts = text.split(_BLOCK_END)
    for k in range(1, len(parts)):
        rest = parts[k]
        stripped = rest.lstrip(" \t")
        if not stripped:
            parts[k] = "\n"
        elif stripped.startswith("\n\n"):
            parts[k] = stripped
        elif stripped.startswith("\n"):
            parts[k] = "\n" + stripped
        else:
            parts[k] = "\n\n" + stripped
    return "".join(parts)


def _prose(text: str, image: Callable[[str, str], str | None] | None, liquid: bool,
           out: Converted) -> str:
    pieces: list[str] = []
    position = 0
    for match in _IMAGE.finditer(text):
        url = match.group("url") or match.group("src") or ""
        url = url[1:-1] if url.startswith("<") and url.endswith(">") else url
        alt = match.group("alt") or ""
        placed = image(url, alt) if image is not None else None
        if placed is None:
            continue
        out.images.append(url)
        pieces.append(_text(text[position:match.start()], liquid))
        if match.group("src") is not None:
            q = match.group("q")
            pieces.append(f"<img{match.group('before')}src={q}{placed}{q}")
        else:
            pieces.append(f"![{alt}]({placed}{match.group('title') or ''})")
        position = match.end()
    pieces.append(_text(text[position:], liquid))
    return "".join(pieces)


def _text(text: str, liquid: bool) -> str:
    return text if liquid or not has_liquid(text) else liquid_safe(text)
