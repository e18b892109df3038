"""Pure helpers of mvnb.sampling: column sources, the row file, frame dtypes."""

from __future__ import annotations

import pandas as pd
import pytest

import mvnb.regs
from mvnb._sample_run import Column, RowSink, _frame, normalize_columns
from mvnb.timing.tsc import TSC, TscReader


def test_columns_from_dict_and_list():
    cols = normalize_columns({"loops": "lapic_cal_loops", "ccr": mvnb.regs.TIMER_CCR,
                              "tsc": TSC, "rax": "$rax"})
    assert cols == [Column("loops", "expr", "lapic_cal_loops"),
                    Column("ccr", "lapic", "TIMER_CCR"), Column("tsc", "tsc", TSC),
                    Column("rax", "expr", "$rax")]
    named = normalize_columns(["jiffies", mvnb.regs.TIMER_ICR, TSC])
    assert [c.name for c in named] == ["jiffies", "TIMER_ICR", "TSC"]
    assert normalize_columns([mvnb.regs.TIMER_DCR])[0].kind == "lapic"


@pytest.mark.parametrize("bad", ["jiffies", [], {"hit": "x"}, ["a", "a"], [3.5], [""]])
def test_bad_columns(bad):
    with pytest.raises((TypeError, ValueError)):
        normalize_columns(bad)


def test_register_without_reader():
    with pytest.raises(TypeError, match="no live reader"):
        normalize_columns([mvnb.regs.SVR])


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
    frame = _frame([[0, 1, 2**64 - 1, None, "text"], [1, 2, 2**63, 4, "more"]],
                   ["hit", "host_ns", "tsc", "maybe", "s"])
    assert frame["hit"].dtype == "int64" and frame["tsc"].dtype == "uint64"
    assert str(frame["maybe"].dtype) == "Int64" and frame["s"].dtype == object
    assert _frame([], ["hit", "host_ns"]).empty
