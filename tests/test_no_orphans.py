"""QEMU and GDB die with their owner: a killed Python process, a restarted notebook kernel,
whichever thread started them."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.live

OPEN_VM = textwrap.dedent("""
    import sys, mvnb
    vm = mvnb.Qemu(mvnb.guests.debian_cloud(progress=False))
    s = vm.session()
    print(vm.process.pid, s._transport.process.pid, flush=True)
""")

# The VM and its session started by a worker thread that has exited before the kill; the
# main thread then uses them (a parent-death signal tied to the worker would have hit them
# when the kernel saw the worker exit, which the thread pidfd waits for).
OPEN_VM_IN_A_WORKER = textwrap.dedent("""
    import os, select, sys, threading, mvnb
    from concurrent.futures import ThreadPoolExecutor
    def start():
        vm = mvnb.Qemu(mvnb.guests.debian_cloud(progress=False))
        return vm, vm.session(), threading.get_native_id()
    with ThreadPoolExecutor(1) as pool:
        vm, s, worker = pool.submit(start).result()
        try:
            gone = os.pidfd_open(worker, os.O_EXCL)  # PIDFD_THREAD, Linux 6.9
        except OSError:
            gone = None
    if gone is not None:
        assert select.select([gone], [], [], 30)[0]
    s.hbreak("start_kernel")
    s.cont(timeout=60)
    print(vm.process.pid, s._transport.process.pid, flush=True)
""")


def _wait_gone(pid: int, timeout: float = 20.0) -> bool:
    """True once process ``pid`` has exited (waits on a pidfd, no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killed_owner_takes_qemu_and_gdb_with_it():
    child = subprocess.Popen([sys.executable, "-c", OPEN_VM + "sys.stdin.read()\n"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        qemu_pid, gdb_pid = map(int, child.stdout.readline().split())
        assert _alive(qemu_pid) and _alive(gdb_pid)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert _wait_gone(qemu_pid) and _wait_gone(gdb_pid)
    finally:
        child.kill()
        child.wait()


def test_killed_owner_takes_a_vm_started_by_a_finished_worker_thread_with_it():
    child = subprocess.Popen([sys.executable, "-c", OPEN_VM_IN_A_WORKER + "sys.stdin.read()\n"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        qemu_pid, gdb_pid = map(int, child.stdout.readline().split())
        assert qemu_pid and gdb_pid  # printed after they served the main thread
        assert not _wait_gone(qemu_pid, 0) and not _wait_gone(gdb_pid, 0)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert _wait_gone(qemu_pid) and _wait_gone(gdb_pid)
    finally:
        child.kill()
        child.wait()


def test_a_spawned_child_keeps_its_pid_and_its_own_session():
    import mvnb._proc

    # The program itself says its pid and parent once the wrappers have exec'd into it.
    process = mvnb._proc.spawn(["/bin/sh", "-c", "echo $$ $PPID; exec sleep 60"],
                               stdout=subprocess.PIPE)
    try:
        pid, parent = map(int, process.stdout.readline().split())
        assert pid == process.pid and parent == os.getpid()  # our child, pid kept
        assert os.getsid(process.pid) == process.pid  # its own session: no SIGINT from us
        assert mvnb._proc.spawner_thread().is_alive()
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def test_normal_exit_without_close_leaves_nothing():
    out = subprocess.run([sys.executable, "-c", OPEN_VM], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    qemu_pid, gdb_pid = map(int, out.split())
    assert _wait_gone(qemu_pid) and _wait_gone(gdb_pid)


def test_notebook_kernel_restart_leaves_nothing():
    jupyter_client = pytest.importorskip("jupyter_client")
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        collect = _Collector()
        reply = client.execute_interactive(OPEN_VM, timeout=120, output_hook=collect)
        assert reply["content"]["status"] == "ok", reply["content"]
        qemu_pid, gdb_pid = map(int, collect.text.split())
        assert _alive(qemu_pid) and _alive(gdb_pid)
        manager.restart_kernel(now=True)
        assert _wait_gone(qemu_pid) and _wait_gone(gdb_pid)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


class _Collector:
    def __init__(self) -> None:
        self.text = ""

    def __call__(self, msg: dict) -> None:
        if msg["msg_type"] == "stream":
            self.text += msg["content"]["text"]
