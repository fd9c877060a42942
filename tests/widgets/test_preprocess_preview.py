import numpy as np
import pandas as pd
import pytest

from nodulekit.data import Scan
from nodulekit.preprocess import WINDOWS


@pytest.fixture
def scan() -> Scan:
    array = np.full((12, 24, 32), -1000, np.int16)
    array[:, 2:22, 2:30] = 40  # body
    array[2:10, 6:18, 5:14] = -850  # right lung
    array[2:10, 6:18, 18:27] = -850  # left lung
    array[5, 10, 9] = 60  # a vessel
    return Scan(array, (-16.0, -12.0, 0.0), (1.0, 1.0, 2.0), seriesuid="1.2.3")


def test_widgets_import_lazily():
    import nodulekit.widgets as w

    assert "PreprocessPreview" in w.__all__ and "PreprocessPreview" in dir(w)


def test_controls_redraw_the_image(scan):
    from nodulekit.widgets import PreprocessPreview

    w = PreprocessPreview(scan)
    first = w.images["original"].copy()
    assert first.shape == (24, 32, 3) and bytes(w.original_image.value).startswith(b"\x89PNG")

    w.slice_slider.value = 0  # a slice without lungs
    assert not np.array_equal(w.images["original"], first)

    w.slice_slider.value = 5
    lung_grey = w.images["original"][10, 7, 0]
    w.preset.value = "mediastinum"  # lungs go black in a mediastinal window
    assert (w.level.value, w.width.value) == tuple(int(v) for v in WINDOWS["mediastinum"])
    assert w.images["original"][10, 7, 0] == 0 < lung_grey

    w.level.value = -850  # a free level: preset shows "custom"
    assert w.preset.value == "custom"
    assert w.window == (-850.0, 400.0)
    assert w.images["original"][10, 7, 0] == 128

    assert set(w.timings_ms) >= {"original"}


def test_mask_overlay_is_computed_once_and_drawn(scan, monkeypatch):
    import nodulekit.widgets.preprocess_preview as module

    calls = []
    real = module.lung_mask
    monkeypatch.setattr(module, "lung_mask", lambda s: (calls.append(1), real(s))[1])
    w = module.PreprocessPreview(scan)
    w.slice_slider.value = 5
    plain = w.images["original"].copy()
    w.show_mask.value = True
    tinted = w.images["original"]
    assert tinted[10, 8, 0] > tinted[10, 8, 1]  # inside a lung: tinted red
    assert np.array_equal(tinted[0], plain[0])  # outside the body: unchanged
    w.slice_slider.value = 6
    w.show_mask.value = False
    w.show_mask.value = True
    assert calls == [1]
    given = np.zeros(scan.shape, bool)
    w2 = module.PreprocessPreview(scan, lung_mask=given)
    w2.show_mask.value = True
    assert calls == [1]
    with pytest.raises(ValueError, match="lung_mask shape"):
        module.PreprocessPreview(scan, lung_mask=given[:2])


def test_resampled_view_and_candidate_crop(scan):
    from nodulekit.widgets import PreprocessPreview

    candidates = pd.DataFrame(
        {
            "seriesuid": ["1.2.3", "9.9.9", "1.2.3"],
            "coordX": [-7.0, 0.0, 500.0],
            "coordY": [-2.0, 0.0, 0.0],
            "coordZ": [10.0, 0.0, 10.0],
            "class": [1, 0, 0],
        }
    )
    w = PreprocessPreview(scan, candidates=candidates, size_mm=8.0, shape_zyx=(8, 8, 8))
    assert len(w.candidate.options) == 3  # none + the two rows of this series
    assert "resampled" not in w.images
    w.show_resampled.value = True
    assert w.images["resampled"].shape == (24, 32, 3)  # 1 mm in-plane already
    assert w.resampled.spacing == (1.0, 1.0, 1.0) and w.resampled.shape[0] == 24
    w.candidate.value = 0
    assert w.slice_slider.value == 5  # jumped to the candidate's slice (z = 10 mm)
    crop_rgb = w.images["crop"]
    assert crop_rgb.shape[0] == 8 * 4 and w.crop_image.layout.display is None
    # the crop box is drawn on the original slice
    assert (w.images["original"] == (80, 200, 255)).all(axis=2).any()
    w.candidate.value = 1  # outside the scan: padded crop, no crash
    assert "100%" in w.status.value
    w.candidate.value = -1
    assert w.crop_image.layout.display == "none"
