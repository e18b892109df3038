"""A post's front matter, as Chirpy's "Writing a New Post" page documents it.

Keys come from the notebook's metadata (``metadata.mvnb.publish``, or a flat
``metadata["mvnb.publish"]``) and from its first Markdown cell: the ``# Title`` line, an
optional ``> description`` line under it and optional fastpages-style ``- key: value``
lines. The YAML is written by hand so that it is always what Jekyll expects: the title and
every string quoted (a colon is safe), ``date: YYYY-MM-DD HH:MM:SS +ZZZZ`` never in the
future (Jekyll skips future posts without a word), at most two ``categories``, lowercase
``tags``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime, time
from typing import Any

from ..errors import PublishError

__all__ = ["FrontMatter", "metadata_of", "parse_date", "split_heading"]

# Keys documented on Chirpy's "Writing a New Post" page (plus Jekyll's layout).
KEYS = ("layout", "title", "description", "date", "categories", "tags", "author", "authors",
        "math", "mermaid", "pin", "toc", "comments", "image", "media_subpath",
        "render_with_liquid")
_BOOLEAN = ("math", "mermaid", "pin", "toc", "comments", "render_with_liquid")
_HEADING = re.compile(r"^#[ \t]+(?P<title>.+?)[ \t#]*$")
_FASTPAGES = re.compile(r"^-[ \t]+(?P<key>[a-z_]+):[ \t]*(?P<value>.*)$")


def metadata_of(nb: dict[str, Any]) -> dict[str, Any]:
    """The ``mvnb.publish`` metadata of a notebook (empty when it has none)."""
    meta = nb.get("metadata", {})
    nested = meta.get("mvnb", {})
    found = dict(nested.get("publish", {}) if isinstance(nested, dict) else {})
    found.update(meta.get("mvnb.publish", {}) or {})
    unknown = sorted(set(found) - set(KEYS))
    if unknown:
        raise PublishError(f"unknown key(s) {unknown} in the notebook's mvnb.publish metadata; "
                           f"Chirpy's front matter knows {list(KEYS)}")
    return found


def split_heading(source: str) -> tuple[dict[str, Any], str]:
    """The title, description and ``- key: value`` lines at the top of a Markdown cell,
    and the rest of the cell without them."""
    lines = source.split("\n")
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    heading = _HEADING.match(lines[i]) if i < len(lines) else None
    if heading is None:
        return {}, source
    found: dict[str, Any] = {"title": heading.group("title").strip()}
    i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines) and lines[i].startswith("> "):
        found["description"] = lines[i][2:].strip()
        i += 1
    while i < len(lines):
        item = _FASTPAGES.match(lines[i])
        if item is None or item.group("key") not in KEYS:
            break
        found[item.group("key")] = _scalar(item.group("value"))
        i += 1
    return found, "\n".join(lines[i:]).lstrip("\n")


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.startswith("[") and text.endswith("]"):
        return [item.strip().strip("'\"") for item in text[1:-1].split(",") if item.strip()]
    return text.strip("'\"")


def parse_date(value: str | Date | datetime | None, now: datetime | None = None) -> datetime:
    """A post date with a time zone; a date in the future is refused.

    ``YYYY-MM-DD`` means midnight local time; None means now.
    """
    now = (now or datetime.now().astimezone()).replace(microsecond=0)
    if value is None or value == "":
        return now
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, Date):
        when = datetime.combine(value, time())
    else:
        text = str(value).strip()
        when = None
        for pattern in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z", "%Y-%m-%d %H:%M:%S",
                        "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S",
                        "%Y-%m-%d"):
            try:
                when = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
        if when is None:
            raise PublishError(f"date {text!r} is not a date: give YYYY-MM-DD "
                               "(or YYYY-MM-DD HH:MM:SS +ZZZZ)")
    if when.tzinfo is None:
        when = when.astimezone()  # the local zone, as Jekyll's date field wants one
    if when > now:
        raise PublishError(
            f"date {when:%Y-%m-%d %H:%M:%S %z} is in the future: Jekyll skips future posts "
            "without a word (unless built with --future). Give today's date or an earlier one."
        )
    return when.replace(microsecond=0)


@dataclass
class FrontMatter:
    """What goes between the ``---`` lines; :meth:`yaml` writes it."""

    title: str
    date: datetime
    description: str | None = None
    categories: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    layout: str | None = "post"
    math: bool = False
    mermaid: bool = False
    image: dict[str, str] | None = None
    media_subpath: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, fields: dict[str, Any], when: datetime) -> FrontMatter:
        """Check and normalise the fields a notebook gives (``title`` is required)."""
        title = str(fields.get("title") or "").strip()
        if not title:
            raise PublishError(
                "the notebook has no title: start its first Markdown cell with '# Title', or "
                "set metadata.mvnb.publish.title")
        categories = _list(fields.get("categories"), "categories")
        if len(categories) > 2:
            raise PublishError(f"categories {categories} has {len(categories)} entries; Chirpy "
                               "takes at most two (a top category and a sub-category)")
        tags = [t.lower() for t in _list(fields.get("tags"), "tags")]
        extra = {k: fields[k] for k in ("pin", "toc", "comments", "author", "authors",
                                        "render_with_liquid") if k in fields}
        for key in _BOOLEAN:
            if key in extra and not isinstance(extra[key], bool):
                raise PublishError(f"{key} must be true or false, not {extra[key]!r}")
        description = fields.get("description")
        return cls(title=title, date=when, categories=categories, tags=tags, extra=extra,
                   description=str(description).strip() if description else None,
                   layout=fields.get("layout", "post") or None,
                   math=bool(fields.get("math", False)),
                   mermaid=bool(fields.get("mermaid", False)))

    def yaml(self, comment: str = "") -> str:
        """The front matter block, ``---`` lines included."""
        lines = ["---"]
        lines += [f"# {line}" for line in comment.splitlines()]
        if self.layout:
            lines.append(f"layout: {_quote(self.layout)}")
        lines.append(f"title: {_quote(self.title)}")
        if self.description:
            lines.append(f"description: {_quote(self.description)}")
        lines.append(f"date: {self.date:%Y-%m-%d %H:%M:%S %z}")
        if self.categories:
            lines.append(f"categories: [{', '.join(_quote(c) for c in self.categories)}]")
        if self.tags:
            lines.append(f"tags: [{', '.join(_quote(t) for t in self.tags)}]")
        for key in ("author", "authors"):
            if key in self.extra:
                value = self.extra[key]
                lines.append(f"{key}: " + (f"[{', '.join(_quote(str(v)) for v in value)}]"
                                           if isinstance(value, list) else _quote(str(value))))
        if self.math:
            lines.append("math: true")
        if self.mermaid:
            lines.append("mermaid: true")
        for key in ("pin", "toc", "comments", "render_with_liquid"):
            if key in self.extra:
                lines.append(f"{key}: {'true' if self.extra[key] else 'false'}")
        if self.media_subpath:
            lines.append(f"media_subpath: {_quote(self.media_subpath)}")
        if self.image:
            lines.append("image:")
            lines += [f"  {k}: {_quote(v)}" for k, v in self.image.items()]
        lines.append("---")
        return "\n".join(lines) + "\n"

    def strings(self) -> list[str]:
        """Every string value (redaction and the leak check read them)."""
        out = [self.title, *(self.categories), *(self.tags)]
        out += [self.description] if self.description else []
        out += list(self.image.values()) if self.image else []
        return out


def _list(value: Any, key: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    raise PublishError(f"{key} must be a list of words, not {value!r}")


# Characters YAML 1.1 (Psych, Jekyll's parser) does not take raw in a quoted scalar: the
# non-printable ones and the line breaks it would fold (YAML 1.1, sections 5.1 and 5.4).
_NOT_PRINTABLE = re.compile(
    "[^\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _quote(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is a subset of it)."""
    quoted = json.dumps(str(text), ensure_ascii=False)
    return _NOT_PRINTABLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", quoted)
