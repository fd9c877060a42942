"""A private JupyterLab server on 127.0.0.1 and helpers to drive it with Playwright in Debian's
Chromium (never a downloaded browser). Used by the browser tests."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

CHROMIUM = Path(os.environ.get("NODULEKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: user settings that keep JupyterLab off the network and render every cell (no windowing)
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(root_dir: Path, home: Path, log_path: Path) -> Iterator[str]:
    """Run JupyterLab on ``root_dir``; yield its base URL with the token (``...?token=``)."""
    for name, values in LAB_SETTINGS.items():
        path = home / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    command = [
        str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI often run as root
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
            return True

    with running_server("JupyterLab", command, env=env, cwd=root_dir, log_path=log_path,
                        ready=answers, timeout_s=60):  # fmt: skip
        yield f"{url}/lab/tree/{{path}}?token={token}&reset"


@contextlib.contextmanager
def running_server(
    name: str,
    command: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    ready,
    timeout_s: float,
) -> Iterator[None]:
    """Start ``command`` (output to ``log_path``), wait until ``ready()`` returns True (an
    ``OSError`` counts as not yet) for at most ``timeout_s``, and stop it after the block."""
    log = log_path.open("w")
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{name} exited early; see {log_path}")
            with contextlib.suppress(OSError):
                if ready():
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not answer in {timeout_s:g} s; see {log_path}")
            time.sleep(0.5)
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def run_all_cells(page, *, timeout_s: float = 240) -> None:
    """Wait for the kernel, run every cell, and wait until none is queued or running."""
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        " && window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayStatus === 'idle'",
        timeout=90_000,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            const status = window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayStatus;
            return prompts.length > 0 && status === 'idle'
                && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=timeout_s * 1000,
        polling=500,
    )


def wait_for_widgets(page, *, timeout_s: float = 60) -> None:
    """Wait until no widget placeholder says 'Loading widget...'."""
    page.wait_for_function(
        "() => !document.body.innerText.includes('Loading widget...')"
        " && document.querySelectorAll('.jupyter-widgets').length > 0",
        timeout=timeout_s * 1000,
        polling=500,
    )


def page_problems(page) -> list[str]:
    """What a person would see go wrong: widget errors, tracebacks, error boxes."""
    text = page.inner_text(".jp-Notebook")
    found = [m for m in ("Error displaying widget", "Loading widget...") if m in text]
    found += [
        f"traceback in output: {t[-600:]}"
        for t in page.locator(".jp-OutputArea-output").all_inner_texts()
        if "Traceback (most recent call last)" in t
    ]
    found += [f"widget error box: {t}" for t in page.locator(".nk-error").all_inner_texts() if t]
    return found


def pixels(locator) -> np.ndarray:
    """The element as the screen shows it, an RGB array."""
    from PIL import Image

    locator.scroll_into_view_if_needed()
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"), dtype=np.int16)


def changed(before: np.ndarray, after: np.ndarray, *, min_fraction: float = 0.002) -> bool:
    """Whether two screenshots differ in more than ``min_fraction`` of their pixels."""
    if before.shape != after.shape:
        return True
    return float((np.abs(before - after).max(axis=-1) > 8).mean()) > min_fraction


def wait_until_changed(
    locator, before: np.ndarray, *, timeout_s: float = 15, settle_s: float = 0.5
) -> np.ndarray:
    """Screenshots of ``locator`` until it differs from ``before`` (the kernel answered), then,
    after ``settle_s`` for continuous updates to settle, the last one."""
    deadline = time.monotonic() + timeout_s
    after = pixels(locator)
    while not changed(before, after) and time.monotonic() < deadline:
        time.sleep(0.3)
        after = pixels(locator)
    if settle_s:
        time.sleep(settle_s)
        after = pixels(locator)
    return after


def save_small_png(png: bytes, path: Path, *, max_bytes: int = 300_000) -> int:
    """Save a screenshot as a palette PNG (halving its size until under ``max_bytes``)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    while True:
        buffer = io.BytesIO()
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(
            buffer, format="PNG", optimize=True
        )
        if buffer.tell() <= max_bytes or image.width < 400:
            break
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.tell()
