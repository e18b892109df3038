"""Sessions on the real Debian guest under real QEMU, driven by real GDB (issue 2)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import threading
from pathlib import Path

import pandas as pd
import pytest

import mvnb

pytestmark = pytest.mark.live


def test_stops_at_setup_boot_apic_clock_with_smp_prepare_in_backtrace(boot):
    vm, s, stop = boot("setup_boot_APIC_clock")
    try:
        assert stop.reason == "breakpoint-hit"
        assert stop.frame.function == "setup_boot_APIC_clock"
        assert stop.breakpoint is not None and stop.breakpoint.hits == 1
        bt = s.backtrace()
        assert list(bt.columns) == ["level", "function", "file", "line", "address", "args"]
        assert bt.loc[0, "function"] == "setup_boot_APIC_clock"
        assert "native_smp_prepare_cpus" in set(bt["function"])
        assert bt.loc[0, "address"] == stop.frame.address == s.register("rip")
    finally:
        vm.close()


def test_values(calibrating):
    _, s = calibrating
    assert s.eval("x2apic_mode") == 0
    loops = s.eval("lapic_cal_loops")
    assert int(loops) == -1 and loops.type_ == "int" and str(loops) == "-1"
    jiffies = s.eval("jiffies")
    assert hex(jiffies) == hex(int(jiffies))  # __index__
    assert jiffies.address_ == int(s.eval("&jiffies"))
    task = s.eval("init_task")
    assert task.code_ == "struct" and "comm" in task.members_()
    assert str(task.comm).startswith('"swapper')
    assert task.pid == 0 and task["pid"] == 0
    assert "<table>" in task._repr_html_()
    assert s.eval("&init_task").deref().pid == 0
    assert s.eval("init_task.comm")[0] == ord("s")
    with pytest.raises(AttributeError, match="no member"):
        task.no_such_member  # noqa: B018


def test_eval_many_and_bad_expressions(calibrating):
    _, s = calibrating
    loops, jiffies, rip = s.eval_many(["lapic_cal_loops", "jiffies", "$rip"])
    assert loops == -1 and jiffies == int(s.eval("jiffies")) and rip == s.register("rip")
    assert s.eval_many(["jiffies"] * 500) == [jiffies] * 500
    with pytest.raises(mvnb.GdbError, match="No symbol \"no_such_symbol\"") as info:
        s.eval("no_such_symbol + 1")
    assert "no_such_symbol" in info.value.command
    with pytest.raises(mvnb.GdbError, match="no_such_symbol"):
        s.eval_many(["jiffies", "no_such_symbol"])
    assert s.eval("jiffies") == jiffies  # still usable


def test_memory_and_registers(calibrating):
    _, s = calibrating
    regs = s.registers()
    assert isinstance(regs, pd.Series)
    for name in ("rip", "rsp", "eflags", "cs", "cr0", "cr3", "cr4"):
        assert name in regs.index
    assert not any(name.startswith(("xmm", "ymm", "zmm")) for name in regs.index)
    assert regs["rip"] == s.register("rip")
    assert regs["cr0"] & 1  # protected mode
    address = int(s.eval("&init_task.comm"))
    original = s.read_memory(address, 16)
    assert original.startswith(b"swapper")
    s.write_memory(address, b"mvnb-was-here\0")
    assert str(s.eval("init_task.comm")).startswith('"mvnb-was-here')
    s.write_memory(address, original)
    assert s.read_memory(address, 16) == original
    assert s.read_many([(address, 7), (int(s.eval("&jiffies")), 8)])[0] == b"swapper"
    with pytest.raises(mvnb.FaultError) as info:
        s.read_memory(0x10, 8)
    assert info.value.address == 0x10


def test_set_variables_and_registers(calibrating):
    _, s = calibrating
    rax = s.register("rax")
    s.set("$rax", 0x1234)
    assert s.register("rax") == 0x1234
    s.set("$rax", rax)
    assert s.register("rax") == rax
    comm0 = int(s.eval("init_task.comm[0]"))
    s.set("init_task.comm[0]", ord("S"))
    assert str(s.eval("init_task.comm")).startswith('"Swapper')
    s.set("init_task.comm[0]", comm0)
    assert int(s.eval("init_task.comm[0]")) == comm0


def test_monitor_and_console(calibrating):
    _, s = calibrating
    text = s.monitor("info lapic")
    lvtt = next(line for line in text.splitlines() if line.startswith("LVTT\t"))
    assert "0x000300ec" in lvtt and "periodic" in lvtt
    assert "Timer" in text and "divide by 16" in text
    assert "rip" in s.console("info registers rip")
    assert s.capabilities.qemu and s.capabilities.monitor


def test_magics(calibrating):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    _, s = calibrating
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mvnb")
    mvnb.use(s)
    with capture_output() as out:
        shell.run_line_magic("gdb", "print lapic_cal_loops")
        shell.run_cell_magic("gdb", "", "print 1 + 2\n# a comment\nprint/x 255")
    assert "= -1" in out.stdout and "= 3" in out.stdout and "= 0xff" in out.stdout


def test_run_control(calibrating):
    _, s = calibrating
    stop = s.finish(timeout=30)
    assert stop.reason == "function-finished"
    assert stop.frame.function in ("calibrate_APIC_clock", "setup_boot_APIC_clock")
    start = s.register("rip")
    stop = s.stepi()
    assert stop.reason == "end-stepping-range" and s.register("rip") != start
    assert s.nexti(2).reason == "end-stepping-range"
    stop = s.cont(timeout=30)  # the breakpoint from the fixture
    assert stop.reason == "breakpoint-hit" and stop.frame.function == "lapic_cal_handler"
    assert s.eval("lapic_cal_loops") == 0
    assert stop.breakpoint.hits == 2
    s.finish(timeout=30)
    stop = s.until("lapic_cal_handler", timeout=30)
    assert stop.frame.function == "lapic_cal_handler" and stop.reason == "location-reached"
    assert s.eval("lapic_cal_loops") == 1


def test_until_says_when_the_frame_returned_first(calibrating):
    _, s = calibrating
    if s.frame().function != "lapic_cal_handler":
        s.until("lapic_cal_handler", timeout=30)
    caller = s.backtrace(2).loc[1, "address"]
    # lapic_cal_handler's own start is not reached again in this frame: it returns first.
    stop = s.until("lapic_cal_handler", timeout=30)
    assert stop.raw["reason"] == "location-reached"  # what GDB's MI says
    assert stop.reason == "function-finished"  # what happened
    assert stop.frame.address == caller and stop.frame.function != "lapic_cal_handler"
    assert s.until("lapic_cal_handler", timeout=30).reason == "location-reached"  # as before


def test_watchpoint_triggers(calibrating):
    _, s = calibrating
    before = int(s.eval("lapic_cal_loops"))
    wp = s.watch("lapic_cal_loops")
    stop = s.cont(timeout=30)
    assert stop.reason == "watchpoint-trigger" and stop.breakpoint is wp
    assert int(s.eval("lapic_cal_loops")) == before + 1
    assert stop.raw["value"]["new"] == str(before + 1)
    wp.delete()
    assert wp.deleted and wp not in s.breakpoints()


def test_timeout_interrupts_and_keeps_the_session(calibrating):
    _, s = calibrating
    for bp in s.breakpoints():
        bp.disable()
    never = s.hbreak("__x64_sys_reboot")
    with pytest.raises(mvnb.TargetTimeout) as info:
        s.cont(timeout=1.5)
    assert isinstance(info.value, TimeoutError)
    assert info.value.stop is not None and info.value.stop.signal == "SIGINT"
    assert not s.running
    assert isinstance(int(s.eval("jiffies")), int)  # the next command works
    never.delete()


def test_keyboard_interrupt_stops_the_target_and_keeps_everything(calibrating):
    vm, s = calibrating
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            s.cont(timeout=30)
    finally:
        timer.cancel()
    assert not s.running
    assert vm.poll() is None  # QEMU did not get the SIGINT: its own process group
    assert s._transport.alive
    assert isinstance(s.register("rip"), int)


def test_stub_listens_on_a_private_unix_socket(calibrating):
    vm, _ = calibrating
    path = Path(vm.gdb_address)
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert _tcp_listeners(vm.process.pid) == []


def _tcp_listeners(pid: int) -> list[str]:
    """Local addresses of TCP sockets the process listens on (from /proc, no tools)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1])
    return found


def test_tcp_stub_binds_loopback_only(guest):
    with mvnb.Qemu(guest, gdb="tcp") as vm:
        host, port = vm.gdb_address.rsplit(":", 1)
        assert host == "127.0.0.1"
        listeners = _tcp_listeners(vm.process.pid)
        assert listeners == [f"0100007F:{int(port):04X}"]
        s = mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols)
        with s:
            assert s.capabilities.qemu
            assert s.register("rip") == 0xFFF0  # at reset


def test_connect_to_an_existing_stub_by_socket_path(guest):
    with mvnb.Qemu(guest) as vm:
        with mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols) as s:
            assert s.address == vm.gdb_address
            assert s.register("rip") == 0xFFF0
            bp = s.hbreak("start_kernel")
            stop = s.cont(timeout=60)
            assert stop.breakpoint is bp and stop.frame.function == "start_kernel"


def test_symbol_offset_relocates(guest):
    with mvnb.Qemu(guest) as vm:
        with mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols) as s:
            at = int(s.eval("&jiffies"))
        with mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols,
                                  symbol_offset=0x200000) as s:
            assert int(s.eval("&jiffies")) == at + 0x200000


def test_wait_serial(guest):
    with mvnb.Qemu(guest) as vm:
        with pytest.raises(mvnb.TargetTimeout, match="did not show"):
            vm.wait_serial("Linux version", timeout=0.5)  # paused at reset: nothing printed
        s = vm.session()
        s.hbreak("start_kernel")
        s.cont(timeout=60)
        s.break_at("__x64_sys_reboot")  # never hit: the guest runs on while we wait
        stops = []

        def run() -> None:
            try:
                stops.append(s.cont(timeout=60))
            except mvnb.TargetStuck as stuck:  # fell into the TSC trap before the interrupt
                stops.append(stuck.stop)

        runner = threading.Thread(target=run)
        runner.start()
        try:
            match = vm.wait_serial(r"Linux version (\S+)", timeout=30)
            assert match.group(1) in guest.name
        finally:
            s.interrupt()  # from this thread, while the runner waits in cont()
            runner.join(30)
        assert stops and (stops[0].signal == "SIGINT" or stops[0].breakpoint.guard)


def test_detach_leaves_the_stub_for_another_client(guest):
    with mvnb.Qemu(guest) as vm:
        first = mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols)
        first.hbreak("start_kernel")
        first.cont(timeout=60)
        first.detach()
        first.close()
        with mvnb.Session.connect(vm.gdb_address, symbols=guest.symbols) as second:
            assert second.register("rip") >= 0xFFFF_8000_0000_0000  # the kernel ran on
            assert vm.poll() is None


def test_qemu_killed_mid_session_raises_target_exited_with_serial_tail(boot):
    vm, s, _ = boot("lapic_cal_handler")
    vm.process.kill()
    with pytest.raises(mvnb.TargetExited) as info:
        s.cont(timeout=30)
    assert "Linux version" in vm.serial()
    tail = info.value.serial_tail
    assert tail.strip() and vm.serial().rstrip().endswith(tail.rstrip())
    assert tail.splitlines()[-1] in str(info.value)
    assert info.value.status == -signal.SIGKILL
    with pytest.raises(mvnb.TargetExited):
        s.eval("jiffies")
    vm.close()


def test_bad_kernel_fails_early_with_qemu_stderr(tmp_path):
    bogus = tmp_path / "kernel"
    bogus.write_bytes(b"not a kernel at all" * 100)
    guest = mvnb.Guest(kernel=bogus)
    with mvnb.Qemu(guest) as vm:
        with pytest.raises(mvnb.TargetExited) as info:
            vm.session()
        assert info.value.status not in (None, 0)
        assert "qemu" in str(info.value).lower()


def test_two_vcpus(guest):
    with mvnb.Qemu(guest, cpus=2) as vm:
        s = vm.session()
        cpus = s.cpus()
        assert list(cpus["cpu"]) == [0, 1]
        assert cpus["current"].sum() == 1
        s.select_cpu(1)
        assert bool(s.cpus().loc[1, "current"])
        s.select_cpu(0)
        with pytest.raises(ValueError, match="no vCPU 2"):
            s.select_cpu(2)


def test_vm_session_is_shared(calibrating):
    vm, s = calibrating
    assert vm.session() is s


def test_gdbserver_stub_without_qemu_monitor(tmp_path):
    gdbserver = pytest.importorskip("shutil").which("gdbserver")
    if gdbserver is None:
        pytest.skip("gdbserver is not installed (apt-get install gdbserver)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    import subprocess

    server = subprocess.Popen([gdbserver, "--once", f"127.0.0.1:{port}", "/bin/sleep", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        for line in iter(server.stdout.readline, b""):  # wait for it to listen
            if b"Listening on port" in line:
                break
        with mvnb.Session.connect(f"127.0.0.1:{port}") as s:
            assert not s.capabilities.qemu
            with pytest.raises(mvnb.Unsupported, match="no QEMU monitor"):
                s.monitor("info lapic")
            assert s.register("rip") > 0
            with pytest.raises(mvnb.TargetTimeout):
                s.cont(timeout=1.0)
            assert not s.running
            s.kill()
    finally:
        server.kill()
        server.wait(10)
