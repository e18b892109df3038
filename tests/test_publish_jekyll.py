"""A published post in a real Jekyll site, looked at in a real browser.

Debian's ``jekyll`` builds a minimal site with Debian's ``jekyll-theme-minima`` (no Bundler,
no Chirpy gem: neither installs offline) around a post that has everything a notebook can
throw at it, with and without a ``baseurl``. The build must succeed with Liquid in strict
mode. Then headless Debian ``chromium`` (driven by Playwright, never its downloaded
browser) loads the page over HTTP on 127.0.0.1 and checks what a reader sees: every image
loads, no widget JSON or ``<Figure`` repr, code blocks intact, the TeX source of the math
intact for MathJax (which cannot load offline here). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from publish_notebooks import (
    ANSI_TEXT,
    GDB_OUTPUT,
    LIQUID_CODE,
    LIQUID_OUTPUT,
    MATH_DISPLAY,
    code,
    dataframe_bundle,
    display,
    figure_png,
    figure_svg,
    markdown,
    notebook,
    result,
    slider_bundle,
    stream,
    tqdm_stream_text,
    write,
)

from mvnb.publish import Provenance, publish

pytestmark = [pytest.mark.jekyll, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT = 120.0
FENCED = 'doc = """\n```c\nint x;\n```\n"""'


def _require_jekyll() -> None:
    if shutil.which("jekyll") is None:
        pytest.skip("jekyll is missing: apt-get install -y jekyll jekyll-theme-minima")
    found = subprocess.run(["ruby", "-e", "Gem::Specification.find_by_name('minima')"],
                           capture_output=True, timeout=60, check=False)
    if found.returncode != 0:
        pytest.skip("the minima theme is missing: apt-get install -y jekyll-theme-minima")


def _require_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Python package playwright is missing: pip install playwright")


def kitchen_sink(folder: Path) -> Path:
    """A notebook with every kind of content the publisher handles."""
    record = Provenance(mvnb="0.1.0", qemu="7.2.22", gdb="13.1", guest="debian-cloud-test",
                        guest_version="6.1.0-56", date="2025-01-02T03:04:05+00:00")
    attached = markdown("The set-up: ![the set-up](attachment:setup.png)")
    attached["attachments"] = {"setup.png": {"image/png": figure_png(2, 1)}}
    secret = f"{os.path.expanduser('~')}/src/linux/arch/x86/kernel/apic/apic.c"
    nb = notebook(
        markdown("Inline math $x_1 + y_2$ and a price of $5 and $10.\n"
                 f"$$\n{MATH_DISPLAY}\n$$\nAfter the display math."),
        markdown("Check the divider before you trust the count.", tags=["prompt-info"]),
        code(LIQUID_CODE, [stream(LIQUID_OUTPUT + "\n")]),
        code("frame", [result(dataframe_bundle())]),
        code("# Counts per tick\nplt.plot(counts)", [display({"image/png": figure_png()})]),
        code("fig", [display({"image/svg+xml": figure_svg(), "text/plain": "<Figure>"})],
             tags=["hide_input"]),
        code("lvt_timer_widget", [display(slider_bundle(with_html=True))]),
        code("slider", [display(slider_bundle(with_html=False))]),
        code("for _ in tqdm(range(20)): pass", [stream(tqdm_stream_text(20), "stderr")]),
        code("%%gdb\ninfo registers rip", [stream(GDB_OUTPUT)]),
        code("print(colour)", [stream(ANSI_TEXT + "\n")], tags=["hide-output"]),
        code(FENCED, []),
        code(f"open('{secret}')", [stream(f"{secret}: 1201 lines\n")]),
        attached,
        code("mvnb.publish.provenance(vm)", [display(record._repr_mimebundle_())]),
        title="Timers: a first look", categories=["Kernel", "x86"], tags=["LAPIC"],
    )
    return write(nb, folder / "timers.ipynb")


def build(site: Path, out: Path, baseurl: str) -> str:
    """``jekyll build`` with strict Liquid; returns its output, fails the test on error."""
    (site / "_config.yml").write_text(
        "title: mvnb test site\ntheme: minima\nmarkdown: kramdown\n"
        f"baseurl: \"{baseurl}\"\nstrict_front_matter: true\n"
        "liquid:\n  error_mode: strict\n  strict_filters: true\n")
    (site / "index.md").write_text("---\nlayout: home\n---\n")
    done = subprocess.run(
        ["jekyll", "build", "--source", str(site), "--destination", str(out / baseurl.strip("/")),
         "--trace"], capture_output=True, text=True, timeout=TIMEOUT, check=False,
        env={**os.environ, "JEKYLL_ENV": "production", "LANG": "C.UTF-8"})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "Liquid" not in log, log
    return log


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True, timeout=TIMEOUT * 1000)
        try:
            yield chromium
        finally:
            chromium.close()


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(folder) -> base URL``: a static HTTP server on 127.0.0.1 for the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0),
                                     functools.partial(Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def page_of(out: Path, slug: str) -> Path:
    pages = list(out.rglob(f"{slug}.html"))
    assert len(pages) == 1, sorted(str(p) for p in out.rglob("*.html"))
    return pages[0]


def look(browser: Any, url: str, shot: Path) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    try:
        page.set_default_timeout(TIMEOUT * 1000)
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, url
        page.wait_for_function("() => [...document.images].every(i => i.complete)")
        seen = page.evaluate("""() => ({
            images: [...document.images].map(i => ({src: i.currentSrc, alt: i.alt,
                                                    width: i.naturalWidth})),
            code: [...document.querySelectorAll('pre code')].map(c => c.textContent),
            text: document.querySelector('.post-content').textContent,
            html: document.querySelector('.post-content').innerHTML,
            title: document.querySelector('.post-title').textContent.trim(),
            summaries: [...document.querySelectorAll('details > summary')]
                .map(s => s.textContent),
            table: [...document.querySelectorAll('.post-content table')]
                .filter(t => !t.closest('.mvnb-output'))
                .flatMap(t => [...t.querySelectorAll('th')].map(th => th.textContent.trim())),
        })""")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        return seen
    finally:
        page.close()


@pytest.mark.parametrize("baseurl", ["", "/blog"])
def test_the_post_builds_and_reads_right_in_a_browser(tmp_path: Path, browser: Any, serve: Any,
                                                       baseurl: str):
    _require_jekyll()
    site, out = tmp_path / "site", tmp_path / "out"
    found = publish(kitchen_sink(tmp_path), site, date="2024-06-01", check=True,
                    image_links="liquid")
    assert len(found.images) == 3
    build(site, out, baseurl)
    html_page = page_of(out, found.slug)
    url = serve(out) + "/" + html_page.relative_to(out).as_posix()
    seen = look(browser, url, ARTIFACTS / f"publish_jekyll{baseurl.replace('/', '_')}.png")

    assert seen["title"] == "Timers: a first look"
    assert len(seen["images"]) == 3
    for image in seen["images"]:
        assert image["width"] > 0, image
        assert f"{baseurl}/assets/img/posts/{found.slug}/" in image["src"]
    assert {i["alt"] for i in seen["images"]} == {"Counts per tick", "Figure 2", "the set-up"}

    text = seen["text"]
    for junk in ("widget-view+json", "model_id", "IntSlider(", "<Figure", "\x1b", "[0m"):
        assert junk not in text, junk
    assert os.path.expanduser("~") + "/" not in text
    assert "<user>" not in text  # nothing the reader should see as a bare placeholder
    assert "LVT_TIMER" in text  # the widget's static HTML

    assert LIQUID_CODE + "\n" in seen["code"]
    assert LIQUID_OUTPUT + "\n" in seen["code"]
    assert FENCED + "\n" in seen["code"]
    assert "(gdb) info registers rip\n" + GDB_OUTPUT in seen["code"]
    bars = [c for c in seen["code"] if "%|" in c]
    assert len(bars) == 1 and bars[0].startswith("sampling: 100%|██████████| 20/20")
    assert "ERROR: green text\n" in seen["code"]

    assert r"\(x_1 + y_2\)" in text  # Kramdown's inline math, for MathJax: "_" intact
    assert "\\[" + MATH_DISPLAY + "\\]" in text
    assert "<em>" not in seen["html"].split("After the display math")[0]
    assert "$5 and $10" in text

    assert seen["table"] == ["", "level", "function", "address"]
    assert seen["summaries"] == ["Code", "Output"]
    assert "Check the divider" in text
    assert "Ran on 2025-01-02 with mvnb 0.1.0, QEMU 7.2.22, GDB 13.1" in text


def test_the_first_session_notebook_publishes_builds_and_shows(tmp_path: Path, browser: Any,
                                                               serve: Any):
    _require_jekyll()
    site, out = tmp_path / "site", tmp_path / "out"
    found = publish(ROOT / "notebooks" / "first-session.ipynb", site)
    build(site, out, "")
    url = serve(out) + "/" + page_of(out, found.slug).relative_to(out).as_posix()
    seen = look(browser, url, ARTIFACTS / "publish_first_session.png")
    assert seen["title"].startswith("A first session")
    assert all(image["width"] > 0 for image in seen["images"])
    assert any("(gdb) print lapic_cal_loops\n$1 = -1" in c for c in seen["code"])
    assert seen["table"][:3] == ["", "level", "function"]


# Chirpy's rule for a post's media, as its "Writing a New Post" page documents it (URL
# Prefix): an image's URL is [site.cdn/][page.media_subpath/]file, under the site's baseurl.
# This layout applies that rule, so that chirpy-style links are checked in a real build.
CHIRPY_RULE_LAYOUT = """\
---
---
{%- capture src_to -%}<img src="{{ site.baseurl }}{{ page.media_subpath }}{%- endcapture -%}
<html><body><h1 class="post-title">{{ page.title }}</h1>
<article class="post-content">{{ content | replace: '<img src="', src_to }}</article>
</body></html>
"""


def test_chirpy_style_links_resolve_under_media_subpath_and_baseurl(tmp_path: Path,
                                                                     browser: Any, serve: Any):
    _require_jekyll()
    site, out = tmp_path / "site", tmp_path / "out"
    (site / "_layouts").mkdir(parents=True)
    (site / "_layouts" / "post.html").write_text(CHIRPY_RULE_LAYOUT)
    found = publish(kitchen_sink(tmp_path), site, date="2024-06-01", image_links="chirpy")
    text = found.post.read_text()
    assert f'media_subpath: "/assets/img/posts/{found.slug}/"' in text
    assert "relative_url" not in text
    build(site, out, "/blog")
    url = serve(out) + "/" + page_of(out, found.slug).relative_to(out).as_posix()
    seen = look(browser, url, ARTIFACTS / "publish_jekyll_chirpy_rule.png")
    assert len(seen["images"]) == 3
    for image in seen["images"]:
        assert image["width"] > 0, image
        assert f"/blog/assets/img/posts/{found.slug}/" in image["src"]
