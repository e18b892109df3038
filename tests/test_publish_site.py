"""Where posts and images go, how they are linked, and re-publishing (mvnb/publish/site.py)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from publish_notebooks import code, display, figure_png, notebook, write

from mvnb.publish import PublishError, publish
from mvnb.publish.site import MANIFEST, detect_links, slugify

TITLES = ["A first session: Linux calibrating its LAPIC timer on QEMU microvm",
          "  Spaces   and -- dashes  ", "Émile's café, naïve résumé", "x86_64 & i386: 2 ABIs",
          "日本語のタイトル", "C++ / Rust (part 2)"]


@pytest.mark.parametrize(("title", "slug"), [
    (TITLES[0], "a-first-session-linux-calibrating-its-lapic-timer-on-qemu-microvm"),
    (TITLES[1], "spaces-and-dashes"),
    (TITLES[3], "x86-64-i386-2-abis"),
])
def test_slugify(title: str, slug: str):
    assert slugify(title) == slug


def test_slugify_agrees_with_jekylls_own():
    if shutil.which("ruby") is None or shutil.which("jekyll") is None:
        pytest.skip("Jekyll is missing: apt-get install -y jekyll (./setup.sh test does)")
    script = "require 'jekyll'; ARGV.each { |t| puts Jekyll::Utils.slugify(t) }"
    done = subprocess.run(["ruby", "-e", script, *TITLES], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.splitlines() == [slugify(t) for t in TITLES]


def test_a_title_without_letters_is_an_error():
    with pytest.raises(PublishError, match="no letters or digits"):
        slugify(": -- !")


def test_detects_chirpy(tmp_path: Path):
    assert detect_links(tmp_path) == "liquid"
    (tmp_path / "_config.yml").write_text("theme: jekyll-theme-chirpy\n")
    assert detect_links(tmp_path) == "chirpy"


def figures(n: int, title: str = "Drift, measured") -> object:
    return notebook(*(code(f"# Drift {i}\nplot({i})", [display({"image/png": figure_png(3, 2)})])
                      for i in range(n)), title=title)


def test_post_and_images_land_where_jekyll_and_chirpy_look(tmp_path: Path):
    site = tmp_path / "site"
    found = publish(write(figures(2), tmp_path / "drift.ipynb"), site, date="2024-05-06")
    assert found.post == site / "_posts" / "2024-05-06-drift-measured.md"
    folder = site / "assets" / "img" / "posts" / "drift-measured"
    assert found.images == [folder / "cell1_0.png", folder / "cell2_0.png"]
    assert all(p.stat().st_size > 0 for p in found.images)
    text = found.post.read_text()
    assert "{{ '/assets/img/posts/drift-measured/cell1_0.png' | relative_url }}" in text


def test_republishing_replaces_the_post_and_leaves_no_stale_images(tmp_path: Path):
    site = tmp_path / "site"
    path = tmp_path / "drift.ipynb"
    first = publish(write(figures(3), path), site, date="2024-05-06")
    other = publish(write(figures(1, "Another post"), tmp_path / "other.ipynb"), site)
    (first.images[0].parent / "by-hand.png").write_bytes(b"the author's own file")
    second = publish(write(figures(1, "Drift, measured again"), path), site)
    posts = sorted(p.name for p in (site / "_posts").iterdir())
    assert posts == sorted([other.post.name, "2024-05-06-drift-measured-again.md"])
    assert second.post.read_text().count("date: 2024-05-06 ") == 1  # the date is kept
    old = site / "assets" / "img" / "posts" / "drift-measured"
    assert sorted(p.name for p in old.iterdir()) == ["by-hand.png"]  # ours went, theirs stays
    new = site / "assets" / "img" / "posts" / "drift-measured-again"
    assert sorted(p.name for p in new.iterdir()) == [MANIFEST, "cell1_0.png"]
    assert set(second.removed) >= {first.post, *first.images}
    assert other.post.is_file() and other.images[0].is_file()


def test_republishing_with_fewer_figures_removes_the_rest(tmp_path: Path):
    site = tmp_path / "site"
    path = tmp_path / "drift.ipynb"
    publish(write(figures(3), path), site, date="2024-05-06")
    again = publish(write(figures(1), path), site, date=date.today().isoformat())
    folder = site / "assets" / "img" / "posts" / "drift-measured"
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "cell1_0.png"]
    assert [p.name for p in (site / "_posts").iterdir()] == [again.post.name]
    assert again.post.name.startswith(date.today().isoformat())


def test_a_post_mvnb_did_not_write_is_not_replaced(tmp_path: Path):
    site = tmp_path / "site"
    (site / "_posts").mkdir(parents=True)
    theirs = site / "_posts" / "2023-01-01-drift-measured.md"
    theirs.write_text("---\ntitle: Drift, measured\n---\nWritten by hand.\n")
    with pytest.raises(PublishError, match="not written by mvnb publish"):
        publish(write(figures(1), tmp_path / "drift.ipynb"), site)
    assert theirs.read_text().endswith("Written by hand.\n")


def test_site_that_is_a_file_is_an_error(tmp_path: Path):
    (tmp_path / "site").write_text("")
    with pytest.raises(PublishError, match="is a file"):
        publish(write(figures(0), tmp_path / "nb.ipynb"), tmp_path / "site")


def test_missing_notebook_is_an_error(tmp_path: Path):
    with pytest.raises(PublishError, match="does not exist"):
        publish(tmp_path / "nope.ipynb", tmp_path / "site")


def test_a_future_date_on_the_command_line_is_refused(tmp_path: Path, capsys):
    from datetime import timedelta

    from mvnb.cli import main

    path = write(figures(1), tmp_path / "nb.ipynb")
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    assert main(["publish", str(path), "--site", str(tmp_path / "site"), "--date", tomorrow]) == 1
    err = capsys.readouterr().err
    assert f"date {tomorrow}" in err and "Jekyll skips future posts" in err
    assert not (tmp_path / "site").exists()
