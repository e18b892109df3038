"""Markdown blocks that both Liquid and Kramdown read as meant.

Jekyll runs Liquid over a post before Kramdown turns it into HTML, so a ``{{`` or ``{%`` in
code or output either breaks the build or silently disappears. :func:`liquid_safe` wraps
such text in ``{% raw %}…{% endraw %}`` (Liquid's own escape, which works on Jekyll 3 and 4;
`render_with_liquid: false` needs Jekyll 4). The other helpers build the blocks a post is
made of: fenced code, raw HTML that Kramdown leaves alone (``markdown="0"``), ``<details>``
for hidden cells, and Chirpy's prompts (a blockquote with a ``{: .prompt-tip }`` IAL, as
Chirpy's "Writing a New Post" page documents them).
"""

from __future__ import annotations

import re

__all__ = [
    "details",
    "fence",
    "has_liquid",
    "html_block",
    "liquid_safe",
    "prompt",
]

_LIQUID = re.compile(r"\{\{|\{%")
_ENDRAW = re.compile(r"\{%-?\s*endraw(?!\w)")
_LINE_TICKS = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)


def has_liquid(text: str) -> bool:
    """Whether Liquid would read anything in ``text`` as a tag or an output."""
    return bool(_LIQUID.search(text))


def liquid_safe(text: str) -> str:
    """``text`` as Liquid outputs it verbatim: wrapped in raw when it holds ``{{``/``{%``.

    A literal ``{% endraw %}`` inside is split so that it cannot end the raw block early.
    """
    if not has_liquid(text):
        return text
    core = text.strip()
    start = text.index(core)
    body = _ENDRAW.sub(lambda m: '{% endraw %}{{ "{%" }}{% raw %}' + m.group(0)[2:], core)
    return text[:start] + "{% raw %}" + body + "{% endraw %}" + text[start + len(core):]


def fence(text: str, language: str = "plaintext", attributes: str = "") -> str:
    """A fenced code block longer than any fence inside ``text`` (Kramdown closes a fence
    at the first line that starts with at least as many backticks)."""
    longest = max((len(m.group(1)) for m in _LINE_TICKS.finditer(text)
                   if m.group(1)[0] == "`"), default=2)
    ticks = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") else text + "\n"
    block = f"{ticks}{language}\n{body}{ticks}\n"
    if attributes:
        block += f"{{: {attributes} }}\n"
    return liquid_safe(block)


def html_block(html: str, css_class: str = "mvnb-output") -> str:
    """Raw HTML that Kramdown passes through unparsed (no ``_`` turned into emphasis)."""
    body = html.strip("\n")
    return liquid_safe(f'<div class="{css_class}" markdown="0">\n{body}\n</div>\n')


def details(body: str, summary: str, css_class: str = "mvnb-hidden") -> str:
    """A collapsed ``<details>`` block whose body Kramdown still reads as Markdown."""
    return (f'<details class="{css_class}" markdown="1">\n<summary>{summary}</summary>\n\n'
            f"{body.strip(chr(10))}\n\n</details>\n")


def prompt(body: str, kind: str) -> str:
    """A Chirpy prompt (``tip``, ``info``, ``warning``, ``danger``): a blockquote with an IAL."""
    lines = body.strip("\n").split("\n")
    quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in lines)
    return f"{quoted}\n{{: .prompt-{kind} }}\n"
