"""Property: whatever the interleaving of commands, timeouts and late results, every command
that returns gets exactly its own output, and a command given up on takes its output with it.

The fake GDB answers commands in order, like GDB, but only when the test lets it: it reads
one byte from a control pipe before it prints each answer (streams of every kind, then the
result), so "GDB is still busy with this command" is a state the test sets, not a race.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvnb.errors import TargetTimeout
from mvnb.gdb.mi.records import ResultRecord, StreamRecord
from mvnb.gdb.mi.transport import Pending, Transport

GATED_GDB = r'''
import os, re, sys

control = int(sys.argv[1])
for raw in sys.stdin:
    m = re.match(r"(\d*)(-[\w-]+)\s*(.*)", raw.rstrip("\n"))
    token, cmd, arg = m.group(1), m.group(2), m.group(3)
    if cmd == "-gdb-exit":
        os.write(1, f"{token}^exit\n".encode())
        break
    name, count = arg.split()
    os.read(control, 1)  # the test's go (or end of file: answer everything)
    for k in range(int(count)):
        os.write(1, f'{"~@&"[k % 3]}"{name}:{k}\\n"\n'.encode())
    os.write(1, f'{token}^done,value="{name}"\n'.encode())
    os.write(1, b"(gdb) \n")
'''
KINDS = {"~": "console", "@": "target", "&": "log"}


def own_streams(name: str, count: int) -> tuple[StreamRecord, ...]:
    return tuple(StreamRecord(KINDS["~@&"[k % 3]], f"{name}:{k}\n")  # type: ignore[arg-type]
                 for k in range(count))


class Gated:
    """The fake GDB behind a transport, and the test's side of its control pipe."""

    def __init__(self, workdir: Path) -> None:
        script = workdir / "gated_gdb.py"
        script.write_text(GATED_GDB)
        read_end, control = os.pipe()
        self.control: int | None = control
        popen = functools.partial(subprocess.Popen, pass_fds=[read_end])
        self.mi = Transport([sys.executable, str(script), str(read_end)], workdir=workdir,
                            popen=popen)
        os.close(read_end)
        self.sent: list[tuple[str, int, Pending]] = []
        self.released = 0

    def release(self) -> None:
        assert self.control is not None
        os.write(self.control, b"g")
        self.released += 1

    def release_all(self) -> None:
        if self.control is not None:
            os.close(self.control)  # end of file: the fake answers what is left
            self.control = None
            self.released = len(self.sent)

    def close(self) -> None:
        self.release_all()
        self.mi.close()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 4)),
        st.tuples(st.just("release"), st.just(0)),
        st.tuples(st.just("wait"), st.integers(0, 30)),
        st.tuples(st.just("wait_short"), st.integers(0, 30)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(OPS, st.booleans())
def test_every_surviving_command_gets_exactly_its_own_output(ops, from_thread) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gated = Gated(Path(tmp))
        mi = gated.mi
        got: dict[int, ResultRecord] = {}
        gave_up: set[int] = set()

        def wait(index: int, timeout: float) -> None:
            """Wait on command ``index`` (from another thread if asked)."""
            outcome: list[object] = []

            def run() -> None:
                try:
                    outcome.append(gated.sent[index][2].wait(timeout))
                except TargetTimeout as error:
                    outcome.append(error)

            if from_thread:
                worker = threading.Thread(target=run)
                worker.start()
                worker.join(30)
                assert not worker.is_alive()
            else:
                run()
            if isinstance(outcome[0], ResultRecord):
                got[index] = outcome[0]
            else:
                gave_up.add(index)

        try:
            for op, arg in ops:
                if op == "send":
                    name = f"c{len(gated.sent)}"
                    gated.sent.append((name, arg, mi.send(f"-cmd {name} {arg}")))
                elif op == "release" and gated.released < len(gated.sent):
                    gated.release()
                elif op in ("wait", "wait_short") and arg < len(gated.sent):
                    if arg in got or arg in gave_up:
                        continue
                    if arg < gated.released and op == "wait":
                        wait(arg, 10)
                    else:  # not answered yet (it must time out), or maybe not read yet
                        wait(arg, 0.01)
                        if arg >= gated.released:
                            assert arg in gave_up
            gated.release_all()
            for index, (_, _, pending) in enumerate(gated.sent):
                if index not in got and index not in gave_up:
                    got[index] = pending.wait(10)
        finally:
            gated.close()

        for index, result in got.items():
            name, count, _ = gated.sent[index]
            assert result.payload == {"value": name}
            assert result.streams == own_streams(name, count)
        late = {r.payload["value"]: r for r in mi.stray if isinstance(r, ResultRecord)}
        for index in gave_up:
            name, count, _ = gated.sent[index]
            assert late[name].streams == own_streams(name, count)  # swallowed with it
        assert not [r for r in mi.stray if isinstance(r, StreamRecord)]
        assert not mi.protocol_errors
