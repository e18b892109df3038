"""The post exporter on small notebooks: tags, math, Liquid, tables, figures, widgets,
progress bars, GDB transcripts, ANSI output (mvnb/publish/exporter.py and preprocessors)."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from publish_notebooks import (
    ANSI_TEXT,
    GDB_OUTPUT,
    LIQUID_CODE,
    LIQUID_OUTPUT,
    MATH_DISPLAY,
    MATH_INLINE,
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
    tqdm_widget,
)

from mvnb.publish import PostExporter, Redactor
from mvnb.publish.blocks import liquid_safe

WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=1)))


def render(nb: Any, links: str = "liquid", **traits: Any) -> tuple[str, dict[str, Any]]:
    """The exporter on ``nb`` with no machine-specific redaction and a fixed date."""
    redactor = Redactor.default(home="", cache="", user="", host="", tmpdirs=())
    resources = {"mvnb": {"redactor": redactor, "links": links, "date": WHEN}}
    return PostExporter(**traits).from_notebook_node(nb, resources)


def body_of(text: str) -> str:
    return text.split("\n---\n", 1)[1]


def liquid_render(text: str) -> str:
    """What Liquid outputs for text that only uses raw blocks and the "{%" string trick."""
    text = text.replace('{{ "{%" }}', "{%")
    return re.sub(r"\{% raw %\}(.*?)\{% endraw %\}", r"\1", text, flags=re.DOTALL)


def test_front_matter_first_then_the_body_without_the_title_heading():
    text, _ = render(notebook(title="Timers: a first look"))
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    assert 'title: "Timers: a first look"' in head
    assert "date: 2025-03-04 05:06:07 +0100" in head
    assert "# Timers" not in body
    assert body.strip() == "First paragraph."


@pytest.mark.parametrize("spelling", ["-", "_"])
def test_remove_tags_in_both_spellings(spelling: str):
    def tag(name: str) -> list[str]:
        return [name.replace("-", spelling)]

    nb = notebook(
        code("print('gone cell')", [stream("gone cell output\n")], tags=tag("remove-cell")),
        code("print('hidden source')", [stream("kept output\n")], tags=tag("remove-input")),
        code("print('kept source')", [stream("gone output\n")], tags=tag("remove-output")),
        code("import sys; print('x'); print('err', file=sys.stderr)",
             [stream("kept stdout\n"), stream("gone stderr\n", "stderr")],
             tags=tag("remove-stderr")),
    )
    body = body_of(render(nb)[0])
    for gone in ("gone cell", "hidden source", "gone output", "gone stderr"):
        assert gone not in body
    for kept in ("kept output", "kept source", "kept stdout"):
        assert kept in body


@pytest.mark.parametrize("spelling", ["-", "_"])
def test_hide_tags_become_details_blocks(spelling: str):
    def tag(name: str) -> list[str]:
        return [name.replace("-", spelling)]

    nb = notebook(
        code("secret_input = 1", [stream("shown output\n")], tags=tag("hide-input")),
        code("shown_input = 2", [stream("secret output\n")], tags=tag("hide-output")),
        code("whole_cell = 3", [stream("whole output\n")], tags=tag("hide-cell")),
    )
    body = body_of(render(nb)[0])
    details = re.findall(r'<details class="mvnb-hidden" markdown="1">\n<summary>(\w+)</summary>'
                         r"\n\n(.*?)\n\n</details>", body, re.DOTALL)
    assert [d[0] for d in details] == ["Code", "Output", "Cell"]
    assert "secret_input = 1" in details[0][1] and "shown output" not in details[0][1]
    assert "secret output" in details[1][1] and "shown_input" not in details[1][1]
    assert "whole_cell = 3" in details[2][1] and "whole output" in details[2][1]
    assert body.index("shown output") > body.index("secret_input")


@pytest.mark.parametrize("kind", ["tip", "info", "warning", "danger"])
def test_prompt_tags_make_chirpy_prompts(kind: str):
    nb = notebook(markdown("Mind the **divider**.\n\nSecond line.", tags=[f"prompt_{kind}"]))
    body = body_of(render(nb)[0])
    assert f"> Mind the **divider**.\n>\n> Second line.\n{{: .prompt-{kind} }}\n" in body


def test_math_is_left_intact_for_mathjax_and_sets_math_true():
    nb = notebook(markdown(f"Inline {MATH_INLINE} and a price of $5 and $10.\n"
                           f"$$\n{MATH_DISPLAY}\n$$\nText after, `$not_math$`."))
    text, _ = render(nb)
    body = body_of(text)
    assert "math: true" in text.split("\n---\n")[0]
    assert "Inline $$x_1 + y_2$$ and" in body  # Kramdown's inline math keeps the "_"
    assert "$5 and $10" in body  # dollars that are not math stay
    assert f"\n\n$$\n{MATH_DISPLAY}\n$$\n\nText after" in body  # a block needs blank lines
    assert "`$not_math$`" in body


def test_no_math_no_math_key():
    text, _ = render(notebook(markdown("It costs $5.")))
    assert "math:" not in text


def test_mermaid_block_sets_mermaid_true():
    text, _ = render(notebook(markdown("```mermaid\ngraph TD; A-->B\n```")))
    assert "mermaid: true" in text.split("\n---\n")[0]


def test_liquid_in_code_and_output_is_wrapped_in_raw():
    nb = notebook(code(LIQUID_CODE, [stream(LIQUID_OUTPUT + "\n")]),
                  markdown("Prose with `{{ code }}` and {% tag %} literally."),
                  markdown("{{ site.title }} is Liquid here.", tags=["liquid"]))
    body = body_of(render(nb)[0])
    assert "{% raw %}```python\n" + LIQUID_CODE + "\n```{% endraw %}" in body
    assert "{% raw %}```plaintext\n" + LIQUID_OUTPUT + "\n```{% endraw %}" in body
    assert "{% raw %}`{{ code }}`{% endraw %}" in body
    assert "Prose with `{{ code }}` and {% tag %} literally." in liquid_render(body)
    assert " {% raw %}and {% tag %} literally.{% endraw %}" in body
    assert "\n{{ site.title }} is Liquid here." in body  # the author asked for Liquid


def test_endraw_inside_code_cannot_end_the_raw_block():
    text = "x = '{% endraw %}{{ y }}'"
    wrapped = liquid_safe(text)
    assert liquid_render(wrapped) == text
    assert wrapped.count("{% raw %}") == 2


def test_dataframe_becomes_a_kramdown_table():
    nb = notebook(code("frame", [result(dataframe_bundle())]))
    body = body_of(render(nb)[0])
    lines = [ln for ln in body.splitlines() if ln.startswith("|")]
    assert lines[0] == "|  | level | function | address |"
    assert lines[1] == "|---:|---:|---|---:|"
    assert lines[2] == f"| 0 | 0 | lapic\\_cal\\_handler | {0xFFFFFFFF81A4C3B0} |"
    assert "<table" not in body and "dataframe" not in body


def test_figures_are_extracted_with_alt_text_and_linked_for_any_theme():
    png = figure_png()
    figure = {"image/png": png, "text/plain": "<Figure size 200x150 with 1 Axes>"}
    nb = notebook(code("# Counts per tick\nplt.plot(counts)",
                       [result({"text/plain": "[<matplotlib.lines.Line2D at 0x7f0>]"}),
                        display(figure)]),
                  code("fig", [display({"image/svg+xml": figure_svg(), "text/plain": "<Figure>"})]))
    text, resources = render(nb)
    body = body_of(text)
    assert "![Counts per tick]({{ '/assets/img/posts/a-title-with-a-colon/cell1_0.png' | " \
           "relative_url }})" in body
    assert re.search(r"!\[Figure 2\]\(\{\{ '/assets/img/posts/a-title-with-a-colon/cell2_0.svg'"
                     r" \| relative_url \}\}\)\{: width=\"\d+\" \}", body)
    assert resources["outputs"]["cell1_0.png"] == base64.b64decode(png)
    assert "<Figure" not in body and "Line2D" not in body


def test_chirpy_links_use_media_subpath_and_file_names():
    nb = notebook(code("plt.plot()", [display({"image/png": figure_png()})],
                       tags=["preview-image"]))
    text, _ = render(nb, links="chirpy")
    head, body = text[4:].split("\n---\n", 1)
    assert 'media_subpath: "/assets/img/posts/a-title-with-a-colon/"' in head
    assert '  path: "cell1_0.png"' in head  # the preview image, by the cell tag
    assert "![Figure 1](cell1_0.png)" in body


def test_widget_with_html_shows_the_html_never_the_repr_or_json():
    nb = notebook(code("widget", [display(slider_bundle(with_html=True))]))
    body = body_of(render(nb)[0])
    assert '<div class="mvnb-output" markdown="0">' in body
    assert "LVT_TIMER" in body
    assert "IntSlider(" not in body and "widget-view" not in body and "model_id" not in body


def test_widget_without_html_or_image_is_left_out_with_a_note():
    nb = notebook(code("slider", [display(slider_bundle(with_html=False))]))
    text, resources = render(nb)
    assert "IntSlider" not in text and "model_id" not in text
    assert any("IntSlider widget output has no text/html" in n
               for n in resources["mvnb"]["notes"])


def test_widget_with_only_an_image_shows_the_image():
    bundle = {**slider_bundle(with_html=False), "image/png": figure_png()}
    text, resources = render(notebook(code("w", [display(bundle)])))
    assert "cell1_0.png" in text and "IntSlider" not in text
    assert list(resources["outputs"]) == ["cell1_0.png"]


def test_tqdm_stream_keeps_only_the_final_line():
    raw = tqdm_stream_text(20)
    assert raw.count("\r") > 5
    nb = notebook(code("for _ in tqdm(range(20)): pass", [stream(raw, "stderr")]))
    body = body_of(render(nb)[0])
    bars = [ln for ln in body.splitlines() if "%|" in ln]
    assert len(bars) == 1 and bars[0].startswith("sampling: 100%|██████████| 20/20")
    assert "\r" not in body


def test_tqdm_stream_dropped_with_progress_none():
    nb = notebook(code("for _ in tqdm(range(20)): pass",
                       [stream(tqdm_stream_text(20), "stderr"), stream("done\n")]))
    exporter_config = {"StreamPreprocessor": {"progress": "none"}}
    from traitlets.config import Config

    body = body_of(render(nb, config=Config(exporter_config))[0])
    assert "%|" not in body and "done" in body


def test_tqdm_widget_shows_its_final_line_from_the_saved_widget_state():
    bundle, state = tqdm_widget()
    assert "0%" in bundle["text/plain"]  # what the notebook stored when the bar appeared
    nb = notebook(code("for _ in tqdm(range(12)): ...", [display(bundle)]))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    body = body_of(render(nb)[0])
    assert re.search(r"```plaintext\nboots: 100%\|██████████\| 12/12 \[", body)
    assert " 0%" not in body and "HBox" not in body


def test_tqdm_widget_without_saved_state_is_dropped_with_a_note():
    bundle, _ = tqdm_widget()
    text, resources = render(notebook(code("for ...", [display(bundle)])))
    assert "0/12" not in text and "HBox" not in text
    assert any("progress bar" in n for n in resources["mvnb"]["notes"])


def test_gdb_cell_is_a_console_transcript():
    nb = notebook(code("%%gdb\ninfo registers rip", [stream(GDB_OUTPUT)]),
                  code("%%gdb\nprint 1\n# a comment\nprint 2", [stream("$1 = 1\n$2 = 2\n")]),
                  code("%load_ext mvnb\n%gdb print lapic_cal_loops", [stream("$3 = -1\n")]))
    body = body_of(render(nb)[0])
    assert "```console\n(gdb) info registers rip\n" + GDB_OUTPUT + "```" in body
    assert "```console\n(gdb) print 1\n(gdb) print 2\n```\n\n```console\n$1 = 1\n$2 = 2\n```" \
        in body
    assert "```python\n%load_ext mvnb\n```\n\n```console\n(gdb) print lapic_cal_loops\n" \
           "$3 = -1\n```" in body


def test_gdb_transcript_in_a_stream_is_a_console_block():
    nb = notebook(code("print(s.transcript())", [stream("(gdb) bt\n#0 lapic_cal_handler\n")]))
    assert "```console\n(gdb) bt\n#0 lapic_cal_handler\n```" in body_of(render(nb)[0])


def test_ansi_codes_are_stripped_from_streams_and_tracebacks():
    error = {"output_type": "error", "ename": "ValueError", "evalue": "bad",
             "traceback": ["\x1b[0;31mValueError\x1b[0m: bad"]}
    from nbformat import from_dict

    nb = notebook(code("print(colour)", [stream(ANSI_TEXT + "\n"), from_dict(error)]))
    body = body_of(render(nb)[0])
    assert "ERROR: green text" in body and "ValueError: bad" in body
    assert "\x1b" not in body


def test_code_fence_is_longer_than_any_fence_inside():
    nb = notebook(code('doc = """\n```python\nx = 1\n```\n"""', []))
    body = body_of(render(nb)[0])
    assert '````python\ndoc = """\n```python\nx = 1\n```\n"""\n````' in body


def test_provenance_output_becomes_the_footer_and_its_cell_goes():
    from mvnb.publish import Provenance

    record = Provenance(mvnb="0.1.0", qemu="7.2.22", gdb="13.1", guest="debian-cloud-x",
                        guest_version="6.1.0-56", date="2025-03-01T10:00:00+00:00")
    nb = notebook(code("mvnb.publish.provenance(vm)", [display(record._repr_mimebundle_())]),
                  code("print('last')", [stream("last\n")]))
    body = body_of(render(nb)[0])
    assert "provenance(vm)" not in body and "mvnb-provenance/1" not in body
    assert body.rstrip().endswith(
        '<p class="mvnb-provenance"><small>Ran on 2025-03-01 with mvnb 0.1.0, QEMU 7.2.22, '
        "GDB 13.1, guest debian-cloud-x (6.1.0-56).</small></p>")
    no_footer = body_of(render(nb, provenance_footer=False)[0])
    assert "mvnb-provenance" not in no_footer and "last" in no_footer


def test_markdown_attachment_and_local_image_are_placed(tmp_path: Path):
    png = figure_png()
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "setup.png").write_bytes(base64.b64decode(png))
    cell = markdown("![diagram](attachment:diagram.png) and ![setup](figs/setup.png) "
                    "and ![gone](figs/missing.png)")
    cell["attachments"] = {"diagram.png": {"image/png": png}}
    redactor = Redactor.default(home="", cache="", user="", host="", tmpdirs=())
    resources = {"mvnb": {"redactor": redactor, "links": "liquid", "date": WHEN,
                          "notebook_dir": str(tmp_path)}}
    text, resources = PostExporter().from_notebook_node(notebook(cell), resources)
    assert "![diagram]({{ '/assets/img/posts/a-title-with-a-colon/md1_diagram.png' | " \
           "relative_url }})" in text
    assert "md1_setup.png" in text and "![gone](figs/missing.png)" in text
    assert set(resources["outputs"]) == {"md1_diagram.png", "md1_setup.png"}
    assert any("figs/missing.png" in n for n in resources["mvnb"]["notes"])


def test_jupyter_nbconvert_finds_the_exporter_by_its_entry_point(tmp_path: Path):
    """The entry point from pyproject.toml, in a dist-info of its own, as pip would write it."""
    import os
    import subprocess
    import sys
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    target = pyproject["project"]["entry-points"]["nbconvert.exporters"]["mvnb_post"]
    dist = tmp_path / "path" / "mvnb_entry_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mvnb-entry-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[nbconvert.exporters]\nmvnb_post = {target}\n")
    nb = notebook(code("# Counts\nplot()", [display({"image/png": figure_png(2, 1)})]),
                  title="Preview: by nbconvert")
    from publish_notebooks import write

    write(nb, tmp_path / "preview.ipynb")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path / "path"), str(Path(__file__).parents[1]),
         os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "mvnb_post",
                           "preview.ipynb"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "preview.md").read_text()
    assert 'title: "Preview: by nbconvert"' in text
    assert "![Counts](preview_files/cell1_0.png)" in text
    assert (tmp_path / "preview_files" / "cell1_0.png").stat().st_size > 0


def test_a_multiindex_frame_stays_html_that_kramdown_leaves_alone():
    import pandas as pd

    frame = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")]))
    nb = notebook(code("frame", [result({"text/html": frame._repr_html_(),
                                         "text/plain": repr(frame)})]))
    body = body_of(render(nb)[0])
    assert '<div class="mvnb-output" markdown="0">' in body and 'colspan="2"' in body


def test_latex_output_becomes_a_display_math_block():
    nb = notebook(code("Math(r'\\frac{a_1}{b}')",
                       [display({"text/latex": "$$\\frac{a_1}{b}$$",
                                 "text/plain": "<IPython.core.display.Math object>"})]))
    text, _ = render(nb)
    assert "math: true" in text.split("\n---\n")[0]
    assert "\n$$\n\\frac{a_1}{b}\n$$\n" in body_of(text)
    assert "IPython.core.display" not in text
