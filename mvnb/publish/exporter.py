"""``PostExporter``: a notebook as a Jekyll (Chirpy) post, an nbconvert exporter.

Registered under the ``nbconvert.exporters`` entry point as ``mvnb_post`` (so
``jupyter nbconvert --to mvnb_post nb.ipynb`` previews a post), the way nbconvert
registers its own exporters. It is a small :class:`~nbconvert.exporters.TemplateExporter`
subclass: its template (``templates/mvnb_post/index.md.j2``) lays out blocks, and the
preprocessors it switches on do the work (mvnb/publish/preprocessors.py). Placing the post
and its images in a site is :func:`mvnb.publish.publish`'s job.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from nbconvert.exporters import TemplateExporter
from traitlets import Bool, Enum, List, Unicode, default
from traitlets.config import Config

from . import blocks
from ._provenance import Provenance
from .frontmatter import parse_date
from .kramdown import escape_alt
from .preprocessors import state
from .redact import Redactor
from .site import detect_links, link

__all__ = ["PostExporter", "footer"]

TEMPLATES = Path(__file__).parent / "templates"
PREPROCESSORS = [
    "mvnb.publish.preprocessors.TagAliasPreprocessor",
    "mvnb.publish.preprocessors.ProvenancePreprocessor",
    "nbconvert.preprocessors.TagRemovePreprocessor",
    "mvnb.publish.preprocessors.TitlePreprocessor",
    "mvnb.publish.preprocessors.StreamPreprocessor",
    "mvnb.publish.preprocessors.InputPreprocessor",
    "mvnb.publish.preprocessors.OutputPreprocessor",
    "mvnb.publish.kramdown.RedactPreprocessor",
    "mvnb.publish.kramdown.KramdownPreprocessor",
    "nbconvert.preprocessors.ExtractOutputPreprocessor",
    "mvnb.publish.preprocessors.FrontMatterPreprocessor",
]


class PostExporter(TemplateExporter):
    """Exports a notebook to the Markdown of a Jekyll post, front matter included."""

    export_from_notebook = "Jekyll post (mvnb)"
    output_mimetype = "text/markdown"

    image_links = Enum(
        ["auto", "chirpy", "liquid", "files"], default_value="auto",
        help="How images are linked: 'chirpy' (media_subpath + file name), 'liquid' "
             "(relative_url, any theme), 'files' (the files nbconvert writes beside the "
             "post), or 'auto' (chirpy when the site uses Chirpy, files outside a site).",
    ).tag(config=True)
    image_prefix = Unicode(
        "/assets/img/posts/{slug}/",
        help="Site-absolute folder of a post's images; {slug} is the post's slug.",
    ).tag(config=True)
    date = Unicode("", help="Post date, YYYY-MM-DD (default: now); never in the future.").tag(
        config=True)
    redact = List(Unicode(), help="Extra redactions, each PATH=NAME.").tag(config=True)
    redact_local = Bool(
        True, help="Redact the home and cache directories, temporary directories, the user "
                   "and host names.").tag(config=True)
    provenance_footer = Bool(
        True, help="End the post with the versions the notebook ran with, when it recorded "
                   "them (mvnb.publish.provenance).").tag(config=True)

    @default("file_extension")
    def _file_extension_default(self) -> str:
        return ".md"

    @default("template_name")
    def _template_name_default(self) -> str:
        return "mvnb_post"

    @default("extra_template_basedirs")
    def _default_extra_template_basedirs(self) -> list[str]:
        return [str(TEMPLATES)]

    @default("raw_mimetypes")
    def _raw_mimetypes_default(self) -> list[str]:
        return ["text/markdown", "text/html", ""]

    @default("default_preprocessors")
    def _default_preprocessors_default(self) -> list[str]:
        return list(PREPROCESSORS)

    @property
    def default_config(self) -> Config:
        names = [p.rsplit(".", 1)[1] for p in PREPROCESSORS]
        c = Config({name: {"enabled": True} for name in names})
        c.merge(Config({
            "TagRemovePreprocessor": {
                "remove_cell_tags": {"remove-cell"},
                "remove_all_outputs_tags": {"remove-output"},
                "remove_input_tags": {"remove-input"},
            },
            "ExtractOutputPreprocessor": {
                "output_filename_template": "cell{cell_index}_{index}{extension}",
                "extract_output_types": {"image/png", "image/jpeg", "image/gif",
                                         "image/svg+xml"},
            },
            "NbConvertBase": {"display_data_priority": [
                "text/html", "image/png", "image/jpeg", "image/gif", "image/svg+xml",
                "text/markdown", "text/latex", "text/plain"]},
        }))
        if super().default_config:
            merged = super().default_config.copy()
            merged.merge(c)
            c = merged
        return c

    def default_filters(self):  # type: ignore[no-untyped-def]
        yield from super().default_filters()
        yield "post_fence", blocks.fence
        yield "post_html", blocks.html_block
        yield "post_details", blocks.details
        yield "post_prompt", blocks.prompt
        yield "post_text", _text
        yield "post_image", _image

    def from_notebook_node(self, nb, resources=None, **kw):  # type: ignore[no-untyped-def]
        """Render the post; ``resources["mvnb"]`` carries the site's choices and the notes."""
        resources = self._init_resources(resources)
        shared = state(resources)
        if "redactor" not in shared:
            shared["redactor"] = (Redactor.default(self.redact) if self.redact_local
                                  else Redactor.default(self.redact, home="", cache="",
                                                        user="", host="", tmpdirs=()))
        links = shared.get("links", self.image_links)
        if links == "auto":
            root = shared.get("site_root")
            links = detect_links(Path(root)) if root else (
                "files" if resources.get("output_files_dir") else "liquid")
        shared["links"] = links
        shared.setdefault("image_prefix_template", self.image_prefix)
        if "date" not in shared:
            shared["date"] = parse_date(self.date or None)
        path = resources.get("metadata", {}).get("path")
        if path and "notebook_dir" not in shared:
            shared["notebook_dir"] = path
        output, resources = super().from_notebook_node(nb, resources, **kw)
        return output, resources

    def _preprocess(self, nb, resources):  # type: ignore[no-untyped-def]
        nb, resources = super()._preprocess(nb, resources)
        shared = state(resources)
        front = shared["front_matter_object"]
        shared["front_matter"] = front.yaml(shared.get("marker", ""))
        record: Provenance | None = shared.get("provenance")
        shared["footer"] = footer(record, shared["redactor"]) if (
            record and self.provenance_footer) else ""
        return nb, resources


def _text(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _image(output: Any, mime: str, resources: dict[str, Any]) -> str:
    """``![alt](url)`` for an extracted image (SVGs get the width Chirpy needs)."""
    shared = resources["mvnb"]
    filename = output.metadata.get("filenames", {}).get(mime)
    if filename is None:
        return ""
    if shared["links"] != "files":
        filename = Path(filename).name
    url = link(filename, shared["links"], shared["image_prefix"])
    alt = escape_alt(str(output.metadata.get("alt", "")))
    attributes = ""
    if mime == "image/svg+xml":
        width = re.search(r"<svg\b[^>]*\bwidth=[\"']([\d.]+)(?:pt|px)?[\"']",
                          str(output.data.get(mime, "")))
        attributes = f'{{: width="{round(float(width.group(1)))}" }}' if width else \
            '{: width="700" }'
    return f"![{alt}]({url}){attributes}\n"


def footer(record: Provenance, redactor: Redactor | None = None) -> str:
    """The post's last lines: what the notebook ran with, and when."""
    day = record.date[:10] if record.date else ""
    text = f"Ran {'on ' + day + ' ' if day else ''}with {record.summary()}."
    if redactor is not None:
        text = redactor.redact(text)
    return ("* * *\n\n" + blocks.liquid_safe(
        f'<p class="mvnb-provenance"><small>{html.escape(text)}</small></p>') + "\n")
