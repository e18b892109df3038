"""One static representation per output: what a post can show of a live notebook output.

A Jupyter output bundle offers several MIME types; a post shows one. Widgets carry
``application/vnd.jupyter.widget-view+json`` (a model id, meaningless without a kernel)
and a ``text/plain`` repr (``IntSlider(value=3)``); neither belongs in a post. So a widget
shows its ``text/html`` (mvnb's widgets render their static HTML there), else an
``image/png``, else nothing (with a note). A tqdm bar in a notebook is a widget too: its
final line is rebuilt from the widget state saved in the notebook
(``metadata.widgets["application/vnd.jupyter.widget-state+json"]``, the format
ipywidgets documents as "widget state"), or it is dropped. Matplotlib's leftover reprs
(``<Figure size 640x480 with 1 Axes>``, ``[<matplotlib.lines.Line2D at 0x…>]``) go too.
"""

from __future__ import annotations

import html
import re
from typing import Any

from .streams import is_progress

__all__ = ["WIDGET_VIEW", "choose", "tqdm_line"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PRIORITY = ("text/html", "image/png", "image/jpeg", "image/gif", "image/svg+xml",
            "text/markdown", "text/latex", "text/plain")
IMAGES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
_MATPLOTLIB_REPR = re.compile(
    r"^\s*(?:<Figure size [\d.]+x[\d.]+ with \d+ Axes>"
    r"|\[?(?:<matplotlib\.[\w.]+ (?:at 0x[0-9a-fA-F]+|object at 0x[0-9a-fA-F]+)>,?\s*)+\]?"
    r"|Text\([-\d.e]+, [-\d.e]+, '.*'\))\s*$",
    re.DOTALL,
)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def widget_state(nb: dict[str, Any]) -> dict[str, Any]:
    """The saved widget models of a notebook, by model id (empty when none were saved)."""
    widgets = nb.get("metadata", {}).get("widgets", {})
    return dict(widgets.get(WIDGET_STATE, {}).get("state", {}))


def tqdm_line(model_id: str, state: dict[str, Any]) -> str | None:
    """A tqdm.notebook bar's final line from its saved models, or None.

    tqdm.notebook shows ``HBox(children=[HTML(left), FloatProgress, HTML(right)])`` and
    splits its meter at the bar (tqdm/notebook.py, ``display``): left is "desc: 100%",
    right is " 10/10 [00:01<00:00, 9.9it/s]".
    """
    box = state.get(model_id, {})
    children = box.get("state", {}).get("children", [])
    if box.get("model_name") != "HBoxModel" or len(children) != 3:
        return None
    models = [state.get(str(c).removeprefix("IPY_MODEL_"), {}) for c in children]
    names = [m.get("model_name") for m in models]
    if names != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (m.get("state", {}) for m in models)
    value, top = float(bar.get("value", 0) or 0), float(bar.get("max", 0) or 0)
    filled = round(10 * value / top) if top > 0 else 0
    meter = "█" * filled + " " * (10 - filled)
    left_text = html.unescape(str(left.get("value", ""))).strip()
    right_text = html.unescape(str(right.get("value", ""))).rstrip()
    line = f"{left_text}|{meter}|{right_text}".replace("\u2007", " ")
    return line if is_progress(line) else None


def choose(output: dict[str, Any], state: dict[str, Any], progress: str = "last"
           ) -> tuple[str | None, str | None, str | None]:
    """(MIME type to show, text replacing its data or None, note) for one display output.

    A None MIME type drops the output; the note says why.
    """
    data = output.get("data", {})
    if WIDGET_VIEW in data:
        for mime in ("text/html", "image/png"):
            if mime in data:
                return mime, None, None
        model_id = str(data[WIDGET_VIEW].get("model_id", "")) if isinstance(
            data[WIDGET_VIEW], dict) else ""
        plain = _text(data.get("text/plain", ""))
        line = tqdm_line(model_id, state) if model_id else None
        if line is not None:
            return ("text/plain", line, None) if progress == "last" else (None, None, None)
        if is_progress(plain):
            note = ("a progress bar widget whose final state was not saved with the notebook "
                    "was left out (save widget state, or publish with --execute)")
            return None, None, note if progress == "last" else None
        what = plain.split("(", 1)[0].strip() or "widget"
        return None, None, (f"a {what} widget output has no text/html or image/png "
                            "rendering and was left out")
    for mime in PRIORITY:
        if mime in data:
            if mime == "text/plain" and _MATPLOTLIB_REPR.match(_text(data[mime])):
                return None, None, None
            return mime, None, None
    if data:
        return None, None, f"an output of type {', '.join(sorted(data))} cannot be shown in " \
                           "a post and was left out"
    return None, None, None
