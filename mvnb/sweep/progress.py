"""A sweep's progress bar: runs finished out of all, with failed and running counts, and
the Dask dashboard's link when the scheduler serves one."""

from __future__ import annotations

from typing import Any

from .._progress import tqdm

__all__ = ["SweepProgress"]


class SweepProgress:
    """``tqdm`` over a sweep's runs; ``finished`` counts every run that ended (ok or not)."""

    def __init__(self, total: int, *, dashboard: str | None, enabled: bool = True) -> None:
        self.finished = self.failed = self.running = 0
        self.dashboard = dashboard
        self.bar: Any = tqdm(total=total, desc="sweep", unit="run", disable=not enabled,
                             dynamic_ncols=True)
        if dashboard and enabled:
            self.bar.write(f"Dask dashboard: {dashboard}")
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix_str(f"finished {self.finished}, failed {self.failed}, "
                                 f"running {self.running}", refresh=True)

    def done(self, ok: bool) -> None:
        """One run ended."""
        self.finished += 1
        self.failed += 0 if ok else 1
        self.bar.update(1)
        self._show()

    def set_running(self, count: int) -> None:
        if count != self.running:
            self.running = count
            self._show()

    def close(self) -> None:
        self.running = 0
        self._show()
        self.bar.close()
