"""``Value`` on recorded answers of mvnb's in-GDB ``-mvnb-eval`` (no guest needed)."""

from __future__ import annotations

import pytest

import mvnb
from mvnb.gdb import Value

TASK = {"type": "struct task_struct", "code": "struct", "size": 9600,
        "address": 0xFFFF888003DF9800, "ref": "(*(struct task_struct *) 0xffff888003df9800)"}
JIFFIES = {"type": "unsigned long", "code": "int", "size": 8, "address": 0xFFFFFFFF82A079C0,
           "int": 4294892296}
OPTIMIZED_OUT = {"type": "long", "code": "int", "size": 8, "address": None,
                 "available": False, "error": "value has been optimized out",
                 "str": "<optimized out>"}


def test_scalars_compare_and_hash_as_their_number():
    a = Value(dict(JIFFIES), "jiffies")
    b = Value({**JIFFIES, "type": "u64", "address": None}, "$x")
    assert a == 4294892296 and a == b and hash(a) == hash(4294892296) == hash(b)
    assert {a: "j"}[4294892296] == "j"
    assert a != Value({**JIFFIES, "int": 1}, "jiffies")  # same object, another reading
    assert Value({"type": "double", "code": "float", "size": 8, "float": 0.5}, "d") == 0.5


def test_aggregates_compare_and_hash_by_type_and_address():
    then = Value({**TASK, "fields": [["pid", {"type": "int", "code": "int", "size": 4,
                                             "address": 0xFFFF888003DF9D20, "int": 1}]]}, "t")
    now = Value({**TASK, "fields": [["pid", {"type": "int", "code": "int", "size": 4,
                                            "address": 0xFFFF888003DF9D20, "int": 7}]]}, "u")
    other = Value({**TASK, "address": 0xFFFF888003DFB000}, "v")
    assert then == now and hash(then) == hash(now) == hash((TASK["type"], TASK["address"]))
    assert then != other and len({then, now, other}) == 2
    assert then != 0
    nowhere = Value({**TASK, "address": None, "ref": None}, "$t")
    assert nowhere == nowhere and nowhere != Value({**TASK, "address": None, "ref": None}, "$t")


def test_optimized_out_prints_as_gdb_and_refuses_to_be_a_number():
    v = Value(dict(OPTIMIZED_OUT), "tapic")
    assert v.available_ is False and str(v) == "<optimized out>"
    assert v == v and v != 0
    for convert in (int, bool, float, hex):
        with pytest.raises(mvnb.ValueUnavailable, match="optimized out"):
            convert(v)
    assert isinstance(mvnb.ValueUnavailable("x"), ValueError)


def test_member_refs_name_the_object_not_the_expression():
    pid = {"type": "pid_t", "code": "int", "size": 4, "address": 0xFFFF888003DF9D20, "int": 1}
    se = {"type": "struct sched_entity", "code": "struct", "size": 256,
          "address": 0xFFFF888003DF9880}  # depth reached: its members were not read
    task = Value({**TASK, "fields": [["pid", pid], ["se", se]]}, "*current")
    assert task.se._ref == f"{TASK['ref']}.se"
    assert task.pid._ref == f"{TASK['ref']}.pid"
    with pytest.raises(mvnb.SessionClosed, match="is gone"):  # no session to read more from
        task.se.avg  # noqa: B018
    copy = {**se, "address": None}  # a member of a value held by GDB, not in the guest
    rvalue = Value({**TASK, "address": None, "ref": None, "fields": [["se", copy]]}, "$t")
    with pytest.raises(LookupError, match="cannot be expanded: it has no address"):
        rvalue.se.avg  # noqa: B018
    anonymous = Value({"type": "struct {...}", "code": "struct", "size": 264,
                       "address": 0xFFFF888003DF9800, "ref": None, "fields": [["se", se]]}, "a")
    assert anonymous.se._ref == "(*(struct sched_entity *) 0xffff888003df9880)"
