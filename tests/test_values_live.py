"""Values on the real Debian guest: bound to their object, optimized out as GDB says it.

One guest for the module, stopped at the first ``lapic_cal_handler`` hit; the last test
runs it on to another task, so it stays last.
"""

from __future__ import annotations

import pytest

import mvnb

pytestmark = pytest.mark.live

# Linux 6.1 on x86_64: the running task is the per-CPU current_task (arch/x86/include/asm/
# current.h), at its per-CPU offset from the GS base.
CURRENT = "*(struct task_struct **)($gs_base + (unsigned long)&current_task)"


def _optimized_out_argument(s: mvnb.Session) -> tuple[int, str]:
    """A frame and an argument of the backtrace that GDB shows as <optimized out>."""
    for row in s.backtrace().itertuples():
        for name, text in row.args.items():
            if text == "<optimized out>" and "@" not in name:
                return row.level, name
    pytest.fail(f"no optimized-out argument in this backtrace:\n{s.backtrace()}")


def test_optimized_out_is_a_value_not_an_error(calibrating):
    _, s = calibrating
    level, name = _optimized_out_argument(s)  # e.g. max_cpus of native_smp_prepare_cpus
    s.mi(f"-stack-select-frame {level}")
    try:
        v = s.eval(name)
        assert v.available_ is False and str(v) == "<optimized out>"
        assert "optimized out" in v.error_
        with pytest.raises(mvnb.ValueUnavailable):
            int(v)
        pair = s.eval(f"{{1, {name}}}")  # an aggregate with one member optimized out
        assert str(pair) == "{1, <optimized out>}"
        assert [item.available_ for item in pair] == [True, False]
        assert pair[0] == 1 and str(pair[1]) == "<optimized out>"
    finally:
        s.mi("-stack-select-frame 0")


def test_a_value_without_address_is_read_up_front(calibrating):
    _, s = calibrating
    s.console("set $se = init_task.se")  # a copy held by GDB: no address in the guest
    copy = s.eval("$se")  # depth 2 asked; util_est.enqueued is 3 levels down
    bound = s.eval("init_task.se", depth=1)  # in guest memory; avg's members not read
    assert copy.address_ is None and bound.address_ == int(s.eval("&init_task.se"))
    field = "init_task.se.avg.util_est.enqueued"
    before = int(s.eval(field))
    address = int(s.eval(f"&{field}"))
    original = s.read_memory(address, 4)
    s.write_memory(address, (before + 12345).to_bytes(4, "little"))
    s.console("set $se = init_task.se")  # the same text now names another copy
    try:
        assert copy.avg.util_est.enqueued == before  # read completely when evaluated
        assert bound.avg.util_est.enqueued == before + 12345  # read at the object, now
    finally:
        s.write_memory(address, original)


def test_members_read_later_show_the_objects_memory_then(calibrating):
    _, s = calibrating
    address = int(s.eval("&init_task.comm"))
    original = s.read_memory(address, 16)
    snapshot = s.eval("init_task")  # comm read now (depth 2)
    later = s.eval("init_task", depth=0)  # no member read yet
    s.write_memory(address, b"mvnb-bound\0")
    try:
        assert str(snapshot.comm).startswith('"swapper')
        assert str(later.comm).startswith('"mvnb-bound')
        assert later.comm.address_ == address
    finally:
        s.write_memory(address, original)


def test_scalars_and_aggregates_compare(calibrating):
    _, s = calibrating
    jiffies = s.eval("jiffies")
    assert hash(jiffies) == hash(int(jiffies)) and {jiffies: 1}[int(jiffies)] == 1
    task = s.eval("init_task")
    assert task == s.eval("*&init_task", depth=0)  # same type and address, other reading
    assert hash(task) == hash(("struct task_struct", int(s.eval("&init_task"))))
    running = s.eval(f"*{CURRENT}", depth=0)  # pid 1 during the calibration, not init_task
    assert running != task and len({task, running, s.eval("init_task", depth=0)}) == 2
    assert s.eval("&init_task") == int(s.eval("&init_task"))  # a pointer is its address


def test_a_value_is_bound_to_the_object_it_was_read_from(calibrating):
    _, s = calibrating
    pointer = s.eval(CURRENT)  # the running task's pointer, as it is now
    task = s.eval(f"*{CURRENT}", depth=0)  # the task itself, no member read yet
    pid = int(s.eval(f"({CURRENT})->pid"))
    for bp in s.breakpoints():
        if not bp.guard:
            bp.disable()
    there = s.hbreak("kthread")  # the first function of a new kernel thread
    stop = s.cont(timeout=60)
    assert stop.breakpoint is there
    assert int(s.eval(f"({CURRENT})->pid")) != pid  # the expression now names another task
    assert pointer.pid == pid and pointer["pid"] == pid  # read through the old address
    assert task.pid == pid and task.address_ == int(pointer)
    assert pointer.deref() == task and pointer.deref().pid == pid
