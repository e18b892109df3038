"""The LVT Timer widget in a real JupyterLab, in headless Debian chromium driven by Playwright.

The test starts JupyterLab on 127.0.0.1 (a free port, a random token, every Jupyter
directory private to the test), opens a notebook that shows
``BitfieldWidget(decode("LVT_TIMER", 0x000300ec), editable=True)``, runs it on a live
kernel, clicks the mask bit (bit 16, Intel SDM Vol. 3A, Order Number 253668-068US,
Figure 10-8) and checks that the value box and the mask field follow. The screenshot is
kept in ``test-artifacts/``. Needs Debian's ``chromium`` and the ``playwright`` and
``jupyterlab`` Python packages (never ``playwright install``: it downloads a browser).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT = 90.0
CELL = """\
import mvnb.regs, mvnb.widgets
widget = mvnb.widgets.BitfieldWidget(mvnb.regs.decode("LVT_TIMER", 0x000300ec), editable=True)
widget"""


def _require() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    for module, package in (("playwright.sync_api", "playwright"), ("jupyterlab", "jupyterlab")):
        try:
            __import__(module)
        except ImportError:
            pytest.skip(f"Python package {package} is missing: pip install {package}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quiet_lab(config_dir: Path) -> None:
    """No "get notified about Jupyter news?" prompt over the widget in the screenshot."""
    labconfig = config_dir / "labconfig"
    labconfig.mkdir(parents=True)
    disabled = {"@jupyterlab/apputils-extension:announcements": True}
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}))


def _notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(CELL))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


class JupyterLab:
    """A JupyterLab server of this test's own; ``url`` is ready when the constructor returns."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.lines: list[str] = []
        ready = threading.Event()
        _quiet_lab(root / ".jupyter")
        env = {**os.environ,
               "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
               "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
               "JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces"),
               "JUPYTER_PLATFORM_DIRS": "1"}
        argv = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                f"--port={self.port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.news_url=None"]
        if os.geteuid() == 0:  # containers and CI runners often run as root
            argv.append("--allow-root")
        self.process = subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True)
        marker = f"http://127.0.0.1:{self.port}/"
        seen: list[bool] = []

        def drain() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line)
                if marker in line:
                    seen.append(True)
                    ready.set()
            ready.set()  # the server ended: stop waiting

        self._reader = threading.Thread(target=drain, daemon=True)
        self._reader.start()
        if not ready.wait(TIMEOUT) or not seen:
            self.close()
            raise RuntimeError("JupyterLab did not start:\n" + "".join(self.lines[-30:]))
        self.url = marker

    def close(self) -> None:
        """Shut the server and its kernels down through the API; kill what is left."""
        if self.process.poll() is None:
            request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/shutdown",
                                             method="POST", data=b"",
                                             headers={"Authorization": f"token {self.token}"})
            try:
                urllib.request.urlopen(request, timeout=10).close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        for pid in _processes_using(self.root / ".runtime"):  # kernels left behind
            os.kill(pid, signal.SIGKILL)


def _processes_using(runtime: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(runtime) in cmdline:
                found.append(int(entry.name))
    return found


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[JupyterLab]:
    _require()
    _notebook(tmp_path / "lvt_timer.ipynb")
    server = JupyterLab(tmp_path)
    try:
        yield server
    finally:
        server.close()
    assert not _processes_using(tmp_path / ".runtime"), "a kernel outlived its server"


def test_click_the_mask_bit_in_a_real_browser(lab: JupyterLab) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT * 1000)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "widgets_browser_lvt_timer.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True, timeout=TIMEOUT * 1000)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT * 1000)
            page.goto(f"{lab.url}lab/tree/lvt_timer.ipynb?token={lab.token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            page.wait_for_function(
                "() => { const w = window.jupyterapp?.shell?.currentWidget;"
                " return w?.sessionContext?.session?.kernel?.status === 'idle'; }")
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            output = page.locator(".jp-OutputArea-output")
            value_box = output.locator(".widget-text input").first
            expect(value_box).to_have_value("0x000300ec")
            mask_bit = output.locator('button.widget-toggle-button[title^="bit 16\\A"]')
            expect(mask_bit).to_have_text("1")
            expect(output.get_by_text("mask=1 (masked)")).to_be_visible()
            mask_select = output.locator('select[title^="mask "]')
            expect(mask_select).to_have_value("masked (1)")
            mask_bit.click()
            expect(value_box).to_have_value("0x000200ec")
            expect(mask_bit).to_have_text("0")
            expect(output.get_by_text("mask=0 (not_masked)")).to_be_visible()
            expect(output.get_by_text("LVT_TIMER = 0x000200ec")).to_be_visible()
            expect(mask_select).to_have_value("not_masked (0)")
            page.screenshot(path=str(shot), full_page=True)
            kernels = page.evaluate(
                "window.jupyterapp.serviceManager.kernels.running().next().value?.id")
            assert kernels  # the cell ran on a live kernel of this server
        finally:
            browser.close()
    assert shot.stat().st_size > 0

