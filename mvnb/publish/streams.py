"""Terminal text as a reader should see it: ANSI codes stripped, ``\\r`` applied, progress
bars reduced to their final line (or removed).

Stream output keeps every byte a program wrote: colour codes (ECMA-48 CSI and OSC
sequences), backspaces, and each ``\\r``-overwritten state of a tqdm bar. A terminal or
JupyterLab shows only what is left after the overwrites; so does the post.
"""

from __future__ import annotations

import re

__all__ = ["TQDM_LINE", "apply_carriage_returns", "clean", "is_progress", "strip_ansi"]

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"          # CSI: colours, cursor movement
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"                     # two-character escapes
)
# tqdm's meter: "desc: 100%|██████████| 10/10 [00:01<00:00, 9.9it/s]" or "5it [00:00, 1.2it/s]"
TQDM_LINE = re.compile(r"(?:\d{1,3}%\|[^|\n]*\|\s*)?\S+\s\[\d{1,2}:\d{2}(?::\d{2})?(?:<|,|\])")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences, backspaces applied."""
    text = _ANSI.sub("", text)
    while "\b" in text:
        new = re.sub(r"[^\n\b]\b", "", text)
        if new == text:
            text = text.replace("\b", "")
            break
        text = new
    return text


def apply_carriage_returns(text: str) -> str:
    """Each line as a terminal leaves it: the last non-empty state after ``\\r``."""
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            states = [s for s in line.split("\r") if s.strip()]
            line = states[-1].rstrip() if states else ""
        lines.append(line)
    return "\n".join(lines)


def is_progress(line: str) -> bool:
    """Whether a line is a tqdm progress meter."""
    return bool(TQDM_LINE.search(line))


def clean(text: str, progress: str = "last") -> str:
    """Stream text for a post; ``progress`` is ``last`` (keep a bar's final line) or
    ``none`` (drop progress bars)."""
    text = apply_carriage_returns(strip_ansi(text))
    if progress == "none":
        kept = [line for line in text.split("\n") if not is_progress(line)]
        text = "\n".join(kept)
    return text
