import numpy as np
import pytest

from nodulekit.data import Scan
from nodulekit.errors import GeometryError
from nodulekit.preprocess import resample, resample_like, resample_mask

FLIP_XY = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def _ramp_scan(direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)) -> Scan:
    # HU = 10 * world z + x (mm): linear, so linear interpolation reproduces it exactly
    shape = (6, 8, 10)
    scan = Scan(np.zeros(shape, np.int16), (5.0, -3.0, 20.0), (1.0, 2.0, 3.0), direction)
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    world = scan.voxel_to_world(np.stack([zz, yy, xx], -1).astype(float))
    return scan.with_array(np.rint(10 * world[..., 2] + world[..., 0]).astype(np.int16))


@pytest.mark.parametrize("direction", [None, FLIP_XY])
def test_resample_keeps_origin_direction_and_covers_extent(direction):
    scan = _ramp_scan(direction or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    iso = resample(scan, 1.0)
    assert iso.spacing == (1.0, 1.0, 1.0)
    assert iso.origin == scan.origin and iso.direction == scan.direction
    assert iso.shape == (18, 16, 10)  # ceil(n * old / new) per axis
    assert iso.array.dtype == np.int16 and iso.seriesuid == scan.seriesuid
    # a voxel of the new grid inside the old one holds the linear ramp's value
    world = iso.voxel_to_world((4.0, 5.0, 7.0))
    assert iso.array[4, 5, 7] == pytest.approx(10 * world[2] + world[0], abs=1)


def test_resample_anisotropic_tuple_and_bad_spacing():
    scan = _ramp_scan()
    out = resample(scan, (2.0, 2.0, 1.5))
    assert out.shape == (12, 8, 5) and out.spacing == (2.0, 2.0, 1.5)
    with pytest.raises(GeometryError, match="strictly positive"):
        resample(scan, 0.0)
    with pytest.raises(GeometryError, match="one number or 3 numbers"):
        resample(scan, (1.0, 2.0))
    with pytest.raises(ValueError, match="interpolator must be one of"):
        resample(scan, 1.0, interpolator="cubic")


def test_resample_like_round_trip_on_linear_ramp():
    scan = _ramp_scan()
    back = resample_like(resample(scan, 0.5), scan)
    assert back.same_geometry(scan)
    np.testing.assert_allclose(back.array, scan.array, atol=1)


def test_resample_mask_nearest_keeps_labels_and_dtype():
    scan = _ramp_scan()
    labels = np.zeros(scan.shape, np.uint8)
    labels[2:4, 2:6, 3:7] = 3
    labels[0, 0, 0] = 5
    iso = resample(scan, 1.0)
    out = resample_mask(labels, iso, source=scan)
    assert out.dtype == np.uint8 and out.shape == iso.shape
    assert set(np.unique(out)) == {0, 3, 5}
    # volume is kept within a voxel layer's worth
    assert (out == 3).sum() == pytest.approx((labels == 3).sum() * 6, rel=0.35)
    as_scan = resample_mask(scan.with_array(labels.astype(np.int16)), iso)
    np.testing.assert_array_equal(as_scan, out)
    bool_out = resample_mask(labels > 0, iso, source=scan)
    assert bool_out.dtype == bool


def test_resample_mask_needs_a_source_for_arrays():
    scan = _ramp_scan()
    with pytest.raises(GeometryError, match="needs source="):
        resample_mask(np.zeros(scan.shape, bool), scan)
    with pytest.raises(GeometryError, match="differs from source scan shape"):
        resample_mask(np.zeros((2, 2, 2), bool), scan, source=scan)
