"""Where a post and its images go in a Jekyll site, and how the post links to them.

The post is ``_posts/YYYY-MM-DD-slug.md`` with the slug made as Jekyll's own ``slugify``
makes it (jekyll/utils.rb, "default" mode: every run of characters other than letters,
marks and decimal digits becomes one hyphen, lowercased); images go to
``assets/img/posts/slug/``. Links must resolve with or without a ``baseurl``:

- ``chirpy``: the post sets ``media_subpath: /assets/img/posts/slug/`` and links each image
  by its file name; Chirpy composes ``[site.cdn/][baseurl][media_subpath/]file`` itself
  (Chirpy's "Writing a New Post", URL Prefix). A ``relative_url`` link would get the
  baseurl twice there.
- ``liquid`` (any other theme): ``{{ '/assets/img/posts/slug/file' | relative_url }}``,
  Jekyll's filter that prepends the baseurl.

``auto`` picks ``chirpy`` when the site's ``_config.yml`` or ``Gemfile`` names
jekyll-theme-chirpy or the site carries Chirpy's ``_includes/media-url.html``.
"""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import PublishError

__all__ = ["Site", "detect_links", "link", "slugify"]

MARKER = "mvnb-publish"
MANIFEST = ".mvnb-publish.json"
_DATE_LINE = re.compile(r"^date:\s*(.+?)\s*$", re.MULTILINE)


def slugify(title: str) -> str:
    """Jekyll's ``slugify(title)`` in its default mode."""
    out: list[str] = []
    for char in title:
        category = unicodedata.category(char)
        if category[0] in ("L", "M") or category == "Nd":
            out.append(char)
        elif not out or out[-1] != "-":
            out.append("-")
    slug = "".join(out).strip("-").lower()
    if not slug:
        raise PublishError(f"the title {title!r} has no letters or digits to make a file "
                           "name from; give the notebook a title with words in it")
    return slug


def link(filename: str, links: str, prefix: str) -> str:
    """The URL a post uses for one of its images (see the module docstring).

    ``files`` (``jupyter nbconvert --to mvnb_post`` outside a site) links the extracted file
    beside the post, as nbconvert writes it.
    """
    if links in ("chirpy", "files"):
        return filename
    return "{{ '" + prefix + filename + "' | relative_url }}"


def detect_links(root: Path) -> str:
    """``chirpy`` when the site uses the Chirpy theme, else ``liquid``."""
    for name in ("_config.yml", "_config.yaml", "Gemfile"):
        path = root / name
        if path.is_file() and "jekyll-theme-chirpy" in path.read_text(errors="replace"):
            return "chirpy"
    if (root / "_includes" / "media-url.html").is_file():
        return "chirpy"
    return "liquid"


@dataclass
class Site:
    """A Jekyll site folder and the places one post takes in it."""

    root: Path
    slug: str
    links: str = "auto"

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise PublishError(f"--site {self.root} is a file; give the folder of a Jekyll "
                               "site (or a new folder to create)")
        if self.links not in ("auto", "chirpy", "liquid"):
            raise PublishError(f"image links must be auto, chirpy or liquid, not "
                               f"{self.links!r}")
        if self.links == "auto":
            self.links = detect_links(self.root)

    @property
    def image_dir(self) -> Path:
        return self.root / "assets" / "img" / "posts" / self.slug

    @property
    def image_prefix(self) -> str:
        """The site-absolute folder of this post's images (without the baseurl)."""
        return f"/assets/img/posts/{self.slug}/"

    def post_path(self, when_ymd: str) -> Path:
        return self.root / "_posts" / f"{when_ymd}-{self.slug}.md"

    # -- re-publishing -------------------------------------------------------------------

    def previous_posts(self, source: str) -> list[Path]:
        """Posts ``mvnb publish`` wrote earlier for this slug or this notebook.

        A post with this slug that mvnb did not write is refused rather than replaced.
        """
        posts = self.root / "_posts"
        if not posts.is_dir():
            return []
        found = []
        for path in sorted(posts.glob("*.md")) + sorted(posts.glob("*.markdown")):
            text = path.read_text(errors="replace")
            head = text.split("\n---", 1)[0] if text.startswith("---") else ""
            ours = f"# {MARKER}:" in head
            same_slug = re.fullmatch(rf"\d{{4}}-\d{{2}}-\d{{2}}-{re.escape(self.slug)}",
                                     path.stem) is not None
            if same_slug and not ours:
                raise PublishError(
                    f"{path} has this post's slug and was not written by mvnb publish; "
                    "move it away or give the notebook another title")
            if ours and (same_slug or f"source={json.dumps(source)}" in head):
                found.append(path)
        return found

    @staticmethod
    def date_of(post: Path) -> str | None:
        """The ``date:`` line of a post (re-publishing keeps it unless told otherwise)."""
        match = _DATE_LINE.search(post.read_text(errors="replace").split("\n---", 1)[0])
        return match.group(1).strip().strip("'\"") if match else None

    @staticmethod
    def slug_of(post: Path) -> str:
        return post.stem[11:]

    def remove_previous(self, posts: list[Path]) -> list[Path]:
        """Delete earlier posts and the images they listed; returns what was deleted."""
        removed: list[Path] = []
        for post in posts:
            folder = self.root / "assets" / "img" / "posts" / self.slug_of(post)
            removed += _remove_listed(folder)
            post.unlink()
            removed.append(post)
        removed += _remove_listed(self.image_dir)
        return removed

    def write(self, post_path: Path, text: str, images: dict[str, bytes]) -> list[Path]:
        """Write the post and its images (and the list of them, for the next publish)."""
        post_path.parent.mkdir(parents=True, exist_ok=True)
        written = []
        if images:
            self.image_dir.mkdir(parents=True, exist_ok=True)
            for name, data in sorted(images.items()):
                path = self.image_dir / name
                path.write_bytes(data)
                written.append(path)
            (self.image_dir / MANIFEST).write_text(json.dumps(sorted(images), indent=1) + "\n")
        post_path.write_text(text, encoding="utf-8")
        return written


def _remove_listed(folder: Path) -> list[Path]:
    """Remove the files a manifest lists (and the folder when it is left empty)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return []
    removed = []
    try:
        names = json.loads(manifest.read_text())
    except ValueError:
        names = []
    for name in names:
        path = folder / Path(str(name)).name
        if path.is_file():
            path.unlink()
            removed.append(path)
    manifest.unlink()
    if folder.is_dir() and not any(folder.iterdir()):
        shutil.rmtree(folder)
    return removed
