"""GDB/MI output records as frozen dataclasses, parsed with pygdbmi's grammar.

pygdbmi hands back bare dicts; mvnb turns each line into one of three record types at the
edge of the transport (GDB manual, "GDB/MI Output Syntax").
"""

from __future__ import annotations

import codecs
import dataclasses
import re
from typing import Any, Literal

from pygdbmi.gdbmiparser import parse_response

from ...errors import MIProtocolError

__all__ = ["AsyncRecord", "Record", "ResultRecord", "StreamRecord", "parse_line"]


@dataclasses.dataclass(frozen=True)
class ResultRecord:
    """``TOKEN^CLASS,...``: the answer to one command (done, running, connected, error, exit)."""

    token: int | None
    cls: str
    payload: dict[str, Any]
    streams: tuple[StreamRecord, ...] = ()

    def text(self, *kinds: str) -> str:
        """The stream output that came with this command (console and target by default)."""
        kinds = kinds or ("console", "target")
        return "".join(s.text for s in self.streams if s.kind in kinds)


@dataclasses.dataclass(frozen=True)
class AsyncRecord:
    """``*stopped,...`` (exec), ``+...`` (status) or ``=...`` (notify): carries no token."""

    kind: Literal["exec", "status", "notify"]
    cls: str
    payload: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class StreamRecord:
    """``~"..."`` (console), ``@"..."`` (target, e.g. ``monitor`` output), ``&"..."`` (log)."""

    kind: Literal["console", "target", "log"]
    text: str


Record = ResultRecord | AsyncRecord | StreamRecord

_STREAM_KINDS = {"console": "console", "target": "target", "log": "log"}
_ASYNC_PREFIX = {"*": "exec", "+": "status", "=": "notify"}
# Fast path for mvnb's own MI commands: ``N^done,json="..."``. json.dumps escapes every
# non-ASCII character, so GDB's C escaping can only have added \" and \\.
_JSON_RESULT = re.compile(r'(\d+)\^done,json="(.*)"\s*$', re.S)


def parse_line(line: str) -> Record | None:
    """One line of GDB's output as a record; None for the ``(gdb)`` prompt and blank lines.

    Raises ``MIProtocolError`` for a line that is not GDB/MI output.
    """
    stripped = line.rstrip("\r\n")
    if not stripped or stripped == "(gdb) " or stripped == "(gdb)":
        return None
    fast = _JSON_RESULT.match(stripped)
    if fast is not None:
        raw = fast.group(2)
        text = codecs.decode(raw, "unicode_escape") if "\\" in raw else raw
        return ResultRecord(int(fast.group(1)), "done", {"json": text})
    body = stripped.lstrip("0123456789")
    if body[:1] == "+":  # status records: pygdbmi knows only the "=" and "*" async forms
        stripped = f"{stripped[: len(stripped) - len(body)]}={body[1:]}"
    try:
        parsed = parse_response(stripped)
    except Exception as error:  # pygdbmi raises ValueError and friends on broken escapes
        raise MIProtocolError(f"GDB printed a line that is not valid GDB/MI ({error}): "
                              f"{_shorten(stripped)}") from None
    kind = parsed["type"]
    if kind == "result":
        return ResultRecord(parsed.get("token"), parsed["message"], parsed["payload"] or {})
    if kind == "notify":
        return AsyncRecord(_ASYNC_PREFIX.get(body[:1], "notify"),  # type: ignore[arg-type]
                           parsed["message"], parsed["payload"] or {})
    if kind in _STREAM_KINDS:
        return StreamRecord(_STREAM_KINDS[kind], parsed["payload"] or "")  # type: ignore[arg-type]
    raise MIProtocolError(f"GDB printed a line that is not GDB/MI output: {_shorten(stripped)}")


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def quote(text: str) -> str:
    """``text`` as an MI c-string argument: quoted, with backslashes and quotes escaped."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"')
               .replace("\n", "\\n").replace("\t", "\\t"))
    return f'"{escaped}"'
