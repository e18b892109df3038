"""nbconvert preprocessors that turn a notebook into the content of a Jekyll post.

They run in the order :class:`~mvnb.publish.exporter.PostExporter` lists them, between
nbconvert's own ``TagRemovePreprocessor`` and ``ExtractOutputPreprocessor``; each leaves
the notebook valid for the next. State shared with the template lives in
``resources["mvnb"]`` (notes for the author, the provenance, the front matter fields).
The preprocessors for text (redaction, Kramdown) are in mvnb/publish/kramdown.py.
Every option is a traitlet with ``config=True``, as nbconvert's own are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nbconvert.preprocessors import Preprocessor
from traitlets import Enum, List, Unicode

from . import outputs, streams
from ._provenance import from_output
from .frontmatter import FrontMatter, metadata_of, parse_date, split_heading
from .redact import Redactor
from .site import slugify

__all__ = [
    "FrontMatterPreprocessor",
    "InputPreprocessor",
    "OutputPreprocessor",
    "ProvenancePreprocessor",
    "StreamPreprocessor",
    "TagAliasPreprocessor",
    "TitlePreprocessor",
]

TAGS = ("remove-cell", "remove-input", "remove-output", "remove-stderr", "hide-input",
        "hide-output", "hide-cell", "prompt-tip", "prompt-info", "prompt-warning",
        "prompt-danger", "preview-image", "liquid")


def state(resources: dict[str, Any]) -> dict[str, Any]:
    """``resources["mvnb"]``, created with its defaults on first use."""
    shared = resources.setdefault("mvnb", {})
    shared.setdefault("notes", [])
    shared.setdefault("fields", {})
    return shared


def note(resources: dict[str, Any], cell_index: int, text: str) -> None:
    state(resources)["notes"].append(f"cell {cell_index}: {text}")


def tags_of(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


class TagAliasPreprocessor(Preprocessor):
    """Accepts the Jupyter Book tag names also with underscores (``remove_input``)."""

    tags = List(Unicode(), default_value=list(TAGS),
                help="Tags also accepted with '_' for '-'.").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if "tags" in cell.get("metadata", {}):
            known = set(self.tags)
            cell.metadata.tags = [t.replace("_", "-") if t.replace("_", "-") in known else t
                                  for t in cell.metadata.tags]
        return cell, resources


class ProvenancePreprocessor(Preprocessor):
    """Reads the last provenance output into ``resources`` and leaves it out of the post.

    A cell whose outputs are all provenance goes entirely; otherwise only that output.
    """

    def preprocess(self, nb, resources):
        shared = state(resources)
        kept = []
        for cell in nb.cells:
            if cell.cell_type != "code" or not cell.get("outputs"):
                kept.append(cell)
                continue
            found = [(o, from_output(o)) for o in cell.outputs]
            records = [p for _, p in found if p is not None]
            if records:
                shared["provenance"] = records[-1]
                cell.outputs = [o for o, p in found if p is None]
                if not cell.outputs:
                    continue
            kept.append(cell)
        nb.cells = kept
        return nb, resources


class TitlePreprocessor(Preprocessor):
    """Front matter fields from the metadata and the first Markdown cell's heading.

    The heading lines leave the body (the theme prints the title from the front matter).
    """

    def preprocess(self, nb, resources):
        shared = state(resources)
        fields = dict(metadata_of(nb))
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                found, rest = split_heading(cell.source)
                if found:
                    for key, value in found.items():
                        fields.setdefault(key, value)
                    cell.source = rest
                break
        redactor: Redactor | None = shared.get("redactor")
        if redactor is not None:
            fields = {k: redactor.redact(v) if isinstance(v, str) else v
                      for k, v in fields.items()}
        shared["fields"] = fields
        if fields.get("title"):
            slug = shared["slug"] = slugify(str(fields["title"]))
            template = shared.get("image_prefix_template", "/assets/img/posts/{slug}/")
            shared["image_prefix"] = template.format(slug=slug)
            if shared.get("links") == "chirpy":
                shared["media_subpath"] = shared["image_prefix"]
        nb.cells = [c for c in nb.cells if c.cell_type != "markdown" or c.source.strip()]
        return nb, resources


_MAGIC_LANGUAGES = {"bash": "bash", "sh": "shell", "html": "html", "javascript": "javascript",
                    "js": "javascript", "latex": "latex", "markdown": "markdown",
                    "ruby": "ruby", "perl": "perl", "writefile": "plaintext"}


class InputPreprocessor(Preprocessor):
    """Decides how each code cell's source reads in the post.

    ``%%gdb`` cells and cells of ``%gdb`` lines become GDB ``console`` transcripts with
    ``(gdb)`` prompts (mvnb/magics.py runs one GDB command per line); other cell magics
    take the language they name. The result goes to ``cell.metadata.mvnb_post``.
    """

    language = Unicode("", help="Language of code cells (default: the notebook's).").tag(
        config=True)

    def preprocess(self, nb, resources):
        default = self.language or nb.metadata.get("language_info", {}).get("name", "") or \
            nb.metadata.get("kernelspec", {}).get("language", "")
        for cell in nb.cells:
            if cell.cell_type == "code":
                post = _input_blocks(cell.source, default)
                _transcript(cell, post)
                cell.metadata["mvnb_post"] = post
        return nb, resources


def _transcript(cell: Any, post: dict[str, Any]) -> None:
    """One GDB command and what it printed read best as one console block."""
    hidden = {"hide-input", "hide-output", "hide-cell", "remove-input", "remove-output"}
    outs = cell.get("outputs", [])
    if (post.get("commands") != 1 or hidden & set(tags_of(cell)) or not outs
            or any(o.output_type != "stream" or o.name != "stdout" for o in outs)):
        return
    block = post["blocks"][-1]
    block[1] = block[1] + "\n" + "".join(o.text for o in outs).strip("\n")
    cell.outputs = []


def _input_blocks(source: str, default: str) -> dict[str, Any]:
    lines = source.split("\n")
    first = lines[0].strip() if lines else ""
    if first.startswith("%%gdb"):
        commands = [first[5:].strip(), *lines[1:]]
        commands = [c.strip() for c in commands if c.strip() and not c.strip().startswith("#")]
        return {"blocks": [["console", "\n".join(f"(gdb) {c}" for c in commands)]],
                "console_output": True, "commands": len(commands)}
    if first.startswith("%%") and first[2:].split()[:1]:
        magic = first[2:].split()[0]
        if magic in _MAGIC_LANGUAGES:
            return {"blocks": [[_MAGIC_LANGUAGES[magic], "\n".join(lines[1:])]]}
    body = [ln for ln in lines if ln.strip()]
    gdb = [ln for ln in body if ln.lstrip().startswith("%gdb ")]
    if gdb and all(ln.lstrip().startswith(("%gdb ", "%load_ext ")) for ln in body):
        blocks = []
        rest = [ln.strip() for ln in body if not ln.lstrip().startswith("%gdb ")]
        if rest:
            blocks.append([default, "\n".join(rest)])
        blocks.append(["console", "\n".join(f"(gdb) {ln.strip()[5:].strip()}" for ln in gdb)])
        return {"blocks": blocks, "console_output": True, "commands": len(gdb)}
    return {"blocks": [[default, source]]}


class StreamPreprocessor(Preprocessor):
    """Stream output as a terminal shows it: merged, ``\\r`` applied, ANSI stripped."""

    progress = Enum(["last", "none"], default_value="last",
                    help="Progress bars: keep their final line, or drop them.").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.get("outputs"):
            return cell, resources
        merged: list[Any] = []
        for output in cell.outputs:
            if output.output_type == "stream" and "remove-stderr" in tags_of(cell) and \
                    output.name == "stderr":
                continue
            if (output.output_type == "stream" and merged
                    and merged[-1].output_type == "stream" and merged[-1].name == output.name):
                merged[-1].text += output.text
            else:
                merged.append(output)
        for output in merged:
            if output.output_type == "stream":
                output.text = streams.clean(output.text, self.progress).strip("\n")
            elif output.output_type == "error":
                output.traceback = [streams.strip_ansi(line) for line in output.traceback]
            elif "text/plain" in output.get("data", {}):
                output.data["text/plain"] = streams.strip_ansi(output.data["text/plain"])
        cell.outputs = [o for o in merged if o.output_type != "stream" or o.text.strip()]
        return cell, resources


class OutputPreprocessor(Preprocessor):
    """Keeps one MIME type per output (widgets to static, reprs dropped) and alt text."""

    progress = Enum(["last", "none"], default_value="last",
                    help="Progress bar widgets: their final line, or nothing.").tag(config=True)

    def preprocess(self, nb, resources):
        self._widgets = outputs.widget_state(nb)
        self._figures = 0
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.get("outputs"):
            return cell, resources
        kept = []
        for output in cell.outputs:
            if output.output_type not in ("display_data", "execute_result"):
                kept.append(output)
                continue
            mime, text, why = outputs.choose(output, self._widgets, self.progress)
            if why:
                note(resources, index, why)
            if mime is None:
                continue
            value = text if text is not None else output.data[mime]
            output.data = {mime: value}
            if mime in outputs.IMAGES:
                self._figures += 1
                output.metadata["alt"] = _alt(cell, output, self._figures)
            kept.append(output)
        cell.outputs = kept
        return cell, resources


_COMMENT = re.compile(r"^\s*#\s*(?!%)(.+?)\s*$")


def _alt(cell: Any, output: Any, number: int) -> str:
    """Alt text: the output's ``alt`` metadata, the cell's ``mvnb.alt``, its first comment
    line, else "Figure N"."""
    for value in (output.get("metadata", {}).get("alt"),
                  cell.metadata.get("mvnb", {}).get("alt")):
        if value:
            return str(value)
    for line in cell.source.split("\n"):
        found = _COMMENT.match(line)
        if found:
            return found.group(1)
    return f"Figure {number}"


class FrontMatterPreprocessor(Preprocessor):
    """Builds the front matter (``resources["mvnb"]["front_matter"]``) last, once the
    content is known (``math``, ``mermaid``, the preview image)."""

    layout = Unicode("post", help="The layout key ('' leaves it to the site's defaults).").tag(
        config=True)

    def preprocess(self, nb, resources):
        shared = state(resources)
        fields = dict(shared["fields"])
        if not self.layout:
            fields["layout"] = None
        fields.setdefault("layout", self.layout)
        fields["math"] = bool(fields.get("math")) or bool(shared.get("math"))
        fields["mermaid"] = bool(fields.get("mermaid")) or bool(shared.get("mermaid"))
        when = shared.get("date")
        front = FrontMatter.build(fields, when if when is not None else parse_date(None))
        front.media_subpath = shared.get("media_subpath")
        preview = _preview(nb, shared)
        if preview is not None:
            front.image = preview
        shared["front_matter_object"] = front
        return nb, resources


def _preview(nb: Any, shared: dict[str, Any]) -> dict[str, str] | None:
    for cell in nb.cells:
        if cell.cell_type == "code" and "preview-image" in tags_of(cell):
            for output in cell.get("outputs", []):
                names = output.get("metadata", {}).get("filenames", {})
                for name in names.values():
                    name = name if shared.get("links") == "files" else Path(name).name
                    path = name if shared.get("links") in ("chirpy", "files") else \
                        shared.get("image_prefix", "") + name
                    return {"path": path, "alt": output.metadata.get("alt", "")}
    return None
