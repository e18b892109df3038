"""GDB/MI output records as frozen dataclasses, parsed with pygdbmi's grammar.

pygdbmi hands back bare dicts; mvnb turns each line into one of three record types at the
edge of the transport (GDB manual, "GDB/MI Output Syntax").
"""

from __future__ import annotations

import dataclasses
import re
from json.decoder import scanstring
from typing import Any, Literal

from pygdbmi.gdbmiparser import parse_response

from ...errors import MIProtocolError

__all__ = ["AsyncRecord", "Record", "ResultRecord", "StreamRecord", "fast_result", "parse_bytes",
           "parse_general", "parse_line", "result_record"]


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


def result_record(token: int | None, cls: str, payload: dict[str, Any],
                  streams: tuple[StreamRecord, ...]) -> ResultRecord:
    """``ResultRecord(token, cls, payload, streams)`` in one step: the transport makes one
    per command, and a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__`` (twice as slow)."""
    record = object.__new__(ResultRecord)
    record.__dict__.update(token=token, cls=cls, payload=payload, streams=streams)
    return record


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
# Fast path for result records without a payload and for mvnb's own MI commands,
# ``N^done,json="..."``. json.dumps writes ASCII only, so GDB's C escaping of it adds only
# \" and \\, which are JSON escapes too: the MI c-string is a JSON string literal, and
# json's scanstring (C) unescapes it in one pass and stops at the first unescaped quote,
# which must be the last character (else the line has a second field). Anything else takes
# pygdbmi's path.
_FAST_RESULT = re.compile(rb'(\d+)\^(done|running)(?:,json="(.*")|)\r?\Z', re.S)
_CLASSES = {b"done": "done", b"running": "running"}


def fast_result(line: bytes) -> tuple[int, str, dict[str, Any]] | None:
    """``(token, class, payload)`` of a ``N^done``, ``N^running`` or ``N^done,json="..."``
    line (bytes, newline removed); None for any other line."""
    fast = _FAST_RESULT.match(line)
    if fast is None:
        return None
    token, cls, raw = fast.groups()
    if raw is None:
        return int(token), _CLASSES[cls], {}
    try:
        text, end = scanstring(raw.decode("ascii"), 0)
    except ValueError:  # UnicodeDecodeError too: not json.dumps output
        return None
    if end != len(raw):
        return None
    return int(token), _CLASSES[cls], {"json": text}


def parse_bytes(line: bytes) -> Record | None:
    """``parse_line`` for one line as read from GDB's stdout (bytes, newline removed)."""
    fast = fast_result(line)
    if fast is not None:
        return ResultRecord(*fast)
    return parse_general(line.decode("utf-8", errors="replace"))


def parse_line(line: str) -> Record | None:
    """One line of GDB's output as a record; None for the ``(gdb)`` prompt and blank lines.

    Raises ``MIProtocolError`` for a line that is not GDB/MI output.
    """
    stripped = line.rstrip("\r\n")
    fast = fast_result(stripped.encode()) if "^" in stripped[:24] else None
    if fast is not None:
        return ResultRecord(*fast)
    return parse_general(stripped)


def parse_general(line: str) -> Record | None:
    """``parse_line`` without the fast path, for a caller that already tried
    ``fast_result`` on the line (the transport): pygdbmi's grammar for everything else."""
    stripped = line.rstrip("\r\n")
    if not stripped or stripped == "(gdb) " or stripped == "(gdb)":
        return None
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
