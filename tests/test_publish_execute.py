"""``mvnb publish --execute``: nbclient runs the notebook on a real kernel, then it publishes.

The outputs here are what a live kernel produces: tqdm.auto's notebook widget (its final
state saved by nbclient), an ipywidgets slider, a matplotlib figure from the inline
backend, a DataFrame, and mvnb's own provenance record.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from publish_notebooks import code, notebook, write

ROOT = Path(__file__).resolve().parents[1]
CELLS = [
    "from tqdm.auto import tqdm\nfor _ in tqdm(range(30), desc='ticks'):\n    pass",
    "import ipywidgets\nipywidgets.IntSlider(value=4, description='divider')",
    "# Drift per tick\nimport matplotlib.pyplot as plt\n%matplotlib inline\n"
    "plt.plot([1, 3, 2])\nplt.title('drift')",
    "import pandas as pd\npd.DataFrame({'tick': [1, 2], 'count': [250000, 249731]})",
    "import mvnb.publish\nmvnb.publish.provenance()",
]


def test_execute_then_publish_from_the_command_line(tmp_path: Path):
    pytest.importorskip("ipykernel")
    path = write(notebook(*(code(c) for c in CELLS), title="Executed: live outputs"),
                 tmp_path / "live.ipynb")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run(
        [sys.executable, "-m", "mvnb.cli", "publish", str(path), "--site",
         str(tmp_path / "site"), "--execute", "--timeout", "120", "--check"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    post = Path(lines[-1])
    assert post.name.endswith("-executed-live-outputs.md") and post.is_file()
    assert any("IntSlider widget output has no text/html" in line for line in lines)
    text = post.read_text()
    body = text.split("\n---\n", 1)[1]
    bars = [ln for ln in body.splitlines() if "%|" in ln]
    assert len(bars) == 1 and bars[0].startswith("ticks: 100%|██████████| 30/30"), body
    shown = body.replace(CELLS[1], "")  # the slider's source stays, its output goes
    assert "IntSlider" not in shown and "model_id" not in shown
    assert "Text(" not in body and "<Figure" not in body
    assert "![Drift per tick](" in body
    assert "| tick | count |" in body.replace("|  | tick", "| tick")
    assert "mvnb.publish.provenance()" not in body
    assert "Ran on " in body and "GDB " in body
    assert nbformat.read(path, 4).cells[1].outputs == []  # the notebook file is not changed


def test_a_failing_cell_is_reported_with_its_error(tmp_path: Path):
    pytest.importorskip("ipykernel")
    from mvnb.publish import PublishError, publish

    path = write(notebook(code("raise ValueError('calibration failed')")), tmp_path / "bad.ipynb")
    with pytest.raises(PublishError, match="calibration failed"):
        publish(path, tmp_path / "site", execute=True, timeout=120, show_progress=False)
    assert not (tmp_path / "site" / "_posts").exists()
