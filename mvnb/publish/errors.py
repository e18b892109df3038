"""The errors ``mvnb publish`` raises; both derive from :class:`mvnb.errors.Error`."""

from __future__ import annotations

from ..errors import Error

__all__ = ["LeakFound", "PublishError"]


class PublishError(Error):
    """A notebook could not be published; the message says what to change."""


class LeakFound(PublishError):
    """``check=True`` found text that looks like a local path; ``leaks`` lists each one."""

    def __init__(self, leaks: list[str]) -> None:
        shown = "\n  ".join(leaks[:20])
        more = f"\n  ... and {len(leaks) - 20} more" if len(leaks) > 20 else ""
        super().__init__(
            f"the post still contains {len(leaks)} local path(s); nothing was written:\n  "
            f"{shown}{more}\nAdd --redact PATH=NAME for each, or remove the cell "
            "(tag it remove-cell / remove-output)."
        )
        self.leaks = leaks
