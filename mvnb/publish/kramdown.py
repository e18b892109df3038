"""Preprocessors for the text of a post: redaction, then Markdown that Kramdown and Liquid
read as the notebook meant it.

``RedactPreprocessor`` runs before ``KramdownPreprocessor`` so that replacements such as
``<path-to-freebsd-source>`` are escaped for where they land; ``KramdownPreprocessor`` then
converts Markdown (mvnb.publish.markdown), LaTeX and DataFrames, and places the images
Markdown cells link. Both share ``resources["mvnb"]`` with the other preprocessors
(mvnb/publish/preprocessors.py).
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path
from typing import Any

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from . import markdown
from .blocks import has_liquid, liquid_safe
from .preprocessors import note, state, tags_of
from .redact import Redactor
from .site import link
from .tables import dataframe_markdown, is_dataframe

__all__ = ["KramdownPreprocessor", "RedactPreprocessor", "escape_alt"]


class RedactPreprocessor(Preprocessor):
    """Applies ``resources["mvnb"]["redactor"]`` to inputs, outputs, alt text and SVG text.

    Replacements are escaped for where they land: HTML and SVG get ``&lt;…&gt;``, Markdown
    prose too (Kramdown would read ``<name>`` as a tag), code stays literal.
    """

    def preprocess_cell(self, cell, resources, index):
        redactor: Redactor | None = state(resources).get("redactor")
        if redactor is None:
            return cell, resources
        if cell.cell_type == "markdown":
            cell.source = _redact_markdown(cell.source, redactor)
            return cell, resources
        cell.source = redactor.redact(cell.source)
        for block in cell.metadata.get("mvnb_post", {}).get("blocks", []):
            block[1] = redactor.redact(block[1])
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                output.text = redactor.redact(output.text)
            elif output.output_type == "error":
                output.traceback = [redactor.redact(line) for line in output.traceback]
                output.evalue = redactor.redact(output.evalue)
            else:
                if "alt" in output.get("metadata", {}):
                    output.metadata["alt"] = redactor.redact(output.metadata["alt"])
                for mime, value in list(output.get("data", {}).items()):
                    if not isinstance(value, str) or mime in ("image/png", "image/jpeg",
                                                              "image/gif"):
                        continue
                    if mime in ("text/html", "image/svg+xml"):
                        output.data[mime] = redactor.redact(value, html.escape)
                    elif mime == "text/markdown":
                        output.data[mime] = _redact_markdown(value, redactor)
                    else:
                        output.data[mime] = redactor.redact(value)
        return cell, resources


def _redact_markdown(text: str, redactor: Redactor) -> str:
    out = []
    for segment in markdown.segments(text):
        prose = segment.kind == "prose"
        out.append(redactor.redact(segment.text, html.escape if prose else None))
    return "".join(out)


class KramdownPreprocessor(Preprocessor):
    """Markdown for Kramdown: math kept intact, Liquid-safe, images placed in the site.

    Markdown cells and ``text/markdown`` outputs are converted (mvnb.publish.markdown);
    ``text/latex`` becomes a ``$$`` block; a DataFrame's HTML becomes a Markdown table.
    Images that Markdown cells link (notebook attachments, files beside the notebook) join
    the post's images. A cell tagged ``liquid`` keeps the author's Liquid.
    """

    dataframe_tables = Bool(True, help="Render DataFrames as Markdown tables.").tag(
        config=True)

    def preprocess_cell(self, cell, resources, index):
        shared = state(resources)
        if cell.cell_type == "markdown":
            place = _placer(cell, resources, index)
            converted = markdown.convert(cell.source, place, liquid="liquid" in tags_of(cell))
            cell.source = converted.text
            shared["math"] = shared.get("math", False) or converted.math
            shared["mermaid"] = shared.get("mermaid", False) or converted.mermaid
            return cell, resources
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/markdown" in data:
                converted = markdown.convert(data["text/markdown"])
                data["text/markdown"] = converted.text
                shared["math"] = shared.get("math", False) or converted.math
            elif "text/latex" in data:
                tex = data.pop("text/latex").strip()
                tex = re.sub(r"^\$\$?(.*?)\$?\$$", r"\1", tex, flags=re.DOTALL).strip()
                data["text/markdown"] = liquid_safe(f"$$\n{tex}\n$$") + "\n"
                shared["math"] = True
            elif "text/html" in data and self.dataframe_tables and is_dataframe(
                    data["text/html"]):
                table = dataframe_markdown(data["text/html"])
                if table is not None:
                    del data["text/html"]
                    data["text/markdown"] = table
        return cell, resources


def _placer(cell: Any, resources: dict[str, Any], index: int):
    """The callback that puts a Markdown cell's linked image among the post's images."""
    shared = state(resources)
    attachments = cell.get("attachments", {})
    folder = shared.get("notebook_dir")

    def place(url: str, alt: str) -> str | None:
        data: bytes | None = None
        name = ""
        if url.startswith("attachment:"):
            name = url[len("attachment:"):]
            bundle = attachments.get(name, {})
            for mime, value in bundle.items():
                if mime.startswith("image/"):
                    data = value.encode() if mime == "image/svg+xml" else base64.b64decode(value)
                    break
        elif folder is not None and "://" not in url and not url.startswith(("/", "data:", "#")):
            path = (Path(folder) / url).resolve()
            if path.is_file() and (mimetypes.guess_type(path.name)[0] or "").startswith(
                    "image/"):
                data, name = path.read_bytes(), path.name
            else:
                note(resources, index, f"the image {url!r} was not found beside the notebook; "
                                       "the link is left as it is")
        if data is None:
            return None
        filename = f"md{index}_{re.sub(r'[^A-Za-z0-9._-]', '-', name)}"
        if shared.get("links") == "files" and resources.get("output_files_dir"):
            filename = f"{resources['output_files_dir']}/{filename}"
        resources.setdefault("outputs", {})[filename] = data
        return link(filename, shared.get("links", "liquid"), shared.get("image_prefix", ""))

    return place


def escape_alt(text: str) -> str:
    """Alt text inside ``![…]``: no brackets or newlines, HTML-escaped, Liquid-safe."""
    text = " ".join(text.replace("[", "(").replace("]", ")").split())
    text = html.escape(text, quote=True)
    return liquid_safe(text) if has_liquid(text) else text
