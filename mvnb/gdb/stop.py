"""Why and where the target stopped: ``Stop`` and ``Frame``, built from MI records."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .breakpoints import Breakpoint

__all__ = ["Frame", "Stop"]


@dataclasses.dataclass(frozen=True)
class Frame:
    """One stack frame: level 0 is where the target stopped."""

    level: int
    function: str | None
    file: str | None
    line: int | None
    address: int
    args: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_mi(cls, frame: dict[str, Any], args: list[Any] | None = None) -> Frame:
        raw_args = frame.get("args") if args is None else args
        parsed: dict[str, str] = {}
        for arg in raw_args or []:
            if isinstance(arg, dict):
                parsed[arg.get("name", "?")] = arg.get("value", "")
            else:
                parsed[str(arg)] = ""
        addr = frame.get("addr", "0x0")
        return cls(
            level=int(frame.get("level", 0)),
            function=frame.get("func") if frame.get("func") not in (None, "??") else None,
            file=frame.get("fullname") or frame.get("file"),
            line=int(frame["line"]) if frame.get("line") else None,
            address=int(addr, 16) if addr.startswith("0x") else 0,
            args=parsed,
        )

    def __str__(self) -> str:
        where = f" at {self.file}:{self.line}" if self.file else ""
        args = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"#{self.level} {self.address:#x} in {self.function or '??'}({args}){where}"


@dataclasses.dataclass(frozen=True)
class Stop:
    """A ``*stopped`` record: ``reason`` is GDB's MI reason string (None when GDB gave none)."""

    reason: str | None
    frame: Frame | None
    breakpoint: Breakpoint | None = None
    signal: str | None = None
    thread: int | None = None
    exit_code: int | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __str__(self) -> str:
        why = self.reason or "stopped"
        if self.breakpoint is not None:
            why += f" (breakpoint {self.breakpoint.number})"
        if self.signal:
            why += f" ({self.signal})"
        return f"{why} at {self.frame}" if self.frame else why

    @classmethod
    def from_mi(cls, payload: dict[str, Any], breakpoint: Breakpoint | None = None) -> Stop:
        """A Stop from a ``*stopped`` record's payload; ``breakpoint`` is the object GDB's
        ``bkptno`` (or watchpoint number) names, looked up by the caller."""
        reason = payload.get("reason")
        if isinstance(reason, list):  # several reasons at once (rare): keep the first
            reason = reason[0]
        frame = payload.get("frame")
        thread = payload.get("thread-id")
        exit_code = payload.get("exit-code")
        return cls(
            reason=reason,
            frame=Frame.from_mi(frame) if isinstance(frame, dict) else None,
            breakpoint=breakpoint,
            signal=payload.get("signal-name"),
            thread=int(thread) if thread not in (None, "all") else None,
            exit_code=int(exit_code, 8) if exit_code else None,
            raw=payload,
        )

    @staticmethod
    def breakpoint_number(payload: dict[str, Any]) -> str | None:
        """The number of the breakpoint or watchpoint a ``*stopped`` payload reports."""
        number = payload.get("bkptno")
        for key in ("wpt", "hw-awpt", "hw-rwpt"):
            if number is None and isinstance(payload.get(key), dict):
                number = payload[key].get("number")
        return number
