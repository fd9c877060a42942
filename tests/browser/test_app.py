"""`nodulekit app` as a person sees it: the command serves the page (Voilà) on 127.0.0.1, headless
Chromium opens it, no code is on screen, a click on a finding moves the scan to its slice,
the trust status is in words, and the report downloads as a self-contained HTML file.

Needs Debian's Chromium (skips, saying so, where it is missing). The screenshot goes to
``$NODULEKIT_ARTIFACTS/screenshots/app.png``; ``NODULEKIT_UPDATE_SCREENSHOT=1`` also refreshes
the README's ``docs/images/app.png``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.browser.jupyterlab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    changed,
    free_port,
    pixels,
    running_server,
    save_small_png,
)
from tests.notebooks.runner import ROOT, artifacts_dir

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` "
        "(the browser tests never download a browser)",
    ),
    pytest.mark.skipif(
        __import__("importlib.util").util.find_spec("voila") is None,
        reason="Voilà is not installed: pip install 'nodulekit[app]'",
    ),
]
README_SCREENSHOT = ROOT / "docs" / "images" / "app.png"


def trained_checkpoint(folder: Path) -> Path:
    """A tiny CNN trained in seconds on spheres vs tubes (16^3 crops of 32 mm)."""
    import torch

    from nodulekit.train.checkpoint import save_checkpoint
    from tests.explain.conftest import spheres_and_tubes, train_tiny

    torch.set_num_threads(1)
    model = train_tiny(spheres_and_tubes(32, seed=1), steps=30)
    config = {"model": "cnn", "model_options": {"channels": [4, 8]}, "crop_size_mm": 32.0,
              "crop_shape": [16, 16, 16], "data": "synthetic"}  # fmt: skip
    return save_checkpoint(folder / "best.pt", model=model, epoch=0, config=config)


@contextlib.contextmanager
def app_server(root: Path, checkpoint: Path, home: Path, log_path: Path):
    """``nodulekit app ROOT --checkpoint CKPT`` on a free port; yields its URL."""
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_DATA_DIR_EXTRA": str(home / "data"),
        "IPYTHONDIR": str(home / "ipython"),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "nodulekit.cli", "app", str(root), "--checkpoint",
               str(checkpoint), "--port", str(port), "--reports", str(home / "reports")]  # fmt: skip

    def listens() -> bool:
        with socket.create_connection(("127.0.0.1", port), 1):
            return True

    with running_server("nodulekit app", command, env=env, cwd=home, log_path=log_path,
                        ready=listens, timeout_s=90):  # fmt: skip
        yield f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from nodulekit.data.synthetic import make_synthetic_luna16

    base = tmp_path_factory.mktemp("app")
    root = make_synthetic_luna16(base / "data", n_scans=2, size="tiny", progress=False)
    checkpoint = trained_checkpoint(base / "run")
    home = base / "home"
    home.mkdir()
    log = artifacts_dir() / "app.log"
    with app_server(root, checkpoint, home, log) as url:
        yield url, root, checkpoint, log


def expected_slices(root: Path, checkpoint: Path) -> list[int]:
    """The axial slice (LPS) of each finding of the first scan, as the library ranks them."""
    from nodulekit.data import Luna16
    from nodulekit.evaluate.scoring import load_model
    from nodulekit.preprocess.orient import reorient_to_lps
    from nodulekit.report.findings import findings_table, marks_of_scan

    luna = Luna16(root, warn_missing=False)
    scan = luna.load(str(luna.scans["seriesuid"].iloc[0]))
    marks = marks_of_scan(scan, model_and_config=load_model(checkpoint, device="cpu"), device="cpu")
    findings = findings_table(scan, marks, top=10)
    lps = reorient_to_lps(scan)
    points = findings[["coordX", "coordY", "coordZ"]].to_numpy(float)
    return [int(np.rint(np.asarray(lps.world_to_voxel(p)).ravel()[0])) for p in points]


def test_app_in_chromium(served):
    from playwright.sync_api import sync_playwright

    url, root, checkpoint, log = served
    shots = artifacts_dir() / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1250})
        page.set_default_timeout(30_000)
        try:
            page.goto(url, timeout=240_000)
            app = page.locator(".nk-report-app")
            app.wait_for(timeout=240_000)
            findings = app.locator(".widget-select select")
            page.wait_for_function(
                "() => document.querySelectorAll('.nk-report-app .widget-select option').length"
                " > 1 && document.querySelectorAll('.nk-report-app img').length >= 2",
                timeout=240_000,
            )
            # a page, not a notebook: no code cell, no editor, no source text
            editors = ".cm-editor, .CodeMirror, .jp-InputArea-editor, .jp-InputPrompt"
            assert page.locator(editors).count() == 0
            assert "from_environment" not in page.content()
            text = page.inner_text("body")
            assert "from_environment" not in text and "import" not in text
            assert "not a medical device" in text
            # the trust, in words: the seeded checkpoint's map passes the seeded sanity check
            assert "Not checked" not in text and "Caution" not in text
            assert "Sanity check passed" in text
            # a click on a finding moves the scan to its slice
            slices = expected_slices(root, checkpoint)
            k = next(i for i, z in enumerate(slices) if z != slices[0])
            slider = app.locator(".widget-hslider").filter(has_text="axial slice")
            readout = slider.locator(".widget-readout")
            assert int(readout.inner_text().strip()) == slices[0]
            scan_image = app.locator("img").first
            before = pixels(scan_image)
            findings.select_option(index=k)
            page.wait_for_function(
                "([el, z]) => el.innerText.trim() === String(z)",
                arg=[readout.element_handle(), slices[k]], timeout=30_000,
            )  # fmt: skip
            time.sleep(1.0)
            assert changed(before, pixels(scan_image))
            save_small_png(app.screenshot(), shots / "app.png")
            # the report, downloaded from the page, is the whole self-contained file
            app.get_by_role("button", name="Make the report").click()
            link = app.locator("a.nk-download")
            link.wait_for(timeout=180_000)
            href = link.get_attribute("href")
            assert href.startswith("data:text/html;base64,")
            report = base64.b64decode(href.split(",", 1)[1]).decode("utf-8")
            assert "Research and teaching software, not a medical device" in report
            assert report.count('id="finding-') >= 1 and "<script" not in report
        finally:
            page.screenshot(path=str(shots / "app_last.png"), full_page=True)
            browser.close()
    assert "127.0.0.1" in log.read_text(encoding="utf-8")  # bound to this machine by default
    if os.environ.get("NODULEKIT_UPDATE_SCREENSHOT"):
        shutil.copyfile(shots / "app.png", README_SCREENSHOT)
