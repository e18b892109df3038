"""Every error mvnb raises, rooted at :class:`mvnb.Error`.

Each says what happened and what to do next; each carries its data as attributes so a
notebook can act on it (``FaultError.address``, ``TargetExited.serial_tail``).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "Error",
    "FaultError",
    "GdbError",
    "GuestError",
    "LeakFound",
    "MIProtocolError",
    "MissingTool",
    "ProbeFault",
    "PublishError",
    "QemuError",
    "SessionClosed",
    "SpecError",
    "SymbolMismatch",
    "TargetExited",
    "TargetStuck",
    "TargetTimeout",
    "UnknownName",
    "Unsupported",
    "ValueUnavailable",
]


class Error(Exception):
    """The root of every mvnb error."""


class GdbError(Error):
    """GDB refused a command: carries GDB's own message and the command that was sent."""

    def __init__(self, message: str, command: str) -> None:
        super().__init__(f"{message}\n  (gdb command: {command})")
        self.message = message
        self.command = command


class TargetTimeout(Error, TimeoutError):
    """The target did not stop in time; it was interrupted and the session is usable."""

    def __init__(self, message: str, stop: object | None = None) -> None:
        super().__init__(message)
        self.stop = stop


class TargetStuck(Error):
    """The target stopped at a guard: a place it is known never to leave (``Session.guard``).

    The message names the cause and the remedy; the target sits at the guard and the
    session is usable. ``stop`` is where it stopped.
    """

    def __init__(self, message: str, stop: object | None = None) -> None:
        super().__init__(message)
        self.stop = stop


class SessionClosed(Error):
    """GDB went away; carries the tail of its standard error."""

    def __init__(self, message: str, stderr_tail: str = "") -> None:
        text = message
        if stderr_tail:
            text += f"\n--- gdb stderr (tail) ---\n{stderr_tail}"
        super().__init__(text)
        self.stderr_tail = stderr_tail


class TargetExited(Error):
    """The guest or QEMU went away; carries the exit status, the serial tail and QEMU's log."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        serial_tail: str = "",
        stderr: str = "",
        qemu_log: str = "",
    ) -> None:
        parts = [message]
        if stderr.strip():
            parts.append(f"--- qemu stderr ---\n{stderr.rstrip()}")
        if qemu_log.strip():
            parts.append(f"--- qemu log (-d guest_errors,cpu_reset) ---\n{qemu_log.rstrip()}")
        if serial_tail.strip():
            parts.append(f"--- serial console (tail) ---\n{serial_tail.rstrip()}")
        super().__init__("\n".join(parts))
        self.status = status
        self.serial_tail = serial_tail
        self.stderr = stderr
        self.qemu_log = qemu_log


class FaultError(Error):
    """Memory at ``address`` could not be read or written."""

    def __init__(self, message: str, address: int) -> None:
        super().__init__(message)
        self.address = address


class ProbeFault(Error):
    """The probed instruction faulted: the step landed at ``landed_at``, not after it.

    Every register and the stack below rsp were restored before this was raised.
    """

    def __init__(self, message: str, landed_at: int, where: str) -> None:
        super().__init__(message)
        self.landed_at = landed_at
        self.where = where


class SymbolMismatch(Error):
    """The symbols do not describe the running code (a KASLR slide, another offset): the
    breakpoints cannot trip. Carries the ``SymbolCheck`` that found it, with its fix."""

    def __init__(self, message: str, check: object) -> None:
        super().__init__(message)
        self.check = check


class Unsupported(Error):
    """The stub or target cannot do this (no QEMU monitor, no watchpoints, ...)."""


class UnknownName(Error, KeyError):
    """A register, field or snapshot entry that does not exist; ``matches`` are close names.

    Also a KeyError, so code that caught the KeyError of a mapping lookup keeps working.
    """

    def __init__(self, message: str, name: str = "", matches: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.matches = matches

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError's str() would quote the whole message

    @classmethod
    def among(cls, what: str, name: str, known: Iterable[str], hint: str = "") -> UnknownName:
        """``no {what} named {name!r}; did you mean ...?`` with difflib's close matches."""
        import difflib

        known = list(known)
        matches: tuple[str, ...] = ()
        for form in dict.fromkeys((name, name.upper(), name.lower())):
            matches = tuple(difflib.get_close_matches(form, known, n=4))
            if matches:
                break
        text = f"no {what} named {name!r}"
        if matches:
            text += f"; did you mean {', '.join(matches)}?"
        if hint:
            text += f" ({hint})"
        return cls(text, name, matches)


class ValueUnavailable(Error, ValueError):
    """A value GDB cannot give where the target stopped (``<optimized out>``,
    ``<unavailable>``, unreadable memory): it has no number to convert or compare."""


class MissingTool(Error):
    """A program mvnb needs is not installed; the message names the package to install."""


class GuestError(Error):
    """A guest kernel could not be fetched, found or checked."""


class QemuError(Error):
    """A QEMU build could not be found, fetched or checked."""


class MIProtocolError(Error):
    """GDB printed something that is not GDB/MI output."""


class SpecError(Error, ValueError):
    """A register spec file is malformed; the message names the file and the register."""


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
