"""`ExplainExplorer` driven headlessly: every control changes the picture, maps are computed once."""

from __future__ import annotations

import html
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import nodulekit.explain.explorer as explorer_module
from nodulekit.explain import CandidateExplanations, attribute
from nodulekit.models import build_model
from nodulekit.widgets import ExplainExplorer
from tests.train.conftest import make_fake_cache

NO_IPYNIIVUE = (
    "ipyniivue (the offline 3D viewer) is not installed in this environment: "
    "`pip install ipyniivue` to test explain_3d"
)


def needs_ipyniivue() -> None:
    """Skip, saying why, where the 3D viewer is missing (a user's environment may lack it)."""
    pytest.importorskip("ipyniivue", reason=NO_IPYNIIVUE)


FAST = {"occlusion": {"window_vox": 8, "stride_vox": 8}, "integrated_gradients": {"n_steps": 4}}


@pytest.fixture
def explorer() -> ExplainExplorer:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cache = make_fake_cache(n_series=2, per_series=6, size=16)
    model = build_model("cnn", channels=(2, 4))
    return ExplainExplorer.from_cache(model, cache, method_options=FAST, method="saliency")


def test_candidates_are_listed_most_probable_first(explorer):
    probabilities = explorer.explanations.table["probability"].to_numpy()
    assert len(probabilities) == 12 and (np.diff(probabilities) <= 0).all()
    classes = explorer.explanations.table["class"].to_numpy()
    assert set(classes) == {0, 1}  # both kinds listed, so a swapped label would show
    for (label, _), p, k in zip(explorer.candidates.options, probabilities, classes, strict=True):
        kind = "nodule" if k == 1 else "non-nodule"
        assert label.startswith(f"p={p:.3f} {kind} | "), label


def test_each_control_changes_the_picture(explorer):
    before = explorer.image.value
    assert before[:4] == b"\x89PNG"
    explorer.method.value = "gradcam"
    after_method = explorer.image.value
    assert after_method != before
    explorer.slice_z.value = (explorer.slice_z.value + 3) % 16
    after_slice = explorer.image.value
    assert after_slice != after_method
    explorer.opacity.value = 1.0
    assert explorer.image.value != after_slice
    explorer.candidates.value = 5
    assert "probability" in explorer.info.value


def test_signed_methods_say_what_zero_means(explorer):
    explorer.method.value = "integrated_gradients"
    assert "0 (white) = no effect" in explorer.legend.value
    explorer.method.value = "saliency"
    assert "0 (dark) = no attribution" in explorer.legend.value


def test_each_map_is_computed_once_then_every_control_redraws_from_cache(explorer, monkeypatch):
    calls = []
    real = explorer_module.attribute
    monkeypatch.setattr(
        explorer_module, "attribute", lambda *a, **k: calls.append(a[2]) or real(*a, **k)
    )
    explorer.method.value = "gradcam"
    explorer.method.value = "saliency"  # cached at construction
    explorer.method.value = "gradcam"
    assert calls == ["gradcam"]
    for control, value in (
        (explorer.slice_y, 3), (explorer.slice_x, 9), (explorer.opacity, 0.8),
        (explorer.method, "saliency"), (explorer.slice_z, 2),
    ):  # fmt: skip
        control.value = value
    assert calls == ["gradcam"]  # redraws reuse the cached maps (no timing bound: busy cores)


def test_precomputed_maps_equal_maps_computed_one_by_one(explorer):
    explanations = explorer.explanations
    explanations.precompute("gradcam", [0, 1, 2])
    batched = [explanations.attribution(i, "gradcam").maps for i in range(3)]
    fresh = attribute(explanations.model, explanations.x([0, 1, 2]), "gradcam").maps
    np.testing.assert_allclose(np.concatenate(batched), fresh, rtol=1e-4, atol=1e-8)


def test_the_trust_status_is_beside_the_map_and_the_check_fills_it_in(explorer):
    assert "Not checked" in explorer.trust.value
    explorer.run_check()
    report = explorer.explanations.trust["saliency"]
    assert report.table["step"].iloc[-1] >= 3
    assert f"<b>saliency</b>: {html.escape(report.status)}" in explorer.trust.value
    assert "Not checked" not in explorer.trust.value


def test_a_nodule_row_gets_an_outline_note():
    cache = make_fake_cache(n_series=1, per_series=3, size=16)
    table = cache.index.assign(probability=[0.9, 0.2, 0.1])
    explanations = CandidateExplanations(
        build_model("cnn", channels=(2, 4)), table, crops=cache.crops
    )
    widget = ExplainExplorer(explanations, method="saliency")
    assert widget.explanations.table["class"].iloc[0] == 1  # k = 0 is a sphere
    assert "green circle: the annotated nodule" in widget.legend.value


def test_bad_input_is_refused():
    model = build_model("cnn", channels=(2, 4))
    with pytest.raises(ValueError, match=r"lacks the columns \['coordZ'\]"):
        CandidateExplanations(model, pd.DataFrame(columns=["seriesuid", "coordX", "coordY"]))
    cache = make_fake_cache(n_series=1, per_series=3, size=16)
    with pytest.raises(ValueError, match="unknown method 'lime'"):
        ExplainExplorer.from_cache(model, cache, method="lime")


@pytest.mark.sample
@pytest.mark.filterwarnings("ignore:.*scan\\(s\\) on disk")
def test_from_predictions_cuts_crops_from_the_sample_scan(sample_dir):
    from tests.conftest import SAMPLE_UID

    predictions = pd.DataFrame(
        {"seriesuid": [SAMPLE_UID] * 2, "coordX": [56.2, -60.0], "coordY": [86.3, 0.0],
         "coordZ": [-115.9, -150.0], "probability": [0.4, 0.8]}
    )  # fmt: skip
    widget = ExplainExplorer.from_predictions(
        build_model("cnn", channels=(2, 4)), predictions, sample_dir / "luna16-mini"
    )
    assert widget.explanations.table["probability"].tolist() == [0.8, 0.4]
    widget.candidates.value = 1
    assert "green circle" in widget.legend.value  # the 23.4 mm annotated nodule
    assert widget.explanations.crop(1).shape == (24, 24, 24)


def test_the_3d_view_holds_ct_heat_map_and_nodule_on_one_grid():
    needs_ipyniivue()
    import SimpleITK as sitk

    from nodulekit.data import Scan
    from nodulekit.explain import attribute
    from nodulekit.preprocess import crop, normalize_hu
    from nodulekit.widgets.explain_explorer import explain_3d, nifti_bytes

    array = np.full((40, 60, 60), -900, np.int16)
    array[18:23, 28:33, 28:33] = 40
    scan = Scan(array, origin=(-10.0, 5.0, 20.0), spacing=(1.0, 1.0, 2.0))
    centre = scan.voxel_to_world(np.array([20.0, 30.0, 30.0]))
    cut = crop(scan, centre, 32.0, (24, 24, 24))
    x = torch.from_numpy(normalize_hu(cut.array))[None, None]
    attribution = attribute(
        build_model("cnn", channels=(2, 4)), x, "integrated_gradients", crops=[cut], n_steps=4
    )
    nodules = pd.DataFrame({"coordX": [centre[0]], "coordY": [centre[1]], "coordZ": [centre[2]]})
    viewer = explain_3d(
        scan, center_xyz_mm=centre, attribution=attribution,
        nodules=nodules.assign(diameter_mm=6.0), region_mm=40.0,
    )  # fmt: skip
    names = [v.name for v in viewer.volumes]
    assert names == ["ct.nii", "attribution.nii", "nodules.nii"]
    assert viewer.volumes[1].colormap_negative == "winter"  # signed: both signs shown
    path = Path(tempfile.mkdtemp()) / "nodules.nii"
    path.write_bytes(viewer.volumes[2].data)
    mask = sitk.ReadImage(str(path))
    assert mask.GetSize() == (40, 40, 20)  # 40 mm at 1 x 1 x 2 mm
    assert mask.TransformPhysicalPointToIndex(tuple(centre)) == (20, 20, 10)
    voxels = sitk.GetArrayFromImage(mask)
    # a 6 mm sphere is 113 mm^3, about 57 voxels of 2 mm^3
    assert voxels[10, 20, 20] == 1 and 40 <= voxels.sum() <= 70
    assert nifti_bytes(np.zeros((2, 2, 2), np.float32), scan)[344:348] == b"n+1\0"


NOTEBOOK_CELLS = [
    """import numpy as np, pandas as pd, torch
from types import SimpleNamespace
from nodulekit.data import Scan
from nodulekit.explain import attribute
from nodulekit.models import build_model
from nodulekit.preprocess import crop, normalize_hu
from nodulekit.widgets import ExplainExplorer
from nodulekit.widgets.explain_explorer import explain_3d
array = np.full((40, 60, 60), -900, np.int16)
array[18:23, 28:33, 28:33] = 40
scan = Scan(array, origin=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 2.0))
centre = scan.voxel_to_world(np.array([20.0, 30.0, 30.0]))
cut = crop(scan, centre, 32.0, (24, 24, 24))
model = build_model("cnn", channels=(2, 4))
x = torch.from_numpy(normalize_hu(cut.array))[None, None]
attribution = attribute(model, x, "integrated_gradients", crops=[cut], n_steps=4)
nodules = pd.DataFrame({"coordX": [centre[0]], "coordY": [centre[1]], "coordZ": [centre[2]],
                        "diameter_mm": [8.0]})""",
    "explain_3d(scan, center_xyz_mm=centre, attribution=attribution, nodules=nodules, region_mm=40)",
    """index = pd.DataFrame({"seriesuid": "1.2", "coordX": [0.0, 1.0], "coordY": 0.0, "coordZ": 0.0,
                      "class": [1, 0], "diameter_mm": [8.0, np.nan]})
cache = SimpleNamespace(index=index, crops=np.stack([cut.array, cut.array[::-1]]).astype(np.int16))
ExplainExplorer.from_cache(model, cache, method="saliency")""",
]


@pytest.mark.browser
@pytest.mark.slow
def test_the_3d_view_and_the_explorer_draw_offline_in_jupyterlab(tmp_path):
    """JupyterLab in headless Chromium with every request off this machine refused: ipyniivue's
    bundled viewer draws the 3D view (WebGL through SwiftShader) and the explorer renders."""
    import time

    import nbformat

    from tests.browser.jupyterlab import (
        CHROMIUM,
        CHROMIUM_ARGS,
        changed,
        jupyterlab,
        page_problems,
        pixels,
        run_all_cells,
        wait_for_widgets,
        wait_until_changed,
    )

    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium`")
    needs_ipyniivue()
    from playwright.sync_api import sync_playwright

    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nbformat.write(notebook, work / "explain3d.ipynb")
    refused: list[str] = []

    def offline(route):
        if route.request.url.startswith("http://127.0.0.1"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    args = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"]
    args += ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
    with jupyterlab(work, home, tmp_path / "lab.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.route("**/*", offline)
            page.goto(url.format(path="explain3d.ipynb"))
            run_all_cells(page)
            wait_for_widgets(page)
            time.sleep(3)  # NiiVue draws after its volumes arrive
            assert not page_problems(page), page_problems(page)
            canvas = pixels(page.locator("canvas").first)
            assert canvas.std() > 10, "the 3D view is blank"
            # green nodule overlay drawn over the grey CT
            green = (canvas[..., 1] > 150) & (canvas[..., 0] < 100) & (canvas[..., 2] < 100)
            assert green.sum() > 20, "the nodule overlay is not drawn"
            explorer = page.locator(".nk-explain-explorer")
            assert explorer.count() == 1
            assert "Not checked" in explorer.locator(".nk-explain-trust").inner_text()
            image = explorer.locator(".nk-explain-image")
            before = pixels(image)
            assert before.std() > 10
            # a method change and the slice slider change the pixels in the page itself
            explorer.locator(".nk-explain-method select").select_option("gradcam")
            after_method = wait_until_changed(image, before, timeout_s=20, settle_s=0)
            assert changed(before, after_method), "choosing Grad-CAM did not change the map"
            handle = explorer.locator(".nk-explain-slice-z .noUi-handle")
            handle.scroll_into_view_if_needed()
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] - 40, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            after_slice = wait_until_changed(image, after_method, timeout_s=20, settle_s=0)
            assert changed(after_method, after_slice), "the axial slider did not change the picture"
        finally:
            browser.close()
    assert refused == [], f"requests off this machine: {refused[:5]}"


def test_without_ipyniivue_the_3d_test_skips_and_explain_3d_says_what_to_install(monkeypatch):
    from nodulekit.data import Scan
    from nodulekit.widgets.explain_explorer import explain_3d

    monkeypatch.setitem(sys.modules, "ipyniivue", None)  # as if not installed
    with pytest.raises(pytest.skip.Exception, match=r"ipyniivue .* is not installed"):
        needs_ipyniivue()
    scan = Scan(np.zeros((8, 8, 8), np.int16), origin=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ImportError, match=r"needs ipyniivue.*pip install ipyniivue"):
        explain_3d(scan, center_xyz_mm=(4.0, 4.0, 4.0), region_mm=4.0)
