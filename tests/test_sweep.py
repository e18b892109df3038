"""mvnb.sweep without a guest: grids, seeds, guest specs, pickling by value, result files,
and a cluster that offers no ``vm`` slot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import mvnb
from mvnb.sweep import SweepError
from mvnb.sweep.grid import GuestSpec, expand, guest_spec
from mvnb.sweep.pickling import by_value, dumps
from mvnb.sweep.results import ResultFile, rows_of

OFFSET = 1000  # a module global the experiment below reads: it must travel with it


def doubled(params):
    """An experiment defined in a test module, which a worker cannot import."""
    return {"twice": params["x"] * 2 + OFFSET, "helper": _helper(params["x"])}


def _helper(x):
    return f"x={x}"


def test_grid_is_every_combination_repeats_interleaved():
    runs, seed = expand({"icount": [None, 0], "machine": ["microvm", "pc"]}, repeat=2, seed=7)
    assert [r.run for r in runs] == list(range(8))
    assert [(r.params["icount"], r.params["machine"]) for r in runs[:4]] == [
        (None, "microvm"), (None, "pc"), (0, "microvm"), (0, "pc")]
    assert [r.params["icount"] for r in runs[4:]] == [r.params["icount"] for r in runs[:4]]
    assert [r.repeat for r in runs] == [0] * 4 + [1] * 4
    assert [r.reproducible for r in runs[:4]] == [False, False, True, True]
    assert seed == 7
    again, _ = expand({"icount": [None, 0], "machine": ["microvm", "pc"]}, repeat=2, seed=7)
    assert [r.seed for r in again] == [r.seed for r in runs]
    assert len({r.seed for r in runs}) == 8
    other, drawn = expand({"icount": [None, 0], "machine": ["microvm", "pc"]}, repeat=2)
    assert [r.seed for r in other] != [r.seed for r in runs]
    replay, _ = expand({"icount": [None, 0], "machine": ["microvm", "pc"]}, repeat=2,
                       seed=drawn)
    assert [r.seed for r in replay] == [r.seed for r in other]


def test_grid_from_a_dataframe_and_single_values():
    frame = pd.DataFrame({"icount": [0, None], "host_load": [2, 0]})
    runs, _ = expand(frame)
    assert [r.params["icount"] for r in runs] == [0, None]
    assert runs[1].reproducible is False
    runs, _ = expand({"machine": "microvm", "icount": [0, 1]})
    assert [r.params["machine"] for r in runs] == ["microvm", "microvm"]


@pytest.mark.parametrize("grid, message", [
    ({"outcome": [1]}, "names the sweep writes"),
    ({"x": []}, "is empty"),
    ([1, 2], "dict of lists or a DataFrame"),
])
def test_bad_grids_say_what_to_do(grid, message):
    with pytest.raises(SweepError, match=message):
        expand(grid)


def test_repeat_must_be_positive():
    with pytest.raises(SweepError, match="at least 1"):
        expand({"x": [1]}, repeat=0)


@pytest.mark.live  # needs the cached guest (no boot)
def test_guest_specs(guest):
    spec = guest_spec(guest)
    assert (spec.flavour, spec.abi) == ("cloud-amd64", guest.version)
    assert spec.resolve() == guest
    assert guest_spec(None).name == guest.name  # the newest cached build, pinned
    assert guest_spec(f"{guest.version}-cloud-amd64").abi == guest.version
    own = mvnb.Guest(kernel=guest.kernel, cmdline="console=ttyS0 quiet", name="mine")
    files = guest_spec(own)
    assert files.kernel == str(guest.kernel) and files.flavour is None
    assert files.resolve().cmdline == "console=ttyS0 quiet"
    with pytest.raises(SweepError, match=r"6\.1\.0-57"):
        guest_spec("latest")


def test_an_experiment_of_a_test_module_travels_by_value(tmp_path):
    """A fresh interpreter that cannot import this module runs the unpickled experiment."""
    assert by_value(__name__) and not by_value("mvnb.sweep.experiments")
    blob = tmp_path / "experiment.pickle"
    blob.write_bytes(dumps(doubled))
    code = ("import pickle, sys; f = pickle.load(open(sys.argv[1], 'rb')); "
            "print(f({'x': 21}))")
    here = str(Path(__file__).parent)
    env_path = [p for p in sys.path if p and Path(p).resolve() != Path(here).resolve()]
    out = subprocess.run([sys.executable, "-c", code, str(blob)], capture_output=True,
                         text=True, timeout=60, env={"PYTHONPATH": ":".join(env_path)},
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'twice': 1042, 'helper': 'x=21'}"
    import cloudpickle

    assert __name__ not in cloudpickle.list_registry_pickle_by_value()  # unregistered after


def _rows(run_id, **experiment):
    runs, _ = expand({"x": [run_id]}, seed=1)
    frame = pd.DataFrame([experiment]) if experiment else None
    return rows_of(runs[0], {"outcome": "ok", "frame": frame, "duration_s": 1.0}, 1)


def test_result_rows_keep_run_columns_and_rename_clashes():
    rows = _rows(3, value=5, outcome="mine")
    assert rows.loc[0, "outcome"] == "ok" and rows.loc[0, "experiment_outcome"] == "mine"
    assert rows.loc[0, "x"] == 3 and rows.loc[0, "value"] == 5
    assert isinstance(rows.loc[0, "guest"], str)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_result_file_appends_keeps_and_rewrites_on_new_columns(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"sweep{suffix}"
    out = ResultFile(path)
    out.append(_rows(1, a=1))
    out.append(_rows(2, a=2))
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    assert read(path)["a"].tolist() == [1, 2]
    out.append(_rows(3, a=3, b="new"))
    frame = read(path)
    assert frame["x"].tolist() == [1, 2, 3] and frame["b"].iloc[2] == "new"
    out.write_attrs({"sweep": "abc", "seed": 1})
    assert json.loads((tmp_path / "sweep.attrs.json").read_text())["sweep"] == "abc"
    later = ResultFile(path)  # a second sweep to the same file adds to it
    later.append(_rows(4, a=4, b="x"))
    assert read(path)["x"].tolist() == [1, 2, 3, 4]


def test_result_file_kind_is_checked(tmp_path):
    with pytest.raises(SweepError, match=r"\.csv or \.parquet"):
        ResultFile(tmp_path / "out.xlsx")


def test_a_cluster_without_vm_slots_is_refused_before_any_run():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        with pytest.raises(SweepError, match="--resources vm=1"):
            mvnb.sweep.run(doubled, {"x": [1], "guest": ["6.1.0-57"]}, client=client,
                           progress=False)


def test_guest_spec_of_files_must_exist_where_it_runs(tmp_path):
    spec = GuestSpec(name="gone", kernel=str(tmp_path / "bzImage"))
    with pytest.raises(mvnb.GuestError, match="does not exist"):
        spec.resolve()


def test_wilson_interval_matches_the_formula_and_stays_in_bounds():
    from mvnb.sweep import wilson

    low, high = wilson(0, 8)
    assert low == 0.0 and 0.30 < high < 0.33  # 0 of 8: up to about a third
    low, high = wilson(8, 8)
    assert 0.67 < low < 0.70 and high == 1.0
    low, high = wilson(5, 10)
    assert abs(low - 0.2366) < 1e-3 and abs(high - 0.7634) < 1e-3


def test_rates_by_condition_count_each_run_once():
    from mvnb.sweep import rates

    frame = pd.DataFrame({
        "run": [0, 0, 1, 2, 3, 4],
        "icount": [None, None, None, 0, 0, None],
        "outcome": ["ok", "ok", "ok", "ok", "ok", "timeout"],
        "status": ["stuck", "stuck", "reached", "reached", "reached", None],
    })
    table = rates(frame, by=["icount"], column="status", value="stuck")
    free = table[table["icount"].isna()].iloc[0]
    assert (free["runs"], free["count"], free["rate"]) == (2, 1, 0.5)
    assert free["status=reached"] == 1 and free["status=stuck"] == 1
    det = table[table["icount"] == 0].iloc[0]
    assert (det["runs"], det["count"], det["low"]) == (2, 0, 0.0)


def test_plot_rates_draws_each_condition_with_its_interval_and_count():
    from mvnb.sweep import plot_rates, rates

    frame = pd.DataFrame({
        "run": range(11),
        "qemu": ["7.2"] * 8 + ["10.0"] * 3,
        "icount": [None] * 5 + [0.0] * 3 + [None] * 3,
        "outcome": ["ok"] * 11,
        "status": ["stuck"] * 4 + ["reached"] * 4 + ["stuck", "reached", "reached"],
    })
    table = rates(frame, by=["qemu", "icount"], column="status", value="stuck")
    fig = plot_rates(table)
    (ax,) = fig.axes
    at = {round(y): t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels(),
                                                 strict=True)}
    top = len(table) - 1  # the table's first row is drawn on top
    expected = [f"qemu {q}, icount {'none' if pd.isna(i) else int(i)}"
                for q, i in zip(table["qemu"], table["icount"], strict=True)]
    assert [at[top - k] for k in range(len(table))] == expected
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        f"{c}/{n}" for c, n in zip(table["count"], table["runs"], strict=True))
    (bars,) = ax.containers[0].lines[2]  # the errorbar's horizontal segments
    for segment, (k, row) in zip(bars.get_segments(), table.iterrows(), strict=True):
        (x0, y0), (x1, _) = segment
        assert round(y0) == top - k
        assert (x0, x1) == pytest.approx((row["low"], row["high"]))
    assert "status = stuck" in ax.get_title() and "Wilson" in ax.get_title()
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_plot_rates_refuses_a_table_that_is_not_rates():
    from mvnb.sweep import plot_rates

    with pytest.raises(ValueError, match=r"mvnb\.sweep\.rates\(\)"):
        plot_rates(pd.DataFrame({"status": ["stuck"]}))


def test_progress_counts_finished_failed_running():
    from mvnb.sweep.progress import SweepProgress

    bar = SweepProgress(3, dashboard=None, enabled=True)
    bar.set_running(2)
    bar.done(True)
    bar.done(False)
    bar.set_running(1)
    assert bar.bar.n == 2
    assert bar.bar.postfix == "finished 2, failed 1, running 1"
    bar.close()


def test_the_local_cluster_is_sized_for_vms_and_listens_on_loopback_only():
    import psutil
    from distributed import Client

    from mvnb.sweep.cluster import cluster_workers, dashboard_link

    with mvnb.sweep.local_cluster(1) as cluster, Client(cluster, set_as_default=False) as c:
        assert c.scheduler.address.startswith("tcp://127.0.0.1:")
        (info,) = cluster_workers(c).values()
        assert info["nthreads"] == 1 and info["resources"] == {"vm": 1}
        assert dashboard_link(c).startswith("http://127.0.0.1:")
        me = psutil.Process()
        processes = [me, *me.children(recursive=True)]
        listening = [s.laddr for p in processes for s in p.net_connections("inet")
                     if s.status == psutil.CONN_LISTEN]
        assert len(listening) >= 3  # scheduler, its HTTP server, the worker (and nanny)
        assert {a.ip for a in listening} == {"127.0.0.1"}, listening


def draws(params):
    """Randomness an experiment adds: seeded per run by the sweep."""
    import random

    import numpy as np

    return {"r": random.random(), "n": int(np.random.randint(0, 2**31)),
            "seen_seed": params["seed"]}


@pytest.fixture(scope="module")
def dummy(tmp_path_factory):
    """A guest made of a file that is no kernel: these sweeps boot nothing."""
    kernel = tmp_path_factory.mktemp("dummy") / "kernel"
    kernel.write_bytes(b"no kernel")
    return mvnb.Guest(kernel=kernel, name="dummy")


@pytest.fixture(scope="module")
def threads_client():
    """A one-worker cluster in this process with a ``vm`` slot (the runs still get their
    own processes)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      resources={"vm": 1}, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


def test_a_seed_repeats_the_randomness_of_each_run(threads_client, tmp_path, dummy):
    grid = {"x": [1, 2], "guest": [dummy]}
    first = mvnb.sweep.run(draws, grid, client=threads_client, seed=5, progress=False,
                           path=tmp_path / "draws.csv")
    again = mvnb.sweep.run(draws, grid, client=threads_client, seed=5, progress=False)
    assert (first["outcome"] == "ok").all(), first["error"].tolist()
    first, again = first.sort_values("run"), again.sort_values("run")
    assert first["r"].tolist() == again["r"].tolist()
    assert first["n"].tolist() == again["n"].tolist()
    assert first["r"].nunique() == 2  # each run its own draw
    assert first["seen_seed"].tolist() == first["seed"].tolist()
    written = pd.read_csv(tmp_path / "draws.csv")
    assert sorted(written["r"]) == sorted(first["r"])  # the file has every run
    attrs = json.loads((tmp_path / "draws.attrs.json").read_text())
    assert attrs["seed"] == 5 and attrs["counts"]["ok"] == 2


def test_a_worker_without_the_guest_stops_the_sweep_before_any_run(threads_client,
                                                                    tmp_path):
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(b"no kernel")
    mine = mvnb.Guest(kernel=kernel, name="mine")
    kernel.unlink()  # as on a machine that lacks the file
    with pytest.raises(SweepError, match=r"worker .* cannot run this sweep: guest mine: "
                                         r"kernel image .* does not exist"):
        mvnb.sweep.run(doubled, {"x": [1], "guest": [mine]}, client=threads_client,
                       progress=False, path=tmp_path / "none.csv")
    assert not (tmp_path / "none.csv").exists()  # no run started


def test_an_experiment_error_is_recorded_with_its_exception_first(threads_client, dummy):
    frame = mvnb.sweep.run(failing, {"x": [1], "guest": [dummy]}, client=threads_client,
                           progress=False)
    assert frame.loc[0, "outcome"] == "error"
    assert frame.loc[0, "error"].startswith("ValueError: no good: 1\n")
    assert "Traceback" in frame.loc[0, "error"]


def failing(params):
    raise ValueError(f"no good: {params['x']}")
