"""Small notebooks for the publish tests, built with nbformat and real libraries.

Outputs are what the libraries themselves produce: pandas' ``_repr_html_``, a matplotlib
figure rendered by Agg, ipywidgets' mime bundle and embed state, tqdm's own text and its
notebook widget. Only the GDB transcript is recorded text (a unit test needs no guest).
"""

from __future__ import annotations

import base64
import io
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

MATH_INLINE = r"$x_1 + y_2$"
MATH_DISPLAY = r"\sum_{i=0}^{n} a_i b_i"
LIQUID_CODE = 'template = "{{ page.title }} {% if x %}yes{% endif %}"\nprint(template)'
LIQUID_OUTPUT = "{{ page.title }} {% if x %}yes{% endif %}"
GDB_OUTPUT = "rip            0xffffffff81a4c3b0  0xffffffff81a4c3b0 <lapic_cal_handler>\n"
ANSI_TEXT = "\x1b[1;31mERROR\x1b[0m: \x1b[32mgreen\x1b[0m text"


def figure_png(width: float = 4, height: float = 3) -> str:
    """A real matplotlib figure, as a notebook stores it (base64 PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.plot([0, 1, 2, 3], [250_000, 249_731, 249_371, 250_165])
    ax.set_title("LAPIC counts per tick")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def figure_svg() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(["a", "b"], [1, 2])
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()


def dataframe_bundle() -> dict[str, str]:
    import pandas as pd

    frame = pd.DataFrame({"level": [0, 1],
                          "function": ["lapic_cal_handler", "calibrate_APIC_clock"],
                          "address": [0xFFFFFFFF81A4C3B0, 0xFFFFFFFF81A4D000]})
    return {"text/html": frame._repr_html_(), "text/plain": repr(frame)}


def slider_bundle(with_html: bool) -> dict[str, Any]:
    """An ipywidgets IntSlider's display bundle; mvnb's widgets add a text/html."""
    import ipywidgets

    slider = ipywidgets.IntSlider(value=3, description="loops")
    bundle = dict(slider._repr_mimebundle_())
    if with_html:
        import mvnb.regs
        import mvnb.widgets

        bundle["text/html"] = mvnb.widgets.register_html(mvnb.regs.decode("LVT_TIMER",
                                                                          0x000300EC))
    return bundle


def tqdm_stream_text(total: int = 20) -> str:
    """What tqdm writes to a stream: every state, each after a carriage return."""
    from tqdm import tqdm

    buf = io.StringIO()
    for _ in tqdm(range(total), file=buf, mininterval=0, miniters=1, ascii=False,
                  desc="sampling"):
        pass
    return buf.getvalue()


def tqdm_widget() -> tuple[dict[str, Any], dict[str, Any]]:
    """A finished tqdm.notebook bar: (its display bundle, the notebook's widget state)."""
    import ipywidgets.embed
    from tqdm.notebook import tqdm as tqdm_notebook

    bar = tqdm_notebook(total=12, desc="boots", display=False)
    initial = dict(bar.container._repr_mimebundle_())  # what the notebook stored at display
    for _ in range(12):
        bar.update(1)
    bar.close()
    state = ipywidgets.embed.dependency_state([bar.container])
    return initial, {"state": state, "version_major": 2, "version_minor": 0}


def display(bundle: dict[str, Any], metadata: dict[str, Any] | None = None) -> Any:
    return new_output("display_data", data=bundle, metadata=metadata or {})


def result(bundle: dict[str, Any], count: int = 1) -> Any:
    return new_output("execute_result", data=bundle, execution_count=count)


def stream(text: str, name: str = "stdout") -> Any:
    return new_output("stream", name=name, text=text)


def code(source: str, outputs: list[Any] | None = None, tags: list[str] | None = None,
         **metadata: Any) -> Any:
    cell = new_code_cell(source, outputs=outputs or [])
    if tags:
        cell.metadata["tags"] = tags
    cell.metadata.update(metadata)
    return cell


def markdown(source: str, tags: list[str] | None = None) -> Any:
    cell = new_markdown_cell(source)
    if tags:
        cell.metadata["tags"] = tags
    return cell


def notebook(*cells: Any, title: str = "A title: with a colon", **publish: Any) -> Any:
    """A Python notebook whose first cell is its ``# title``."""
    nb = new_notebook(cells=[markdown(f"# {title}\n\nFirst paragraph."), *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    if publish:
        nb.metadata["mvnb"] = {"publish": publish}
    nbformat.validate(nb)
    return nb


def write(nb: Any, path: Any) -> Any:
    nbformat.write(nb, str(path))
    return path
