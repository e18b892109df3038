"""What an executed notebook saves: figures as PNGs, finished bars, widgets with static HTML.

Each test runs real cells in a real IPython kernel through nbclient (as ``jupyter nbconvert
--execute`` and nbval do), with no ``%matplotlib inline``, and reads the saved outputs.
"""

from __future__ import annotations

import os
import warnings

import nbformat
import pytest
from nbclient import NotebookClient

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def execute(tmp_path, *cells: str, timeout: int = 120) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(_root()), os.environ.get("PYTHONPATH", "")) if p)}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client.execute(env=env)
    return nb


def _root():
    import pathlib

    return pathlib.Path(__file__).parents[1]


def _outputs(cell):
    return [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]


def test_plots_show_as_png_without_matplotlib_inline(tmp_path):
    # Before: the saved output was text/plain '<Figure size 700x360 with 1 Axes>' only.
    nb = execute(tmp_path,
                 "import numpy as np, pandas as pd, mvnb\n"
                 "f = pd.DataFrame({'tsc': np.arange(100) * 40, 'ccr': 10**6 - np.arange(100)})",
                 "mvnb.timing.plot_counts(f, 'tsc', 'ccr')",
                 "from IPython.display import display\n"
                 "display(mvnb.timing.plot_drift(f, 'tsc', 'ccr'))")
    for cell in nb.cells[1:]:
        (out,) = _outputs(cell)
        assert "image/png" in out.data, out.data.keys()
        assert out.data["image/png"].startswith("iVBORw0KGgo")  # base64 of the PNG magic


def test_finished_bars_show_their_final_count(tmp_path):
    # Before: a finished bar's saved text/plain was '0%| | 0/27 ...' (displayed at 0, never
    # updated in the output; leave=False closed the widget).
    nb = execute(tmp_path,
                 "from mvnb._progress import tqdm\n"
                 "for _ in tqdm(range(27), desc='kept'): pass",
                 "for _ in tqdm(range(27), desc='gone', leave=False): pass",
                 "bar = tqdm(total=27, desc='short')\nbar.update(5)\nbar.close()")
    kept, gone, short = (_outputs(c) for c in nb.cells)
    assert len(kept) == 1 and "27/27" in kept[0].data["text/plain"]
    assert WIDGET_VIEW in kept[0].data
    assert len(gone) == 1 and "27/27" in gone[0].data["text/plain"]
    assert WIDGET_VIEW not in gone[0].data  # the widget was closed; its last line stays
    assert "5/27" in short[0].data["text/plain"] and WIDGET_VIEW in short[0].data


def test_widgets_carry_static_html(tmp_path):
    nb = execute(tmp_path,
                 "import mvnb\n"
                 "mvnb.widgets.BitfieldWidget(mvnb.regs.decode('LVT_TIMER', 0x000300ec))",
                 "from pathlib import Path\n"
                 f"text = Path({str(_root() / 'tests/data/info_lapic_qemu72.txt')!r}).read_text()\n"
                 "mvnb.widgets.SnapshotWidget(mvnb.regs.LapicSnapshot.from_text(text))")
    bit, snap = (_outputs(c) for c in nb.cells)
    for (out,) in (bit, snap):
        assert WIDGET_VIEW in out.data and "text/html" in out.data
    assert "LVT_TIMER" in bit[0].data["text/html"] and "0x000300ec" in bit[0].data["text/html"]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert bit[0].data[WIDGET_VIEW]["model_id"] in state


@pytest.mark.live
def test_sampling_bar_in_a_notebook_ends_at_its_count(tmp_path):
    nb = execute(tmp_path,
                 "import warnings, mvnb\n"
                 "warnings.simplefilter('ignore', RuntimeWarning)\n"
                 "vm, s, _ = mvnb.boot_to(mvnb.guests.debian_cloud(progress=False), "
                 "'lapic_cal_handler')",
                 "frame = s.sample('lapic_cal_handler', {'loops': 'lapic_cal_loops'}, count=6)",
                 "vm.close()\nlen(frame)",
                 timeout=300)
    (bar,) = _outputs(nb.cells[1])
    assert "6/6" in bar.data["text/plain"], bar.data["text/plain"]
    assert _outputs(nb.cells[2])[0].data["text/plain"] == "6"
