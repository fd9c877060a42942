import numpy as np
import pytest

from nodulekit.data import Scan
from nodulekit.preprocess import crop, resample
from nodulekit.viz.preprocess import (
    BOX_COLOR,
    MASK_COLOR,
    Box,
    crop_box_on_slice,
    crop_planes,
    crop_planes_figure,
    crop_planes_image,
    grey_slice,
    matching_slice,
    render_preview_slice,
)


def _scan() -> Scan:
    array = np.full((10, 20, 30), -1000, np.int16)
    array[:, 5:15, 5:25] = 40
    return Scan(array, (0.0, 0.0, 0.0), (1.0, 1.0, 2.0))


def test_grey_slice_through_a_window():
    hu = np.array([[-160, 40, 240]], np.int16)
    np.testing.assert_array_equal(grey_slice(hu, window="mediastinum"), [[0, 128, 255]])
    np.testing.assert_array_equal(grey_slice(hu.astype(float), window=(40, 400)), [[0, 128, 255]])


def test_render_preview_slice_window_mask_and_box():
    scan = _scan()
    rgb = render_preview_slice(scan.array, 3, window="mediastinum")
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (0, 0, 0) and tuple(rgb[10, 10]) == (128, 128, 128)
    mask = np.zeros(scan.shape, bool)
    mask[3, 8:12, 8:12] = True
    tinted = render_preview_slice(scan.array, 3, window="mediastinum", mask=mask)
    assert tuple(tinted[8, 8]) == MASK_COLOR  # outline in full colour
    assert tinted[10, 10, 0] > tinted[10, 10, 1]  # inside tinted red
    assert (tinted[0] == rgb[0]).all()  # outside untouched
    boxed = render_preview_slice(scan.array, 3, box=Box(2, 6, 3, 9))
    assert tuple(boxed[2, 5]) == BOX_COLOR and tuple(boxed[6, 3]) == BOX_COLOR
    assert tuple(boxed[4, 5]) != BOX_COLOR
    with pytest.raises(ValueError, match="mask shape"):
        render_preview_slice(scan.array, 3, mask=mask[:2])


def test_crop_box_on_slice_and_matching_slice():
    scan = _scan()
    c = crop(scan, scan.voxel_to_world((5, 10, 15)), size_mm=8.0, shape_zyx=(4, 8, 8))
    box = crop_box_on_slice(scan, c, 5)
    # the cube's faces: y = 10 +- 4 mm, x = 15 +- 4 mm, at 1 mm per row and column
    assert tuple(box) == pytest.approx((6.0, 14.0, 11.0, 19.0))
    assert crop_box_on_slice(scan, c, 5 + 3) is None  # 8 mm / 2 mm slices: z 3..7 only
    iso = resample(scan, 1.0)
    assert matching_slice(scan, 4, iso) == 8
    assert matching_slice(scan, 9, iso) == 18


def test_crop_planes_and_figure():
    scan = _scan()
    c = crop(scan, scan.voxel_to_world((5, 10, 15)), size_mm=40.0, shape_zyx=(8, 8, 8))
    axial, coronal, sagittal = crop_planes(c, window="mediastinum")
    assert axial.shape == coronal.shape == sagittal.shape == (8, 8)
    image = crop_planes_image(c, window="mediastinum", scale=2, gap_px=1)
    assert image.shape == (16, 16 * 3 + 2, 3)
    fig = crop_planes_figure(c)
    assert len(fig.axes) == 3 and fig.axes[1].get_title() == "coronal"
