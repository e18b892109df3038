"""mvnb.gdb.mi.records: parse_line on each kind of GDB/MI record, and quote() round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mvnb.errors import MIProtocolError
from mvnb.gdb.mi.records import (
    AsyncRecord,
    ResultRecord,
    StreamRecord,
    fast_result,
    parse_bytes,
    parse_general,
    parse_line,
    quote,
)


def test_result_with_token_and_payload() -> None:
    record = parse_line('12^done,value="3",bkpt={number="1",addr="0x10"}\n')
    assert record == ResultRecord(12, "done", {"value": "3",
                                               "bkpt": {"number": "1", "addr": "0x10"}})


def test_result_without_token() -> None:
    record = parse_line('^error,msg="No symbol \\"x\\" in current context."\n')
    assert isinstance(record, ResultRecord)
    assert record.token is None
    assert record.cls == "error"
    assert record.payload["msg"] == 'No symbol "x" in current context.'


@pytest.mark.parametrize("cls", ["done", "running", "connected", "error", "exit"])
def test_result_classes(cls: str) -> None:
    record = parse_line(f"7^{cls}")
    assert isinstance(record, ResultRecord) and record.cls == cls and record.token == 7


@pytest.mark.parametrize(("line", "kind", "cls"), [
    ('*stopped,reason="breakpoint-hit",bkptno="1",thread-id="1"', "exec", "stopped"),
    ('*running,thread-id="all"', "exec", "running"),
    ('=breakpoint-modified,bkpt={number="1",times="2"}', "notify", "breakpoint-modified"),
    ('=thread-group-exited,id="i1"', "notify", "thread-group-exited"),
    ('+download,section=".text"', "status", "download"),
])
def test_async_records(line: str, kind: str, cls: str) -> None:
    record = parse_line(line + "\n")
    assert isinstance(record, AsyncRecord)
    assert (record.kind, record.cls) == (kind, cls)


def test_async_payload() -> None:
    record = parse_line('*stopped,reason="breakpoint-hit",bkptno="2",frame={func="f"}')
    assert isinstance(record, AsyncRecord)
    assert record.payload["reason"] == "breakpoint-hit"
    assert record.payload["frame"] == {"func": "f"}


@pytest.mark.parametrize(("line", "kind", "text"), [
    ('~"GNU gdb 13.1\\n"', "console", "GNU gdb 13.1\n"),
    ('@"LVT0\\t 0x000\\n"', "target", "LVT0\t 0x000\n"),
    ('&"warning: x\\n"', "log", "warning: x\n"),
])
def test_stream_records(line: str, kind: str, text: str) -> None:
    assert parse_line(line) == StreamRecord(kind, text)  # type: ignore[arg-type]


@pytest.mark.parametrize("line", ["(gdb) \n", "(gdb)", "", "\n", "\r\n"])
def test_prompt_and_blank_lines(line: str) -> None:
    assert parse_line(line) is None


def test_result_text_joins_streams() -> None:
    record = ResultRecord(1, "done", {}, (StreamRecord("console", "a"),
                                          StreamRecord("log", "b"),
                                          StreamRecord("target", "c")))
    assert record.text() == "ac"
    assert record.text("log") == "b"


def test_json_fast_path() -> None:
    data = {"type": "int", "str": 'a "quoted" \\ value', "list": [1, 2]}
    encoded = json.dumps(data)
    escaped = encoded.replace("\\", "\\\\").replace('"', '\\"')
    record = parse_line(f'5^done,json="{escaped}"\n')
    assert isinstance(record, ResultRecord)
    assert record.token == 5
    assert json.loads(record.payload["json"]) == data


def test_json_fast_path_one_megabyte() -> None:
    data = ["x" * 1024] * 1024
    escaped = json.dumps(data).replace('"', '\\"')
    record = parse_line(f'9^done,json="{escaped}"')
    assert isinstance(record, ResultRecord)
    assert json.loads(record.payload["json"]) == data


def test_plain_value_one_megabyte() -> None:
    value = "0123456789abcdef" * 65536
    record = parse_line(f'3^done,value="{value}"')
    assert isinstance(record, ResultRecord)
    assert record.payload["value"] == value


@pytest.mark.parametrize("line", [
    "Segmentation fault in the MI layer",
    "12 not a record",
])
def test_malformed_lines_raise(line: str) -> None:
    with pytest.raises(MIProtocolError, match="not"):
        parse_line(line)


def _mi_unquote(arg: str) -> str:
    """GDB's reading of a quoted MI argument (mi-parse.c: mi_parse_argv, parse_escape)."""
    assert arg[0] == '"' and arg[-1] == '"'
    out, i, body = [], 0, arg[1:-1]
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        char = body[i]
        if char == "\\":
            out.append(escapes[body[i + 1]])
            i += 2
            continue
        assert char != '"', "an unescaped quote would end the argument"
        out.append(char)
        i += 1
    return "".join(out)


_ARG_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\0"))


@given(_ARG_TEXT)
def test_quote_round_trips_through_gdbs_argument_rules(text: str) -> None:
    quoted = quote(text)
    assert "\n" not in quoted  # a command is one line
    assert _mi_unquote(quoted) == text


@given(_ARG_TEXT)
def test_quote_round_trips_through_pygdbmi(text: str) -> None:
    """The same escapes read back as an MI c-string (what GDB's output grammar uses)."""
    record = parse_line(f"1^done,value={quote(text)}")
    assert isinstance(record, ResultRecord)
    assert record.payload["value"] == text


@pytest.mark.parametrize("line", [
    b'4^done,json="[1]",value="second field"',  # an unescaped quote: not one json field
    b'4^done,json="caf\xc3\xa9"',  # not json.dumps output (non-ASCII)
    b'4^done,json="a\\033b"',  # a C escape that is no JSON escape: pygdbmi reads it
])
def test_fast_path_leaves_other_lines_to_pygdbmi(line: bytes) -> None:
    assert fast_result(line) is None
    record = parse_bytes(line)
    assert isinstance(record, ResultRecord) and record.token == 4
    assert record.payload == parse_line(line.decode()).payload  # type: ignore[union-attr]


def test_fast_path_without_payload() -> None:
    assert fast_result(b"7^running") == (7, "running", {})
    assert fast_result(b"7^done\r") == (7, "done", {})
    assert fast_result(b"^done") is None  # no token: pygdbmi's path


@pytest.mark.parametrize("line", [
    '3^done,value="0xffffffff81000000 <_text>"',
    '^error,msg="No symbol \\"x\\" in current context."',
    '*stopped,reason="breakpoint-hit",bkptno="2",frame={func="f"}',
    '+download,{section=".text"}',
    '~"text\\n"',
    "(gdb) ",
    "",
])
def test_general_parser_agrees_with_parse_line(line: str) -> None:
    """The transport's path for lines fast_result declined: the same records."""
    assert parse_general(line) == parse_line(line)
