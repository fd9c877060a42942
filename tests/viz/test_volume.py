"""The offline 3D view: lungs found, nodules drawn as spheres where they are, turning works."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nodulekit.data.scan import Scan
from nodulekit.viz.volume import prepare_volume, render_volume


@pytest.fixture
def chest() -> Scan:
    """A 2 mm body (0 HU cylinder) with two air lungs, in -1000 HU air; 40 x 48 x 48 voxels."""
    z, y, x = np.mgrid[0:40, 0:48, 0:48]
    array = np.full((40, 48, 48), -1000, np.int16)
    array[(y - 24) ** 2 + (x - 24) ** 2 < 22**2] = 0
    for cx in (14, 34):
        array[((y - 24) ** 2 + (x - cx) ** 2 < 7**2) & (z > 4) & (z < 36)] = -850
    return Scan(array, origin=(0, 0, 0), spacing=(2, 2, 2))


def _sphere_centroid(model, azimuth: float, nodule: pd.DataFrame) -> tuple[float, float]:
    """Centre (row, col) of the pixels the nodule changes, and check they are reddish."""
    without = render_volume(model, azimuth, size_px=96).astype(int)
    with_nodule = render_volume(model, azimuth, nodules=nodule, size_px=96).astype(int)
    changed = np.abs(with_nodule - without).max(axis=-1) > 30
    assert (with_nodule[changed, 0] > with_nodule[changed, 1]).mean() > 0.9  # red, not yellow
    rows, cols = np.nonzero(changed)
    return rows.mean(), cols.mean()


def test_lungs_are_the_enclosed_air(chest: Scan) -> None:
    model = prepare_volume(chest)
    assert model.voxel_mm == 2.0 and model.hu.shape == chest.shape  # already coarse: kept
    lung = model.lung > 0.5
    assert lung[20, 24, 14] and lung[20, 24, 34]  # inside each lung
    assert not lung[20, 24, 24] and not lung[20, 1, 1]  # body between them, outside air


def test_nodule_sphere_is_drawn_at_its_place_and_turns(chest: Scan) -> None:
    # a 10 mm nodule in the left lung (x index 34), half way up (z index 20)
    nodule = pd.DataFrame(
        {"coordX": [68.0], "coordY": [48.0], "coordZ": [40.0], "diameter_mm": [10.0]}
    )
    model = prepare_volume(chest)
    front = render_volume(chest, 0, nodules=nodule, size_px=96)  # 2 image pixels per voxel
    assert front.shape == (80, 96, 3) and front.dtype == np.uint8
    row, col = _sphere_centroid(model, 0, nodule)
    assert row == pytest.approx((40 - 1 - 20 + 0.5) * 2 - 0.5, abs=1.0)  # superior on top
    assert col == pytest.approx((34 + 0.5) * 2 - 0.5, abs=1.0)
    back_row, back_col = _sphere_centroid(model, 180, nodule)
    assert (back_row, back_col) == pytest.approx((row, 96 - 1 - col), abs=1.0)  # mirrored
    assert _sphere_centroid(model, 90, nodule)[1] == pytest.approx(47.5, abs=1.0)  # y = 24


def test_lungs_are_the_kits_lung_mask(chest: Scan, monkeypatch) -> None:
    """The 3D view calls `nodulekit.preprocess.lung_mask` (on its coarse grid), nothing else."""
    import nodulekit.preprocess.lung as lung

    calls = []
    real = lung.lung_mask

    def spy(scan, **kwargs):
        calls.append(scan.spacing)
        return real(scan, **kwargs)

    monkeypatch.setattr(lung, "lung_mask", spy)
    model = prepare_volume(chest)
    assert calls == [(2.0, 2.0, 2.0)]
    expected = np.asarray(real(Scan(chest.array, (0, 0, 0), (2, 2, 2))), bool)
    np.testing.assert_array_equal(model.lung > 0.5, _smoothed(expected) > 0.5)


def test_no_lungs_shows_the_body(chest: Scan) -> None:
    body = Scan(np.where(chest.array > -900, 0, -1000).astype(np.int16), (0, 0, 0), (2, 2, 2))
    model = prepare_volume(body)  # no enclosed air: no lung
    assert (model.lung > 0.5)[20, 24, 24] and not (model.lung > 0.5)[20, 1, 1]


def _smoothed(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
