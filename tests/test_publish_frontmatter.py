"""Front matter against Chirpy's documented keys and formats (mvnb/publish/frontmatter.py).

The schema below is written from Chirpy's "Writing a New Post" page
(github.com/cotes2020/jekyll-theme-chirpy, _posts/2019-08-08-write-a-new-post.md): the
required ``title`` and ``date: YYYY-MM-DD HH:MM:SS +/-TTTT``; ``categories`` of up to two
elements; ``tags`` lowercase; ``author``/``authors``; ``description``; ``toc``,
``comments``, ``pin``, ``math``, ``mermaid`` and ``render_with_liquid`` booleans;
``media_subpath``; ``image`` as a path or a mapping of ``path``, ``alt``, ``lqip``. Posts
need no ``layout`` under Chirpy (it defaults to ``post``); other themes need it.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from publish_notebooks import code, display, figure_png, markdown, notebook

from mvnb.publish import PostExporter, PublishError, Redactor
from mvnb.publish.frontmatter import FrontMatter, parse_date

DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}$")
BOOLEANS = {"toc", "comments", "pin", "math", "mermaid", "render_with_liquid"}
STRINGS = {"title", "description", "media_subpath", "layout"}


def chirpy_errors(front: dict[str, Any], raw_date: str) -> list[str]:
    """What Chirpy's "Writing a New Post" page would object to in ``front``."""
    errors = []
    known = BOOLEANS | STRINGS | {"date", "categories", "tags", "author", "authors", "image"}
    errors += [f"unknown key {k}" for k in front if k not in known]
    if not isinstance(front.get("title"), str) or not front["title"]:
        errors.append("title missing")
    if not DATE.match(raw_date):
        errors.append(f"date {raw_date!r} is not YYYY-MM-DD HH:MM:SS +/-TTTT")
    categories = front.get("categories", [])
    if not isinstance(categories, list) or len(categories) > 2:
        errors.append("categories: a list of at most two")
    tags = front.get("tags", [])
    if not isinstance(tags, list) or any(not isinstance(t, str) or t != t.lower() for t in tags):
        errors.append("tags: a list of lowercase names")
    errors += [f"{k} is not a boolean" for k in BOOLEANS & set(front)
               if not isinstance(front[k], bool)]
    errors += [f"{k} is not a string" for k in STRINGS & set(front)
               if not isinstance(front[k], str)]
    image = front.get("image")
    if image is not None and not isinstance(image, str) and not (
            isinstance(image, dict) and set(image) <= {"path", "alt", "lqip"} and "path" in image):
        errors.append("image: a path, or path/alt/lqip")
    return errors


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    assert text.startswith("---\n")
    block = text[4:].split("\n---\n", 1)[0]
    raw_date = re.search(r"^date: (.*)$", block, re.MULTILINE).group(1)
    return yaml.safe_load(block), raw_date


def render(nb: Any, links: str = "liquid", when: datetime | None = None) -> str:
    resources = {"mvnb": {"redactor": Redactor.default(home="", cache="", user="", host="",
                                                       tmpdirs=()),
                          "links": links, "date": when or parse_date("2025-02-03")}}
    return PostExporter().from_notebook_node(nb, resources)[0]


def test_every_key_from_metadata_validates_against_chirpys_schema():
    nb = notebook(code("plt.plot()", [display({"image/png": figure_png()})],
                       tags=["preview-image"]),
                  markdown("Math $a_1$ and\n```mermaid\ngraph TD; A-->B\n```"),
                  title="Bring-up: LAPIC timer", categories=["Kernel", "x86"],
                  tags=["LAPIC", "QEMU", "microvm"], description="What Linux measures.",
                  pin=True, toc=False, comments=True, author="alice")
    for links in ("liquid", "chirpy"):
        front, raw_date = front_matter(render(nb, links))
        assert chirpy_errors(front, raw_date) == []
        assert front["title"] == "Bring-up: LAPIC timer"
        assert front["tags"] == ["lapic", "qemu", "microvm"]
        assert front["categories"] == ["Kernel", "x86"]
        assert front["math"] is True and front["mermaid"] is True and front["pin"] is True
        assert front["image"]["path"].endswith("cell1_0.png")
    assert front["media_subpath"] == "/assets/img/posts/bring-up-lapic-timer/"


def test_the_schema_catches_what_chirpy_documents_as_wrong():
    good = {"title": "t", "categories": ["a", "b"], "tags": ["x"]}
    assert chirpy_errors(good, "2025-01-02 03:04:05 +0100") == []
    assert chirpy_errors({**good, "categories": ["a", "b", "c"]}, "2025-01-02 03:04:05 +0100")
    assert chirpy_errors({**good, "tags": ["X"]}, "2025-01-02 03:04:05 +0100")
    assert chirpy_errors(good, "2025-01-02")
    assert chirpy_errors({**good, "math": "yes"}, "2025-01-02 03:04:05 +0100")


@given(st.text(min_size=1, max_size=60).filter(
    lambda s: any(c.isalnum() for c in s) and s.strip() == s and "\n" not in s
    and "\r" not in s))
def test_any_title_survives_yaml(title: str):
    front = FrontMatter.build({"title": title}, parse_date("2025-01-01"))
    parsed = yaml.safe_load(front.yaml().strip("-\n"))
    assert parsed["title"] == title


@pytest.mark.parametrize("title", ["Bring-up: part 2", "- a dash", "@at", "#hash", "a 'quote'",
                                   'a "double"', "back\\slash", "{braces}", "[list]", "yes"])
def test_awkward_titles_stay_strings(title: str):
    front = FrontMatter.build({"title": title}, parse_date("2025-01-01"))
    assert yaml.safe_load(front.yaml().strip("-\n"))["title"] == title


def test_title_description_and_keys_from_the_first_markdown_cell():
    nb = notebook()
    nb.cells[0] = markdown("# Calibration: the PIT and the TSC\n> How Linux measures.\n"
                           "- categories: [Kernel, Timers]\n- tags: [TSC, PIT]\n\nBody text.")
    front, _ = front_matter(render(nb))
    assert front["title"] == "Calibration: the PIT and the TSC"
    assert front["description"] == "How Linux measures."
    assert front["categories"] == ["Kernel", "Timers"] and front["tags"] == ["tsc", "pit"]
    body = render(nb).split("\n---\n", 1)[1]
    assert body.strip() == "Body text."


def test_a_future_date_is_refused():
    tomorrow = date.today() + timedelta(days=1)
    with pytest.raises(PublishError, match=r"future.*Jekyll skips future posts"):
        parse_date(tomorrow.isoformat())
    with pytest.raises(PublishError, match="future"):
        parse_date(datetime.now().astimezone() + timedelta(minutes=5))


def test_today_and_past_dates_carry_a_zone():
    today = parse_date(date.today().isoformat())
    assert today.tzinfo is not None and today.time().hour == 0
    assert parse_date("2024-02-29 13:14:15 -0500").strftime("%z") == "-0500"


def test_a_date_that_is_no_date_says_the_format():
    with pytest.raises(PublishError, match="YYYY-MM-DD"):
        parse_date("29/02/2024")


def test_more_than_two_categories_is_an_error():
    with pytest.raises(PublishError, match="at most two"):
        FrontMatter.build({"title": "t", "categories": ["a", "b", "c"]}, parse_date(None))


def test_unknown_metadata_key_is_an_error():
    nb = notebook(title="t", colour="red")
    with pytest.raises(PublishError, match=r"unknown key.*colour"):
        render(nb)


def test_a_notebook_without_a_title_is_an_error():
    nb = notebook()
    nb.cells[0] = markdown("No heading here.")
    with pytest.raises(PublishError, match="no title"):
        render(nb)
