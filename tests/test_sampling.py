"""Pure parts of the sampler: column sources (mvnb.gdb.columns), the row file and frame
dtypes (mvnb.gdb.rows)."""

from __future__ import annotations

import pandas as pd
import pytest

import mvnb
from mvnb.gdb.columns import Column, Expression, normalize_columns
from mvnb.gdb.rows import RowSink, to_frame
from mvnb.x86 import TIMER_CCR, TIMER_DCR, TIMER_ICR, TSC, TscReader


def test_columns_from_dict_and_list():
    cols = normalize_columns({"loops": "lapic_cal_loops", "ccr": TIMER_CCR,
                              "tsc": TSC, "rax": "$rax", "cr3": mvnb.regs.CR3})
    assert cols == [Column("loops", Expression("lapic_cal_loops")), Column("ccr", TIMER_CCR),
                    Column("tsc", TSC), Column("rax", Expression("$rax")),
                    Column("cr3", Expression("$cr3"))]
    assert [c.in_gdb for c in cols] == [True, False, False, True, True]
    named = normalize_columns(["jiffies", TIMER_ICR, TSC])
    assert [c.name for c in named] == ["jiffies", "TIMER_ICR", "TSC"]
    assert not normalize_columns([TIMER_DCR])[0].in_gdb
    assert all(c.source.cost for c in cols)


@pytest.mark.parametrize("bad", ["jiffies", [], {"hit": "x"}, ["a", "a"], [3.5], [""]])
def test_bad_columns(bad):
    with pytest.raises((TypeError, ValueError)):
        normalize_columns(bad)


def test_register_spec_without_reader_names_the_x86_sources():
    with pytest.raises(TypeError, match=r"mvnb\.x86\.TIMER_CCR"):
        normalize_columns([mvnb.regs.SVR])
    with pytest.raises(TypeError, match=r"mvnb\.x86\.TIMER_CCR"):
        normalize_columns({"ccr": mvnb.regs.TIMER_CCR})  # the spec is not the reader


def test_tsc_reader_identity():
    assert TscReader() == TSC and hash(TscReader()) == hash(TSC)
    assert TscReader(rdtsc=0x10) != TSC


def test_row_sink_appends_csv(tmp_path):
    path = tmp_path / "rows.csv"
    sink = RowSink(path, ["hit", "host_ns", "x"])
    sink.write([[0, 10, -1], [1, 11, None]])
    sink.write([[2, 12, 5]])
    sink.close()
    frame = pd.read_csv(path)
    assert frame.columns.tolist() == ["hit", "host_ns", "x"]
    assert frame["hit"].tolist() == [0, 1, 2] and sink.rows == 3
    again = RowSink(path, ["hit", "host_ns", "x"])  # appends, no second header
    again.write([[3, 13, 7]])
    again.close()
    assert pd.read_csv(path)["x"].tolist()[-1] == 7


def test_row_sink_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError):
        RowSink(tmp_path / "rows.xlsx", ["a"])


def test_frame_dtypes():
    frame = to_frame([[0, 1, 2**64 - 1, None, "text"], [1, 2, 2**63, 4, "more"]],
                   ["hit", "host_ns", "tsc", "maybe", "s"])
    assert frame["hit"].dtype == "int64" and frame["tsc"].dtype == "uint64"
    assert str(frame["maybe"].dtype) == "Int64" and frame["s"].dtype == object
    assert to_frame([], ["hit", "host_ns"]).empty
