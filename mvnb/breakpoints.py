"""Breakpoints and watchpoints as objects that keep themselves up to date.

The session updates ``hits`` from GDB's ``=breakpoint-modified`` records, so reading it
costs no round trip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Breakpoint"]


class Breakpoint:
    """A GDB breakpoint or watchpoint: ``number``, ``location``, ``address``, ``hits``."""

    def __init__(self, session: Session, info: dict[str, Any], location: str) -> None:
        self._session = session
        self.number = int(info["number"])
        self.location = location
        self.kind = info.get("type", "breakpoint")
        self.hardware = self.kind.startswith("hw") or info.get("type") == "hw breakpoint"
        self.temporary = info.get("disp") == "del"
        self.deleted = False
        self._info: dict[str, Any] = {}
        self._update(info)

    def _update(self, info: dict[str, Any]) -> None:
        self._info.update(info)

    @property
    def address(self) -> int | None:
        """The code address (None for watchpoints and breakpoints with several locations)."""
        addr = self._info.get("addr", "")
        return int(addr, 16) if isinstance(addr, str) and addr.startswith("0x") else None

    @property
    def hits(self) -> int:
        return int(self._info.get("times", 0))

    @property
    def enabled(self) -> bool:
        return self._info.get("enabled", "y") == "y"

    @property
    def condition(self) -> str | None:
        return self._info.get("cond")

    @property
    def function(self) -> str | None:
        return self._info.get("func")

    def enable(self) -> None:
        self._session._mi(f"-break-enable {self.number}")
        self._info["enabled"] = "y"

    def disable(self) -> None:
        self._session._mi(f"-break-disable {self.number}")
        self._info["enabled"] = "n"

    def delete(self) -> None:
        if not self.deleted:
            self._session._mi(f"-break-delete {self.number}")
            self._session._forget_breakpoint(self.number)
            self.deleted = True

    def __repr__(self) -> str:
        where = f" at {self.address:#x}" if self.address is not None else ""
        state = "" if self.enabled else ", disabled"
        gone = ", deleted" if self.deleted else ""
        return (f"<Breakpoint {self.number} {self.kind} {self.location!r}{where}, "
                f"hits={self.hits}{state}{gone}>")
