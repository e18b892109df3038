"""Pure parts of the sampler: column sources (mvnb.gdb.columns), the row file and frame
dtypes (mvnb.gdb.rows)."""

from __future__ import annotations

import pandas as pd
import pytest

import mvnb
from mvnb.gdb.columns import Column, Expression, normalize_columns
from mvnb.gdb.rows import Rows, RowSink, to_frame
from mvnb.gdb.sample_control import check_args
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


def test_row_sink_writes_csv_as_rows_arrive(tmp_path):
    path = tmp_path / "rows.csv"
    sink = RowSink(path, ["hit", "host_ns", "x"])
    assert not path.exists()  # nothing is written before the first rows
    sink.write([[0, 10, -1], [1, 11, None]])
    sink.write([[2, 12, 5]])
    sink.close()
    frame = pd.read_csv(path)
    assert frame.columns.tolist() == ["hit", "host_ns", "x"]
    assert frame["hit"].tolist() == [0, 1, 2] and sink.rows == 3


def test_row_sink_refuses_a_file_with_data_unless_append(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("hit,host_ns,x\n0,10,-1\n4,14,2\n")
    with pytest.raises(mvnb.Error, match="append=True"):
        RowSink(path, ["hit", "host_ns", "x"])
    sink = RowSink(path, ["hit", "host_ns", "x"], append=True)
    assert sink.first_hit == 5  # the file's last hit + 1
    rows = Rows(["x"], None, path, False, None, "t", append=True)
    rows.add([[20, 7], [21, 8]])
    rows.close()
    assert pd.read_csv(path)["hit"].tolist() == [0, 4, 5, 6]  # one header, hits go on
    assert rows.frame()["hit"].tolist() == [5, 6]


def test_row_sink_append_needs_the_same_columns(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("hit,host_ns,y\n0,10,-1\n")
    with pytest.raises(mvnb.Error, match=r"has the columns \['hit', 'host_ns', 'y'\]"):
        RowSink(path, ["hit", "host_ns", "x"], append=True)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert RowSink(empty, ["hit", "host_ns", "x"]).first_hit == 0  # empty: no append needed


def test_row_sink_checks_the_folder_and_parquet_append(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        RowSink(tmp_path / "no" / "rows.csv", ["hit"])
    with pytest.raises(ValueError, match="folder"):
        RowSink(tmp_path, ["hit"])
    pq = tmp_path / "rows.parquet"
    pq.write_bytes(b"PAR1")
    with pytest.raises(mvnb.Error, match="Parquet file cannot be appended"):
        RowSink(pq, ["hit"], append=True)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"location": ""}, ValueError), ({"count": 0}, ValueError), ({"count": 2.5}, ValueError),
    ({"count": True}, ValueError), ({"duration": -1}, ValueError),
    ({"timeout": float("nan")}, ValueError), ({"hardware": "yes"}, TypeError),
    ({"include_current": 1}, TypeError), ({"after": "lapic_cal_t1"}, TypeError),
    ({"after": [""]}, TypeError), ({"observer": "yes"}, TypeError), ({"on_rows": 3}, TypeError),
])
def test_sample_arguments_are_checked(kwargs, error):
    with pytest.raises(error):
        check_args(**kwargs)


def test_sample_argument_check_passes_after_through():
    assert check_args(location="f", count=3, after=("a", "b")) == ["a", "b"]
    assert check_args() == []


def test_row_sink_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError):
        RowSink(tmp_path / "rows.xlsx", ["a"])


def test_frame_dtypes():
    frame = to_frame([[0, 1, 2**64 - 1, None, "text"], [1, 2, 2**63, 4, "more"]],
                   ["hit", "host_ns", "tsc", "maybe", "s"])
    assert frame["hit"].dtype == "int64" and frame["tsc"].dtype == "uint64"
    assert str(frame["maybe"].dtype) == "Int64" and frame["s"].dtype == object
    assert to_frame([], ["hit", "host_ns"]).empty
