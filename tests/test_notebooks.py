"""Every notebook in notebooks/ is a blog post that CI re-runs (issue 14).

nbval executes each notebook and compares its outputs (pyproject's addopts and testpaths);
this module checks what nbval does not: a title and enough prose to be a post, only the
public API, a provenance record in the last cell, a reason beside every output nbval is
told to ignore, committed outputs without errors, and a clean publish. One real Jekyll
build (Debian's jekyll, as tests/test_publish_jekyll.py does) takes all the posts.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import nbformat
import pytest
from test_publish_jekyll import _require_jekyll, build, page_of

from mvnb.publish import PROVENANCE_MIME, publish

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MIN_PROSE = 1200  # characters of Markdown besides the title and code blocks: a post, not notes
IGNORE_TAG = "nbval-ignore-output"
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _read(path: Path) -> Any:
    return nbformat.read(str(path), as_version=4)


def _code(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _python(source: str) -> ast.Module:
    """A cell's source as Python, IPython's magics turned into the calls they stand for."""
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request: pytest.FixtureRequest) -> tuple[Path, Any]:
    return request.param, _read(request.param)


def test_notebooks_are_collected_by_nbval():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    options = options["ini_options"]
    assert "notebooks" in options["testpaths"]
    assert "--nbval " in options["addopts"] + " "
    assert "--nbval-sanitize-with tests/nbval-sanitize.cfg" in options["addopts"]
    assert len(NOTEBOOKS) >= 4, [p.name for p in NOTEBOOKS]


def test_has_a_title_and_a_posts_worth_of_prose(notebook):
    path, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown" and re.match(r"# \S", first.source), (
        f"{path.name}: the first cell must be a Markdown '# Title'")
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    prose = _FENCE.sub("", prose.split("\n", 1)[1] if "\n" in prose else "")
    assert len(prose) >= MIN_PROSE, f"{path.name}: {len(prose)} characters of prose"


def test_uses_only_the_public_api(notebook):
    path, nb = notebook
    for cell in _code(nb):
        for node in ast.walk(_python(cell.source)):
            if isinstance(node, ast.Attribute):
                name = node.attr
                private = name.startswith("_") and not (name.startswith("__")
                                                        and name.endswith("__"))
                assert not private, f"{path.name}: .{name} in\n{cell.source}"
            elif isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                    node.module or ""]
                names = [] if isinstance(node, ast.Import) else [a.name for a in node.names]
                for part in [p for m in modules for p in m.split(".")] + names:
                    assert not part.startswith("_"), f"{path.name}: imports {part}"


def test_ends_with_its_provenance(notebook):
    path, nb = notebook
    last = _code(nb)[-1]
    assert "mvnb.publish.provenance(" in last.source, f"{path.name}: {last.source!r}"
    assert any(PROVENANCE_MIME in o.get("data", {}) for o in last.outputs), (
        f"{path.name}: the provenance cell has no saved output")


def test_outputs_are_committed_and_ignored_ones_say_why(notebook):
    path, nb = notebook
    for cell in _code(nb):
        assert cell.execution_count is not None, f"{path.name}: not executed:\n{cell.source}"
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{path.name}: saved error {errors[0].get('ename')}"
        tags = cell.metadata.get("tags", [])
        if IGNORE_TAG in tags:
            assert re.match(rf"# {IGNORE_TAG}: \S", cell.source), (
                f"{path.name}: an ignored output needs '# {IGNORE_TAG}: <why>' first:\n"
                f"{cell.source}")
        elif cell.source.startswith(f"# {IGNORE_TAG}"):
            pytest.fail(f"{path.name}: the comment says {IGNORE_TAG} but the tag is missing")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Every notebook published (with the leak check) into one site."""
    folder = tmp_path_factory.mktemp("site")
    found = {path.stem: publish(path, folder, check=True) for path in NOTEBOOKS}
    return folder, found


def test_publishes_without_local_paths(notebook, site):
    path, nb = notebook
    result = site[1][path.stem]
    assert result.post.is_file() and not result.leaks
    text = result.post.read_text()
    title = nb.cells[0].source.splitlines()[0][2:].strip()
    assert f'title: "{title}"' in text.replace('\\"', '"')
    assert "Ran on " in text  # the provenance footer
    for junk in ("<Figure", "widget-view+json"):
        assert junk not in text, junk
    for image in result.images:
        assert image.is_file() and image.stat().st_size > 0


@pytest.mark.jekyll
def test_all_posts_build_with_jekyll(site, tmp_path):
    _require_jekyll()
    folder, found = site
    out = tmp_path / "out"
    build(folder, out, "")
    for name, result in found.items():
        page = page_of(out, result.slug).read_text()
        title = _read(ROOT / "notebooks" / f"{name}.ipynb").cells[0].source.splitlines()[0]
        assert title[2:].strip().replace("'", "&#39;") in page.replace("&#x27;", "&#39;")
        for image in result.images:
            built = out / image.relative_to(folder)
            assert built.is_file(), f"{name}: {built} missing from the built site"
            assert image.name in page, f"{name}: {image.name} not linked from the page"


def test_a_qemu_build_a_notebook_boots_is_named_with_a_reason():
    """``mvnb.qemu`` metadata (what tests/conftest.py skips on) matches what the code boots."""
    named = 0
    for path in NOTEBOOKS:
        nb = _read(path)
        needs = nb.metadata.get("mvnb", {}).get("qemu")
        if needs is None:
            continue
        named += 1
        assert re.fullmatch(r"\d+(\.\d+)*", needs["version"]), (path.name, needs)
        assert needs.get("reason", "").strip(), f"{path.name}: mvnb.qemu needs a reason"
        code = "\n".join(c.source for c in _code(nb))
        assert f'"{needs["version"]}"' in code, (
            f"{path.name}: names QEMU {needs['version']} in its metadata but never boots it")
    assert named >= 1  # apic-mode boots QEMU 10.0


def test_a_notebook_whose_qemu_build_is_missing_is_skipped_with_the_fetch_command(tmp_path):
    from conftest import notebook_needs_missing_build

    from mvnb.vm import qemu_builds

    path = tmp_path / "needs.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["mvnb"] = {"qemu": {"version": "99.9", "reason": "a QEMU from the future"}}
    nbformat.write(nb, str(path))
    why = notebook_needs_missing_build(path)
    assert why is not None and "needs QEMU 99.9 (a QEMU from the future)" in why
    assert "mvnb qemu fetch --version 99.9" in why
    builds = qemu_builds()
    if builds:
        nb.metadata["mvnb"]["qemu"]["version"] = builds[0].version
        nbformat.write(nb, str(path))
        assert notebook_needs_missing_build(path) is None
    nb.metadata["mvnb"] = {}
    nbformat.write(nb, str(path))
    assert notebook_needs_missing_build(path) is None
