"""The package's layers (pyproject's import-linter contracts) and what ``import mvnb`` loads.

Layers, highest first: cli; publish | sweep; vm | x86 | tables; gdb; widgets; regs | timing;
_proc | cache; errors. Imports inside functions and under TYPE_CHECKING count.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint).exists():
        pytest.fail("lint-imports is missing: install the [test] extra (import-linter)")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _loaded_after(statement: str) -> set[str]:
    code = (f"import sys; {statement}; import json; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return set(json.loads(out))


#: What ``import mvnb`` leaves for first use (pygdbmi's parser, 40 ms, loads with the
#: debugger layer that ``mvnb.x86`` registers on).
HEAVY = {"pandas", "matplotlib", "ipywidgets", "IPython"}


def test_import_mvnb_loads_no_heavy_package():
    assert _loaded_after("import mvnb") & HEAVY == set()


def test_regs_and_timing_import_without_debugger_widgets_or_matplotlib():
    loaded = _loaded_after("import mvnb.regs, mvnb.timing; mvnb.regs.decode('SVR', 0x1ff)")
    assert loaded & {"matplotlib", "ipywidgets", "IPython"} == set()


def test_the_x86_accessor_is_there_after_import_mvnb():
    code = "import mvnb; print(mvnb.Session.x86.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "X86"
