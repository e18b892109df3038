"""Registers you can see: ipywidgets bitfields and the static HTML behind ``_repr_html_``.

:class:`BitfieldWidget` shows one register like an Intel SDM register figure (Vol. 3A,
Order Number 253668-068US, e.g. Figure 10-8) and can edit it; :class:`SnapshotWidget` shows a
:class:`mvnb.regs.LapicSnapshot` and what changed since another one. The ``*_html``
functions are the static rendering used by ``_repr_html_`` and published posts.
"""

from __future__ import annotations

from ..regs.html import cpuid_html, register_html, snapshot_html, spec_html
from .bitfield import BitfieldWidget
from .snapshot import SnapshotWidget

__all__ = [
    "BitfieldWidget",
    "SnapshotWidget",
    "cpuid_html",
    "register_html",
    "snapshot_html",
    "spec_html",
]
