"""Progress bars (``tqdm.auto``) whose saved notebook output shows how they ended.

tqdm's notebook bar displays its widget once, and the output's ``text/plain`` is the bar as
it was at that moment (``0/27``); with ``leave=False`` the widget is closed at the end. A
saved notebook, nbval and a published post have no live widgets, so they showed ``0/27``
for a run that finished. Found by executing a notebook with nbclient (2026-11): the widget
state held the final value; the output's text did not. This bar is displayed with a
display id and, when it closes, replaces its output with its final state: the widget
with its final text (``leave=True``, or a run that stopped short), else the final line of
text alone. Outside a notebook it is ``tqdm.auto.tqdm`` unchanged.
"""

from __future__ import annotations

import warnings
from typing import Any

from tqdm.auto import tqdm as _auto

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # TqdmExperimentalWarning on import
    from tqdm.notebook import tqdm as _notebook

__all__ = ["tqdm"]


if issubclass(_auto, _notebook):

    class tqdm(_auto):  # type: ignore[no-redef]
        """``tqdm.auto.tqdm`` in a notebook, ending with its final state in the output."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            show = kwargs.pop("display", True)
            self._handle: Any = None
            super().__init__(*args, display=False, **kwargs)
            if show and not self.disable and self.delay <= 0:
                from IPython.display import display

                self._handle = display(self.container, display_id=True)
                self.displayed = True

        def close(self) -> None:
            handle, self._handle = getattr(self, "_handle", None), None
            was_open = not self.disable
            super().close()
            if handle is None or not was_open:
                return
            short = bool(self.total) and self.n < self.total
            if self.leave or short:
                handle.update(self.container)  # the widget, its text now the final count
            else:  # the widget is closed: keep the final line as text
                handle.update({"text/plain": self.format_meter(**self.format_dict)}, raw=True)

else:
    tqdm = _auto  # type: ignore[misc]
