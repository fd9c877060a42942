import numpy as np
import pytest

from nodulekit.data import Mask, Scan
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
    with pytest.raises(GeometryError, match="spacing_mm must be one or 3 finite positive numbers"):
        resample(scan, 0.0)
    with pytest.raises(GeometryError, match=r"spacing_mm must be one or 3 .* not \(1.0, 2.0\)"):
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


@pytest.mark.parametrize("direction", [None, FLIP_XY])
def test_resample_of_a_mask_is_nearest_neighbour_by_itself(direction):
    scan = _ramp_scan(direction or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    array = np.zeros(scan.shape, bool)
    array[1:5, 2:6, 3:8] = True
    mask = Mask.like(scan, array, name="box")
    # asking for linear changes nothing: a mask is looked up, never blended
    iso = resample(mask, 0.5, interpolator="linear")
    assert isinstance(iso, Mask) and iso.dtype == bool and iso.name == "box"
    assert iso.same_geometry(resample(scan, 0.5)) and iso.direction == scan.direction
    assert set(np.unique(iso.array.view(np.uint8))) == {0, 1}
    # each new voxel holds the value of the old voxel nearest to its world point
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in iso.shape), indexing="ij")
    nearest = scan.world_to_index(iso.voxel_to_world(np.stack([zz, yy, xx], -1).astype(float)))
    nearest = np.minimum(nearest, np.asarray(scan.shape) - 1)
    np.testing.assert_array_equal(iso.array, array[tuple(np.moveaxis(nearest, -1, 0))])
    # a uint8 label mask keeps its labels, and going back restores the original exactly
    labels = Mask.like(scan, array.astype(np.uint8) * 3)
    back = resample_like(resample(labels, 0.5), scan)
    assert back.dtype == np.uint8 and set(np.unique(back.array)) == {0, 3}
    np.testing.assert_array_equal(back.array, labels.array)


def test_resample_mask_takes_a_mask_and_refuses_a_foreign_source():
    scan = _ramp_scan()
    mask = Mask.like(scan, scan.array > scan.array.mean())
    iso = resample(scan, 1.0)
    out = resample_mask(mask, iso)
    assert isinstance(out, Mask) and out.same_geometry(iso)
    np.testing.assert_array_equal(out, resample_mask(mask.array, iso, source=scan))
    other = Scan(np.zeros((6, 8, 10), np.int16), (0.0, 0.0, 0.0), (1.0, 2.0, 3.0))
    with pytest.raises(
        GeometryError,
        match=r"Scan grid shape_zyx=\(6, 8, 10\).*origin_xyz_mm=\(0\.00.*Mask grid .*origin_xyz_mm=\(5\.00",
    ):
        resample_mask(mask, iso, source=other)
