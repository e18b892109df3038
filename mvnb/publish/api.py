"""``publish(notebook, site)``: a notebook as a post in a Jekyll site, images and all.

Reads (and with ``execute=True`` first runs, through nbclient) the notebook, renders it
with :class:`~mvnb.publish.exporter.PostExporter`, checks the result for local paths,
removes what an earlier publish of the same notebook left, and writes
``_posts/YYYY-MM-DD-slug.md`` and ``assets/img/posts/slug/``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from traitlets.config import Config

from ..errors import LeakFound, PublishError
from .exporter import PostExporter
from .frontmatter import FrontMatter, parse_date
from .redact import Redaction, Redactor, find_local_paths
from .site import MARKER, Site, detect_links

__all__ = ["PublishResult", "publish"]


@dataclass
class PublishResult:
    """What ``publish`` wrote, what it redacted, and what the author should know."""

    post: Path
    images: list[Path]
    redacted: list[Redaction]
    notes: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    slug: str = ""

    def __str__(self) -> str:
        lines = [f"redacted: {r}" for r in self.redacted]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"warning: looks like a local path: {leak}" for leak in self.leaks]
        if self.removed:
            lines.append(f"replaced: {len(self.removed)} file(s) of the earlier publish")
        if self.images:
            lines.append(f"images: {len(self.images)} in {self.images[0].parent}")
        lines.append(str(self.post))
        return "\n".join(lines)


def publish(
    notebook: str | Path,
    site: str | Path,
    *,
    date: str | Date | datetime | None = None,
    execute: bool = False,
    redact: tuple[str, ...] | list[str] = (),
    check: bool = False,
    image_links: str = "auto",
    progress: str = "last",
    provenance_footer: bool = True,
    timeout: float = 600.0,
    kernel_name: str | None = None,
    show_progress: bool = True,
) -> PublishResult:
    """Publish ``notebook`` as a post in the Jekyll site folder ``site``.

    ``date`` (YYYY-MM-DD) must not be in the future; without it a re-published post keeps
    its date. ``redact`` adds ``PATH=NAME`` rules to the built-in ones. With ``check=True``
    a post that still shows a local path is not written (:class:`LeakFound`).
    ``execute=True`` runs the notebook first (each cell within ``timeout`` seconds).
    """
    path = Path(notebook).expanduser()
    if not path.is_file():
        raise PublishError(f"notebook {path} does not exist; give the path of an .ipynb file")
    try:
        nb = nbformat.read(path, as_version=4)
    except (ValueError, OSError) as error:
        raise PublishError(f"{path} is not a readable notebook: {error}") from error
    root = Path(site).expanduser()
    if root.exists() and not root.is_dir():
        raise PublishError(f"--site {root} is a file; give the folder of a Jekyll site "
                           "(or a new folder to create)")
    when = parse_date(date) if date not in (None, "") else None
    if execute:
        _execute(nb, path, timeout=timeout, kernel_name=kernel_name, show=show_progress)
    redactor = Redactor.default(redact)
    links = image_links if image_links != "auto" else detect_links(root)
    resources: dict[str, Any] = {
        "metadata": {"path": str(path.parent), "name": path.stem},
        "mvnb": {"redactor": redactor, "links": links, "site_root": str(root),
                 "date": when or parse_date(None),
                 "marker": f"{MARKER}: source={json.dumps(path.name)}; re-publishing "
                           "replaces this post and its images"},
    }
    config = Config()
    config.StreamPreprocessor.progress = progress
    config.OutputPreprocessor.progress = progress
    exporter = PostExporter(config=config, provenance_footer=provenance_footer)
    text, resources = exporter.from_notebook_node(nb, resources)
    shared = resources["mvnb"]
    redactor = shared["redactor"]  # nbconvert hands preprocessors a deep copy of resources
    front: FrontMatter = shared["front_matter_object"]
    place = Site(root, shared["slug"], links)
    previous = place.previous_posts(path.name)
    if when is None and previous:
        kept = Site.date_of(previous[0])
        if kept:
            text = _redate(text, shared["front_matter"], front, kept, shared["marker"])
    images: dict[str, bytes] = dict(resources.get("outputs", {}))
    leaks = find_local_paths(text, redactor, "post")
    for name, data in images.items():
        if name.endswith(".svg"):
            leaks += find_local_paths(data.decode("utf-8", "replace"), redactor, name)
    if check and leaks:
        raise LeakFound(leaks)
    removed = place.remove_previous(previous)
    post = place.post_path(f"{front.date:%Y-%m-%d}")
    written = place.write(post, text, images)
    return PublishResult(post=post, images=written, redacted=redactor.report(),
                         notes=list(shared["notes"]), leaks=leaks, removed=removed,
                         slug=place.slug)


def _redate(text: str, old: str, front: FrontMatter, kept: str, marker: str) -> str:
    """The post with the date of its earlier publish (re-publishing keeps the date)."""
    try:
        front.date = parse_date(kept)
    except PublishError:
        return text
    assert text.startswith(old)
    return front.yaml(marker) + text[len(old):]


def _execute(nb: Any, path: Path, *, timeout: float, kernel_name: str | None, show: bool
             ) -> None:
    """Run the notebook in its own folder with nbclient, saving widget state."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from tqdm.auto import tqdm

    name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    cells = sum(1 for c in nb.cells if c.cell_type == "code")
    bar = tqdm(total=cells, desc=f"running {path.name}", unit="cell", disable=not show,
               file=sys.stderr)
    client = NotebookClient(
        nb, timeout=int(timeout), kernel_name=name, store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_complete=lambda **_: bar.update(1),
    )
    try:
        client.execute()
    except CellTimeoutError as error:
        raise PublishError(f"a cell of {path} ran longer than {timeout:g} s; raise --timeout "
                           f"or fix the cell:\n{error}") from error
    except (CellExecutionError, DeadKernelError) as error:
        raise PublishError(f"running {path} failed; fix the notebook (or publish it without "
                           f"--execute):\n{error}") from error
    finally:
        bar.close()
