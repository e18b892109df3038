"""Notebooks as Jekyll (Chirpy) blog posts: ``mvnb publish NOTEBOOK --site DIR``.

:func:`publish` writes ``_posts/YYYY-MM-DD-slug.md`` and its images into a site, built on
nbconvert (:class:`PostExporter`, registered as the ``mvnb_post`` exporter). A notebook
records what it ran with by displaying :func:`provenance`; the post's footer shows it.

Names load on first use (PEP 562): ``mvnb --help`` need not import nbconvert.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import LeakFound, PublishError
    from ._provenance import PROVENANCE_MIME, Provenance, provenance
    from .api import PublishResult, publish
    from .exporter import PostExporter
    from .redact import Redaction, Redactor

__all__ = [
    "PROVENANCE_MIME",
    "LeakFound",
    "PostExporter",
    "Provenance",
    "PublishError",
    "PublishResult",
    "Redaction",
    "Redactor",
    "provenance",
    "publish",
]

_HOME = {
    "PublishResult": "api", "publish": "api",
    "PostExporter": "exporter",
    "PROVENANCE_MIME": "_provenance", "Provenance": "_provenance", "provenance": "_provenance",
    "Redaction": "redact", "Redactor": "redact",
}


def __getattr__(name: str) -> Any:
    if name in ("LeakFound", "PublishError"):
        from .. import errors

        return getattr(errors, name)
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
