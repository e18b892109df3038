"""mvnb.gdb.mi.transport driven by a scripted fake GDB (recorded MI text), and by a real GDB.

The fake is a small Python program run as the "gdb" process: it reads ``TOKEN-command``
lines and prints the MI lines scripted for each command, in separate writes where a real
GDB splits them (GDB writes a result record in fragments).
"""

from __future__ import annotations

import _thread
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mvnb.errors import GdbError, MIProtocolError, SessionClosed, TargetTimeout
from mvnb.gdb.mi.records import AsyncRecord, ResultRecord, StreamRecord
from mvnb.gdb.mi.transport import Pending, Transport

FAKE_GDB = r'''
import os, re, sys

def out(*parts):
    for part in parts:  # one write each, like GDB
        os.write(1, part.encode())

def line(text):
    out(text + "\n")

held = {}
lose = 0  # interrupts to lose, like GDB 13 at a hit it resumes by itself
for raw in sys.stdin:
    m = re.match(r"(\d*)(-[\w-]+)\s*(.*)", raw.rstrip("\n"))
    token, cmd, arg = m.group(1), m.group(2), m.group(3)
    if cmd == "-gdb-exit":
        line(f"{token}^exit")
        break
    elif cmd == "-ok":
        out(token, "^done", "\n", "(gdb) \n")
    elif cmd == "-value":
        out(token, "^done", ',value="' + "v" * int(arg) + '"', "\n", "(gdb) \n")
    elif cmd == "-json":
        payload = '[\\"' + "j" * int(arg) + '\\"]'
        out(f'{token}^done,json="{payload}"\n(gdb) \n')
    elif cmd == "-streams":
        line('~"console text\\n"')
        line('@"target text\\n"')
        line('&"log text\\n"')
        out(f'{token}^done\n(gdb) \n')
    elif cmd == "-interleave":
        line('*running,thread-id="all"')
        line('=breakpoint-modified,bkpt={number="1",times="1"}')
        line(f'{token}^done,value="interleaved"')
        line('*stopped,reason="breakpoint-hit",bkptno="1",thread-id="1"')
        line("(gdb) ")
    elif cmd == "-run":
        line(f"{token}^running")
        line('*running,thread-id="all"')
        line("(gdb) ")
        line('=breakpoint-modified,bkpt={number="2",times="5"}')
        line('*stopped,reason="end-stepping-range",thread-id="1"')
    elif cmd == "-notoken":
        line('^done,value="no token"')
        line("(gdb) ")
    elif cmd == "-unknown":
        line('999^done,value="for nobody"')
        line(f'{token}^done,value="mine"')
        line("(gdb) ")
    elif cmd == "-malformed":
        line("this is not GDB/MI")
        line(f'{token}^done,value="too late"')
        line("(gdb) ")
    elif cmd == "-error":
        line(f'{token}^error,msg="No symbol \\"nope\\" in current context."')
        line("(gdb) ")
    elif cmd == "-silent":
        held[arg] = token  # answered later by -answer NAME
    elif cmd == "-answer":
        line(f'{held.pop(arg)}^done,value="late"')
        line(f'{token}^done,value="answered"')
        line("(gdb) ")
    elif cmd == "-held":  # prints a little, then its answer waits for -release NAME
        line(f'~"{arg} starts\\n"')
        held[arg] = token
    elif cmd == "-release":  # the held command finishes, then this one runs
        line(f'@"{arg} ends\\n"')
        line(f'{held.pop(arg)}^done,value="{arg}"')
        line("(gdb) ")
        line(f'=released,name="{arg}"')
        line('~"released\\n"')
        line(f"{token}^done")
        line("(gdb) ")
    elif cmd == "-lose-interrupts":
        lose = int(arg)
        out(f"{token}^done\n(gdb) \n")
    elif cmd == "-exec-interrupt":
        line(f"{token}^done")
        line("(gdb) ")
        if lose:
            lose -= 1
        else:
            line('*stopped,reason="signal-received",signal-name="SIGINT",thread-id="1"')
    elif cmd == "-split":
        out(f"{token}^do")  # the rest after the next command arrives
        held["split"] = token
    elif cmd == "-finish-split":
        out('ne,value="split"\n', f'{token}^done\n(gdb) \n')
    elif cmd == "-die":
        sys.stderr.write("fake gdb: internal-error: dying on purpose\n")
        sys.stderr.flush()
        out(f"{token}^do")
        os._exit(3)
    else:
        line(f'{token}^error,msg="Undefined MI command: {cmd[1:]}"')
        line("(gdb) ")
'''


@pytest.fixture
def fake_argv(tmp_path: Path) -> list[str]:
    script = tmp_path / "fake_gdb.py"
    script.write_text(FAKE_GDB)
    return [sys.executable, str(script)]


@pytest.fixture
def events() -> list[AsyncRecord]:
    return []


@pytest.fixture
def mi(fake_argv: list[str], tmp_path: Path, events: list[AsyncRecord]) -> Iterator[Transport]:
    transport = Transport(fake_argv, workdir=tmp_path, on_async=events.append)
    try:
        yield transport
    finally:
        transport.close()
    assert transport.process.poll() is not None
    assert not transport._reader.is_alive()


def test_command_returns_its_result(mi: Transport) -> None:
    assert mi.command("-ok", timeout=10).cls == "done"
    assert mi.command("-value 5", timeout=10).payload == {"value": "vvvvv"}


def test_many_commands_in_a_row(mi: Transport) -> None:
    for n in range(200):
        assert mi.command(f"-value {n % 7}", timeout=10).payload["value"] == "v" * (n % 7)
    assert not mi.stray and not mi.protocol_errors


def test_gdb_error_carries_message_and_command(mi: Transport) -> None:
    with pytest.raises(GdbError) as caught:
        mi.command("-error", timeout=10)
    assert caught.value.message == 'No symbol "nope" in current context.'
    assert caught.value.command == "-error"


def test_interleaved_async_records(mi: Transport, events: list[AsyncRecord]) -> None:
    seq = mi.stop_seq
    result = mi.command("-interleave", timeout=10)
    assert result.payload == {"value": "interleaved"}
    stop = mi.wait_stopped(seq, timeout=10)
    assert stop is not None and stop.payload["reason"] == "breakpoint-hit"
    assert mi.state == "stopped"
    assert [(e.kind, e.cls) for e in events] == [
        ("exec", "running"), ("notify", "breakpoint-modified"), ("exec", "stopped")]
    assert mi.command("-ok", timeout=10).cls == "done"


def test_async_records_after_the_result_reach_wait_stopped(
        mi: Transport, events: list[AsyncRecord]) -> None:
    seq = mi.stop_seq
    assert mi.command("-run", timeout=10).cls == "running"
    stop = mi.wait_stopped(seq, timeout=10)
    assert stop is not None and stop.payload["reason"] == "end-stepping-range"
    assert mi.stop_seq == seq + 1 and mi.last_stop is stop
    assert mi.state == "stopped"
    modified = [e for e in events if e.cls == "breakpoint-modified"]
    assert modified and modified[0].payload["bkpt"]["times"] == "5"


def test_wait_stopped_times_out_without_a_stop(mi: Transport) -> None:
    assert mi.wait_stopped(mi.stop_seq, timeout=0.05) is None
    assert mi.command("-ok", timeout=10).cls == "done"


def test_wait_stopped_repeats_a_lost_interrupt(mi: Transport) -> None:
    mi.command("-lose-interrupts 2", timeout=10)
    seq = mi.stop_seq
    mi.command("-exec-interrupt", timeout=10)
    assert mi.wait_stopped(seq, 0.2) is None  # lost: nothing more comes
    stop = mi.wait_stopped(seq, 10, interrupt_every=0.05)
    assert stop is not None and stop.payload["signal-name"] == "SIGINT"
    assert mi.state == "stopped"
    assert mi.command("-ok", timeout=10).cls == "done"


def test_async_records_read_by_the_background_thread(mi: Transport,
                                                     events: list[AsyncRecord]) -> None:
    """``send`` without waiting: nobody leads, so the background thread reads everything."""
    seq = mi.stop_seq
    pending = mi.send("-run")
    stop = mi.wait_stopped(seq, timeout=10)
    assert stop is not None
    assert pending.wait(10).cls == "running"
    assert [e.cls for e in events][-1] == "stopped"


def test_result_without_token_goes_to_the_oldest_command(mi: Transport) -> None:
    assert mi.command("-notoken", timeout=10).payload == {"value": "no token"}
    assert mi.command("-ok", timeout=10).cls == "done"


def test_unknown_token_is_kept_in_stray(mi: Transport) -> None:
    assert mi.command("-unknown", timeout=10).payload == {"value": "mine"}
    assert any(isinstance(r, ResultRecord) and r.token == 999 for r in mi.stray)
    assert mi.command("-ok", timeout=10).cls == "done"


def test_stream_records_are_attributed_to_their_command(mi: Transport) -> None:
    first = mi.command("-streams", timeout=10)
    assert first.streams == (StreamRecord("console", "console text\n"),
                             StreamRecord("target", "target text\n"),
                             StreamRecord("log", "log text\n"))
    assert first.text() == "console text\ntarget text\n"
    assert mi.command("-ok", timeout=10).streams == ()


def test_streams_of_pipelined_commands(mi: Transport) -> None:
    pendings = [mi.send(c) for c in ("-ok", "-streams", "-ok", "-streams")]
    results = [p.wait(10) for p in pendings]
    assert [len(r.streams) for r in results] == [0, 3, 0, 3]


@pytest.mark.parametrize("size", [1 << 20, 3 * (1 << 20) + 17])
def test_one_megabyte_value_line(mi: Transport, size: int) -> None:
    assert mi.command(f"-value {size}", timeout=30).payload["value"] == "v" * size
    assert mi.command("-ok", timeout=10).cls == "done"


def test_one_megabyte_json_line(mi: Transport) -> None:
    assert mi.json_command(f"-json {1 << 20}", timeout=30) == ["j" * (1 << 20)]


def test_line_split_across_reads(mi: Transport) -> None:
    split = mi.send("-split")
    assert not split.done
    finish = mi.send("-finish-split")
    assert split.wait(10).payload == {"value": "split"}
    assert finish.wait(10).cls == "done"


def test_malformed_line_fails_the_waiting_command_only(mi: Transport) -> None:
    with pytest.raises(MIProtocolError, match="this is not GDB/MI"):
        mi.command("-malformed", timeout=10)
    assert "this is not GDB/MI" in mi.protocol_errors[-1]
    # Its real answer came after: kept as stray, and the transport goes on.
    assert mi.command("-value 2", timeout=10).payload == {"value": "vv"}
    assert any(isinstance(r, ResultRecord) and r.payload.get("value") == "too late"
               for r in mi.stray)


def test_timeout_then_late_result_goes_to_stray(mi: Transport) -> None:
    with pytest.raises(TargetTimeout, match="-silent a"):
        mi.command("-silent a", timeout=0.05)
    assert mi.command("-answer a", timeout=10).payload == {"value": "answered"}
    assert any(isinstance(r, ResultRecord) and r.payload.get("value") == "late"
               for r in mi.stray)
    assert mi.command("-ok", timeout=10).cls == "done"


def test_timed_out_command_swallows_its_own_late_output(mi: Transport) -> None:
    """Issue 8: its output went to the next command (the next ``text()`` held both)."""
    with pytest.raises(TargetTimeout, match="-held a"):
        mi.command("-held a", timeout=0.05)
    after = mi.command("-release a", timeout=10)
    assert after.text() == "released\n"
    assert after.streams == (StreamRecord("console", "released\n"),)
    late = [r for r in mi.stray if isinstance(r, ResultRecord) and r.payload == {"value": "a"}]
    assert len(late) == 1
    assert late[0].text() == "a starts\na ends\n"  # kept with its own result, nobody else's
    assert mi.command("-streams", timeout=10).text() == "console text\ntarget text\n"


def test_result_between_timeout_and_abandon_is_returned(
        mi: Transport, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer lands after the wait timed out and before the command is given up on."""
    released = threading.Event()
    mi.on_async = lambda record: released.set() if record.cls == "released" else None
    give_up = Transport._abandon

    def answer_first(self: Transport, pending: Pending) -> object:
        monkeypatch.setattr(Transport, "_abandon", give_up)
        self.send("-release c")  # GDB answers now; wait until that answer has been read
        assert released.wait(10)
        return give_up(self, pending)

    monkeypatch.setattr(Transport, "_abandon", answer_first)
    result = mi.command("-held c", timeout=0.05)
    assert result.payload == {"value": "c"}
    assert result.text() == "c starts\nc ends\n"
    assert mi.command("-ok", timeout=10).cls == "done"


def test_abandoned_command_can_be_waited_for_again(mi: Transport) -> None:
    held = mi.send("-held d")
    with pytest.raises(TargetTimeout):
        held.wait(0.05)
    mi.command("-release d", timeout=10)
    assert held.wait(10).payload == {"value": "d"}


def test_flag_setting_sigint_handler_keeps_the_wait_going(mi: Transport) -> None:
    """A handler that does not raise (Session.sample's Ctrl-C flag) runs at once, and the
    wait goes on to its end; the handler is put back afterwards."""
    caught = threading.Event()
    main = threading.get_ident()
    previous = signal.signal(signal.SIGINT, lambda *_: caught.set())
    fire = threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGINT))
    try:
        fire.start()
        assert mi.wait_stopped(mi.stop_seq, timeout=0.5) is None
        assert caught.is_set()
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    finally:
        fire.cancel()
        signal.signal(signal.SIGINT, previous)
    assert mi.command("-ok", timeout=10).cls == "done"


def test_gdb_dying_mid_command_raises_session_closed(mi: Transport) -> None:
    other = mi.send("-silent b")
    with pytest.raises(SessionClosed) as caught:
        mi.command("-die", timeout=10)
    assert "dying on purpose" in caught.value.stderr_tail
    assert "dying on purpose" in str(caught.value)
    with pytest.raises(SessionClosed):
        other.wait(10)
    with pytest.raises(SessionClosed):
        mi.send("-ok")
    assert mi.state == "closed" and not mi.alive


def test_gdb_dying_while_nobody_waits(mi: Transport) -> None:
    mi.send("-die")
    assert mi.wait_stopped(mi.stop_seq, timeout=10) is None  # returns when GDB is gone
    assert mi.state == "closed"
    with pytest.raises(SessionClosed, match="closed"):
        mi.command("-ok", timeout=10)


def test_many_threads_share_the_transport(mi: Transport) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                size = (n * 50 + i) % 13
                assert mi.command(f"-value {size}", timeout=10).payload["value"] == "v" * size
                assert len(mi.command("-streams", timeout=10).streams) == 3
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert not mi.protocol_errors


def test_keyboard_interrupt_while_waiting_leaves_the_transport_usable(mi: Transport) -> None:
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    fire = threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT))
    fire.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            mi.command("-silent c", timeout=30)
    finally:
        fire.cancel()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert mi.command("-answer c", timeout=10).payload == {"value": "answered"}
    assert any(isinstance(r, ResultRecord) and r.payload.get("value") == "late"
               for r in mi.stray)


def test_keyboard_interrupt_is_never_lost(mi: Transport) -> None:
    """An interrupt that lands while lines are dispatched is raised once they are."""
    with pytest.raises(KeyboardInterrupt):
        for _ in range(100000):
            _thread.interrupt_main()  # arrives at any point, also mid-dispatch
            mi.command("-streams", timeout=10)
    assert mi.command("-streams", timeout=10).text() == "console text\ntarget text\n"
    assert mi.command("-ok", timeout=10).cls == "done"


def test_close_is_idempotent(fake_argv: list[str], tmp_path: Path) -> None:
    transport = Transport(fake_argv, workdir=tmp_path)
    transport.close()
    transport.close()
    assert not transport._reader.is_alive()
    with pytest.raises(SessionClosed):
        transport.command("-ok", timeout=1)


# -- a real GDB, no QEMU --------------------------------------------------------------

needs_gdb = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")


@pytest.fixture
def real_gdb(tmp_path: Path) -> Iterator[Transport]:
    transport = Transport(["gdb", "--interpreter=mi3", "--nx", "-q"], workdir=tmp_path)
    try:
        yield transport
    finally:
        transport.close()


@needs_gdb
def test_real_gdb_version(real_gdb: Transport) -> None:
    assert "GNU gdb" in real_gdb.command("-gdb-version", timeout=30).text()


@needs_gdb
def test_real_gdb_evaluates(real_gdb: Transport) -> None:
    for _ in range(50):
        assert real_gdb.command("-data-evaluate-expression 1+2", timeout=30).payload == {
            "value": "3"}
    with pytest.raises(GdbError, match="No symbol table"):
        real_gdb.command("-data-evaluate-expression nosuch", timeout=30)
    real_gdb.command("-gdb-set mi-async on", timeout=30)
    assert real_gdb.command("-data-evaluate-expression 6*7", timeout=30).payload == {
        "value": "42"}
