"""Sampling guest clocks at breakpoints into pandas frames: ``Session.sample``.

``SamplingMixin`` is mixed into ``Session``; see issue "Timer counts as frames".
"""

from __future__ import annotations

__all__ = ["SamplingMixin"]


class SamplingMixin:
    """Methods of ``Session`` that collect samples."""
