"""mvnb's cache directory: guest kernels, QEMU builds and GDB's index cache live under it.

Any layer may use it. ``$XDG_CACHE_HOME/mvnb``, or ``~/.cache/mvnb``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mvnb``, or ``~/.cache/mvnb``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mvnb"
