"""A replay set beside the kernel's own numbers: one row per quantity, the replay's value,
the kernel's, their difference and that difference in ppm of the kernel's.

Shared by the Linux, FreeBSD and NetBSD replays' ``compare`` methods. A value that was not
observed stays missing (``<NA>``) instead of being made up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

__all__ = ["side_by_side"]


def side_by_side(rows: Iterable[tuple[str, int | None, int | None]],
                 expected: Mapping[str, int | None] | None = None) -> pd.DataFrame:
    """``rows`` of (quantity, replay, kernel) as a frame with the columns ``replay``,
    ``kernel``, ``diff`` (replay − kernel) and ``ppm``. ``expected`` (a bound on |diff| per
    quantity) goes to ``attrs["expected"]``, and whether each holds to
    ``attrs["within_expected"]`` (None where either side or the bound is missing)."""
    table = []
    within: dict[str, bool | None] = {}
    for name, replay, kernel in rows:
        diff = None if replay is None or kernel is None else int(replay) - int(kernel)
        ppm = None if diff is None or not kernel else diff / int(kernel) * 1e6
        table.append((name, replay, kernel, diff, ppm))
        bound = (expected or {}).get(name)
        within[name] = None if diff is None or bound is None else abs(diff) <= bound
    out = pd.DataFrame(table, columns=["quantity", "replay", "kernel", "diff", "ppm"])
    out = out.set_index("quantity")
    for col in ("replay", "kernel", "diff"):
        out[col] = out[col].astype("Int64")
    out["ppm"] = out["ppm"].astype(float)
    out.attrs["expected"] = dict(expected or {})
    out.attrs["within_expected"] = within
    return out
