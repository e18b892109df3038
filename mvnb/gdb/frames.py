"""MI answers as pandas objects: registers, vCPUs and backtraces.

Kept apart from the session so that pandas is imported on first use, not by ``import mvnb``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .stop import Frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["backtrace_frame", "cpus_frame", "registers_series"]


def registers_series(values: list[dict[str, Any]], names: list[str]) -> pd.Series:
    """``-data-list-register-values x`` as name → int (registers GDB shows as hex only)."""
    import pandas as pd

    out: dict[str, int] = {}
    for item in values:
        number = int(item["number"])
        name = names[number] if number < len(names) else ""
        text = item.get("value", "")
        if name and isinstance(text, str) and text.startswith("0x"):
            out[name] = int(text, 16)
    return pd.Series(out, dtype="uint64", name="value")


def cpus_frame(payload: dict[str, Any]) -> pd.DataFrame:
    """``-thread-info`` as one row per vCPU: cpu, thread, target_id, pc, function, state,
    current."""
    import pandas as pd

    current = payload.get("current-thread-id")
    rows = []
    for index, thread in enumerate(payload.get("threads", [])):
        frame = thread.get("frame", {})
        addr = frame.get("addr")
        rows.append({
            "cpu": index,
            "thread": int(thread["id"]),
            "target_id": thread.get("target-id", ""),
            "pc": int(addr, 16) if addr else None,
            "function": frame.get("func"),
            "state": thread.get("state"),
            "current": thread["id"] == current,
        })
    return pd.DataFrame(rows, columns=["cpu", "thread", "target_id", "pc", "function",
                                       "state", "current"])


def backtrace_frame(frames: list[dict[str, Any]],
                    args_by_level: dict[int, list[Any]]) -> pd.DataFrame:
    """``-stack-list-frames`` (+ arguments) as level, function, file, line, address, args."""
    import pandas as pd

    rows = []
    for raw in frames:
        frame = Frame.from_mi(raw, args_by_level.get(int(raw.get("level", 0)), []))
        rows.append({"level": frame.level, "function": frame.function, "file": frame.file,
                     "line": frame.line, "address": frame.address, "args": frame.args})
    table = pd.DataFrame(rows, columns=["level", "function", "file", "line", "address", "args"])
    table = table.astype({"function": object, "file": object, "line": "Int64"})
    return table.replace({float("nan"): None})
