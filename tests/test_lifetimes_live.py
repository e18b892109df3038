"""How long VMs and sessions live: collected when dropped, one client per stub, detach,
VMs started from worker threads, and what QEMU says when it starts."""

from __future__ import annotations

import gc
import os
import select
import threading
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import mvnb
import mvnb.vm.qemu as qemu_module

pytestmark = pytest.mark.live

KERNEL_TEXT = 0xFFFF_FFFF_8000_0000
PIDFD_THREAD = os.O_EXCL  # pidfd_open(2): a pidfd for one thread (Linux 6.9)


def children(pid: int) -> dict[str, list[int]]:
    """Live (not zombie) QEMU and GDB processes whose parent is ``pid``."""
    found: dict[str, list[int]] = {"qemu": [], "gdb": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() != str(pid) or fields.get("State", "").startswith("Z"):
            continue
        name = os.path.basename(argv0)
        if name.startswith("qemu-system"):
            found["qemu"].append(int(entry.name))
        elif name == "gdb":
            found["gdb"].append(int(entry.name))
    return found


def exited(pid: int, timeout: float = 0.0) -> bool:
    """True once process ``pid`` has exited (a pidfd wait, no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


class _Cell:
    """Run cells in a real Jupyter kernel and keep what they print."""

    def __init__(self, client: object) -> None:
        self.client = client

    def __call__(self, code: str, timeout: float = 180) -> tuple[dict, str]:
        out: list[str] = []

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=hook)
        return reply["content"], "".join(out)


def test_rerun_cells_in_a_kernel_keep_one_vm_and_del_leaves_none():
    jupyter_client = pytest.importorskip("jupyter_client")
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        cell = _Cell(client)
        reply, out = cell("import gc, os, time, mvnb\n"
                          "guest = mvnb.guests.debian_cloud(progress=False)\n"
                          "print(os.getpid())")
        assert reply["status"] == "ok", out
        kernel = int(out.split()[-1])

        for _ in range(3):
            reply, out = cell("vm = mvnb.Qemu(guest); s = vm.session()")
            assert reply["status"] == "ok", out
        left = children(kernel)
        assert len(left["qemu"]) == 1 and len(left["gdb"]) == 1, left
        reply, out = cell("del vm, s; gc.collect()")
        assert reply["status"] == "ok", out
        assert children(kernel) == {"qemu": [], "gdb": []}

        # Breakpoints, values and stops kept in variables and in IPython's Out cache (the
        # Stop is the cell's result) do not keep a VM alive either.
        rerun = ("vm = mvnb.Qemu(guest); s = vm.session(); bp = s.hbreak('start_kernel')\n"
                 "stop = s.cont(timeout=60); v = s.eval('init_task'); stop")
        for _ in range(2):
            reply, out = cell(rerun)
            assert reply["status"] == "ok", out
        left = children(kernel)
        assert len(left["qemu"]) == 1 and len(left["gdb"]) == 1, left
        reply, out = cell("del vm, s, bp, v, stop; gc.collect()\n"
                          "print(sum(isinstance(o, mvnb.Stop) for o in Out.values()))")
        assert reply["status"] == "ok" and int(out.split()[-1]) == 2, out  # still in Out
        assert children(kernel) == {"qemu": [], "gdb": []}

        # A re-run cell that connects to the same stub fails at once, naming the session
        # that holds it; after that one is closed, the cell works again.
        reconnect = ("t0 = time.monotonic()\n"
                     "try:\n"
                     "    s2 = mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols)\n"
                     "finally:\n"
                     "    print(round(time.monotonic() - t0, 1))")
        reply, out = cell("vm = mvnb.Qemu(guest)")
        assert reply["status"] == "ok", out
        reply, out = cell(reconnect)
        assert reply["status"] == "ok", out
        reply, out = cell(reconnect)
        assert reply["status"] == "error" and reply["ename"] == "Error", out
        assert "already has a debugger" in out and "s.close()" in out
        assert float(out.split()[0]) < 5.0, out  # at once, not after the 60 s timeout
        reply, out = cell("s2.close()\n" + reconnect + "\nprint(s2.connected)")
        assert reply["status"] == "ok" and out.split()[-1] == "True", out
        reply, out = cell("del vm, s2; gc.collect()")
        assert reply["status"] == "ok", out
        assert children(kernel) == {"qemu": [], "gdb": []}
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_dropped_vm_and_session_end_without_the_garbage_collector(guest):
    gc.disable()  # no cycles: reference counting alone must end them
    try:
        vm = mvnb.Qemu(guest)
        s = vm.session()
        bp = s.hbreak("start_kernel")
        stop = s.cont(timeout=60)
        task = s.eval("init_task", depth=1)
        qemu, gdb = vm.process, s._transport.process
        vm_ref, s_ref = weakref.ref(vm), weakref.ref(s)
        del vm, s
        assert vm_ref() is None and s_ref() is None
        assert qemu.poll() is not None and gdb.poll() is not None
        assert stop.breakpoint is bp and task.pid == 0  # read when evaluated: still there
        with pytest.raises(mvnb.SessionClosed, match="is gone"):
            task.se.avg  # noqa: B018  (read later: needs the session)
        with pytest.raises(mvnb.SessionClosed, match="is gone"):
            bp.delete()
    finally:
        gc.enable()


def test_a_second_client_of_a_stub_fails_at_once_and_works_after_close(guest):
    with mvnb.Qemu(guest) as vm:
        first = mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols)
        started = time.monotonic()
        with pytest.raises(mvnb.Error, match="already has a debugger") as info:
            mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols, timeout=60)
        assert time.monotonic() - started < 5.0
        assert "close or detach" in str(info.value).lower()
        first.close()
        with mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols) as second:
            assert second.address == vm.gdb_address and second.capabilities.qemu
            assert isinstance(second.register("rip"), int)


def test_detach_says_so_and_frees_the_stub(guest):
    with mvnb.Qemu(guest) as vm:
        s = vm.session()
        s.hbreak("start_kernel")
        s.cont(timeout=60)
        assert s.address == vm.gdb_address  # public: another client can use it
        s.detach()
        assert s.detached and s.closed and not s.connected and "detached" in repr(s)
        started = time.monotonic()
        with pytest.raises(mvnb.SessionClosed, match="detached") as info:
            s.eval("jiffies")
        assert time.monotonic() - started < 1.0
        assert not isinstance(info.value, mvnb.TargetExited) and "went away" not in str(info.value)
        assert vm.poll() is None
        with mvnb.Session.connect(s.address, symbols=guest.symbols) as again:
            assert again.register("rip") >= KERNEL_TEXT  # the guest ran on after the detach


def test_a_vm_started_in_a_worker_thread_outlives_the_thread(guest):
    def start() -> tuple[mvnb.Qemu, mvnb.Session, int]:
        vm = mvnb.Qemu(guest)
        return vm, vm.session(), threading.get_native_id()

    with ThreadPoolExecutor(1) as pool:
        vm, s, worker = pool.submit(start).result()
        try:
            thread_fd = os.pidfd_open(worker, PIDFD_THREAD)
        except OSError:  # Linux before 6.9: shutdown()'s join below is what we have
            thread_fd = None
    try:
        if thread_fd is not None:  # wait until the kernel has seen the worker exit
            assert select.select([thread_fd], [], [], 30)[0], "the worker thread did not exit"
        with vm:
            assert not exited(vm.process.pid) and not exited(s._transport.process.pid)
            s.hbreak("start_kernel")
            stop = s.cont(timeout=60)  # from the main thread
            assert stop.frame.function == "start_kernel"
            assert vm.session() is s
    finally:
        if thread_fd is not None:
            os.close(thread_fd)


@pytest.mark.qemu("7.2", reason="QEMU 7.2's TCG has no x2APIC and warns about +x2apic; "
                                 "QEMU 10's has it and starts silently")
def test_qemu_warnings_become_python_warnings(guest):
    # QEMU 7.2's TCG has no x2APIC and says so on stderr (shared/facts/observed-2026-11.md).
    with mvnb.Qemu(guest, extra_args=["-cpu", "qemu64,+x2apic"]) as vm:
        with pytest.warns(mvnb.QemuWarning, match=r"TCG doesn't support requested feature: "
                                                   r"CPUID\.01H:ECX\.x2apic"):
            s = vm.session()
        assert s.register("rip") == 0xFFF0  # a warning, not an error


def test_gdb_tcp_warns_once_what_it_exposes(guest, monkeypatch):
    monkeypatch.setattr(qemu_module, "_tcp_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            with mvnb.Qemu(guest, gdb="tcp") as vm:
                assert vm.gdb_address.startswith("127.0.0.1:")
    said = [str(w.message) for w in caught if issubclass(w.category, mvnb.QemuWarning)]
    assert len(said) == 1, said
    assert "any local user" in said[0] and "monitor" in said[0] and "gdb='unix'" in said[0]


def test_a_stub_held_by_another_client_is_named_as_the_cause(guest):
    import socket

    with mvnb.Qemu(guest) as vm:
        with socket.socket(socket.AF_UNIX) as other:  # another client, not a session of ours
            other.connect(vm.gdb_address)
            other.sendall(b"+$?#3f")  # QEMU answers its first client...
            assert other.recv(64)  # ...so this one holds the stub now
            started = time.monotonic()
            with pytest.raises(mvnb.TargetTimeout, match="is another debugger attached"):
                mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols, timeout=60)
            assert time.monotonic() - started < 30  # not the 60 s asked for
