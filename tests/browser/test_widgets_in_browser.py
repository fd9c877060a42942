"""The widgets as a person sees them: JupyterLab in headless Chromium runs notebooks 01 and 02
(at CI parameters) and we look at the page: every widget renders, sliders and window presets
change the picture, a click in the nodule table moves to the nodule's slice, the 3D view draws.

Needs Debian's Chromium (``apt-get install chromium``); skips, saying so, where it is missing
(and ``.ci/run`` fails in CI when these tests skipped). Screenshots go to
``$NODULEKIT_ARTIFACTS/screenshots/``; ``NODULEKIT_UPDATE_SCREENSHOT=1`` also refreshes the
README's ``docs/images/scan_browser.png``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.browser.jupyterlab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    changed,
    jupyterlab,
    page_problems,
    pixels,
    run_all_cells,
    save_small_png,
    wait_for_widgets,
    wait_until_changed,
)
from tests.notebooks.runner import CI_PARAMETERS, ROOT, artifacts_dir, copy_notebooks

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` "
        "(the browser tests never download a browser)",
    ),
]
README_SCREENSHOT = ROOT / "docs" / "images" / "scan_browser.png"
ZYX = re.compile(r"zyx\s+\((\d+),\s*(\d+),\s*(\d+)\)")  # \s: the page uses no-break spaces


@pytest.fixture(scope="module")
def screenshots() -> Path:
    folder = artifacts_dir() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a copy of the notebooks (CI parameters written in) and a small synthetic set."""
    import papermill

    from nodulekit.data.synthetic import make_synthetic_luna16

    work = copy_notebooks(tmp_path_factory.mktemp("lab-notebooks"))
    make_synthetic_luna16(work / "nodulekit-data" / "synthetic", n_scans=2, workers=2,
                          progress=False)  # fmt: skip
    for name in ("01_exploring_scans.ipynb", "02_preprocessing.ipynb"):
        if (work / name).is_file():
            papermill.execute_notebook(str(work / name), str(work / name), prepare_only=True,
                                       parameters=CI_PARAMETERS.get(name, {}),
                                       kernel_name="python3", progress_bar=False)  # fmt: skip
    home = tmp_path_factory.mktemp("lab-home")
    log = artifacts_dir() / "jupyterlab.log"
    with jupyterlab(work, home, log) as url:
        yield url, work


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_and_run(chromium, lab, name: str, screenshots: Path):
    url, work = lab
    if not (work / name).is_file():
        pytest.fail(f"notebooks/{name} is missing")
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(url.format(path=name))
    try:
        run_all_cells(page)
        wait_for_widgets(page)
    finally:
        page.screenshot(path=str(screenshots / f"{Path(name).stem}_run_all.png"), full_page=True)
    return page


def drag_slider(page, slider, dx: float) -> None:
    handle = slider.locator(".noUi-handle")
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=8)
    page.mouse.up()


def readout(slider) -> int:
    return int(slider.locator(".widget-readout").inner_text().strip())


def test_scan_browser_in_chromium(chromium, lab, screenshots):
    page = open_and_run(chromium, lab, "01_exploring_scans.ipynb", screenshots)
    assert not page_problems(page), page_problems(page)
    browser = page.locator(".nk-scan-browser")
    assert browser.count() == 1, "notebook 01 shows one scan browser"
    axial = browser.locator(".nk-axial-image")
    slider = browser.locator(".nk-axial-slider")

    # moving the axial slider changes the axial image
    start_z = readout(slider)
    before = pixels(axial)
    drag_slider(page, slider, -60)
    moved = wait_until_changed(axial, before)
    assert readout(slider) != start_z, "dragging the axial slider did not move it"
    assert changed(before, moved), "the axial image did not change with the slider"
    page.screenshot(path=str(screenshots / "01_slider_moved.png"))

    # a window preset changes the grey levels: a different picture again
    browser.locator(".nk-window-preset button", has_text="bone").click()
    boned = wait_until_changed(axial, moved)
    assert changed(moved, boned), "the 'bone' preset did not change the axial image"
    assert changed(before, boned)
    # bone shows most of the lung black: the mean grey level drops
    assert boned.mean() < moved.mean(), "the bone window should darken the lungs"

    # a click on a nodule in the table moves every plane to its voxel
    options = browser.locator(".nk-nodule-table select option")
    texts = options.all_inner_texts()
    targets = [(i, tuple(map(int, ZYX.search(t).groups()))) for i, t in enumerate(texts)
               if ZYX.search(t)]  # fmt: skip
    assert targets, f"the nodule table shows no voxel indices: {texts}"
    row, zyx = next(((i, z) for i, z in targets if z[0] != readout(slider)), targets[0])
    before = pixels(axial)
    options.nth(row).click()
    page.wait_for_function(
        "([sel, z]) => document.querySelector(sel).innerText.trim() === String(z)",
        arg=[".nk-axial-slider .widget-readout", zyx[0]],
        timeout=15_000,
    )
    assert readout(browser.locator(".nk-coronal-slider")) == zyx[1]
    assert readout(browser.locator(".nk-sagittal-slider")) == zyx[2]
    # the probe line is redrawn after the sliders moved: wait for it (a busy machine lags)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(
            "([sel, text]) => document.querySelector(sel).innerText.includes(text)",
            arg=[".nk-probe", f"{zyx}"],
            timeout=15_000,
        )
    probe = browser.locator(".nk-probe").inner_text()
    assert f"{zyx}" in probe, f"the probe should show voxel {zyx}: {probe}"

    # the 3D view (switched on by the notebook) draws something
    view = browser.locator(".nk-3d-view")
    view.scroll_into_view_if_needed()
    rgb = pixels(view)
    assert rgb.shape[0] > 50 and rgb.shape[1] > 50, f"the 3D view is {rgb.shape[:2]} pixels"
    assert rgb.std() > 10 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50, "3D view blank"

    # the picture for the README: lung window, on the nodule
    browser.locator(".nk-window-preset button", has_text="lung").click()
    wait_until_changed(axial, boned)
    assert not page_problems(page), page_problems(page)
    page.set_viewport_size({"width": 1400, "height": 3000})  # the whole widget, unclipped
    browser.scroll_into_view_if_needed()
    png = browser.screenshot()
    size = save_small_png(png, screenshots / "scan_browser.png")
    assert size < 300_000
    if os.environ.get("NODULEKIT_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshots / "scan_browser.png", README_SCREENSHOT)
    page.close()


def test_preprocess_preview_in_chromium(chromium, lab, screenshots):
    page = open_and_run(chromium, lab, "02_preprocessing.ipynb", screenshots)
    assert not page_problems(page), page_problems(page)
    preview = page.locator(".nk-preprocess-preview")
    assert preview.count() >= 1, "notebook 02 shows no PreprocessPreview"
    preview = preview.first
    image = preview.locator(".nk-original-image").first
    slider = preview.locator(".nk-slice-slider").first
    before = pixels(image)
    drag_slider(page, slider, -60)
    moved = wait_until_changed(image, before)
    assert changed(before, moved), "the preview did not change with its slice slider"
    assert not page_problems(page), page_problems(page)
    preview.screenshot(path=str(screenshots / "preprocess_preview.png"))
    page.close()
