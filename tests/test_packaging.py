"""pyproject.toml and environment.yml agree; the package is importable and typed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_every_runtime_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = set()
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            conda.add(_name(dep))
        else:
            conda |= {_name(d) for d in dep.get("pip", []) if not d.startswith("-")}
    assert runtime - conda == set(), "runtime dependencies missing from environment.yml"
    assert conda - runtime - {"python", "pip"} == set(), "environment.yml names extra packages"


def test_public_surface():
    import mvnb

    for name in mvnb.__all__:
        assert hasattr(mvnb, name), name
    assert (ROOT / "mvnb" / "py.typed").exists()


def test_publish_is_reachable_after_a_plain_import():
    """The README ends a notebook with ``mvnb.publish.provenance(vm)`` after ``import mvnb``;
    that raised AttributeError while ``mvnb.publish`` was not one of the lazy subpackages."""
    done = subprocess.run(
        [sys.executable, "-c", "import mvnb; print(mvnb.publish.provenance.__name__)"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "provenance"
