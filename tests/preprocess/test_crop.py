import numpy as np
import pytest

from nodulekit.data import Scan
from nodulekit.errors import GeometryError
from nodulekit.preprocess import Crop, crop

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
FLIP_XY = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
ROT90_Z = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # array x -> world +y, y -> -x


def _ramp(world_xyz: np.ndarray) -> np.ndarray:
    return 10 * world_xyz[..., 2] + 3 * world_xyz[..., 1] + world_xyz[..., 0]


def _ramp_scan(direction=IDENTITY, spacing=(0.7, 1.0, 2.5)) -> Scan:
    """HU linear in world mm, so linear interpolation reproduces it to rounding."""
    shape = (20, 30, 40)
    scan = Scan(np.zeros(shape, np.int16), (4.0, -6.0, 12.0), spacing, direction)
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    world = scan.voxel_to_world(np.stack([zz, yy, xx], -1).astype(float))
    return scan.with_array(np.rint(_ramp(world)).astype(np.int16))


@pytest.mark.parametrize("direction", [IDENTITY, FLIP_XY, ROT90_Z])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 1.0, 2.5)])
def test_centre_voxel_holds_the_value_at_the_world_point(direction, spacing):
    scan = _ramp_scan(direction, spacing)
    center_vox = np.array([10, 15, 20])
    center = scan.voxel_to_world(center_vox)
    c = crop(scan, center, size_mm=9.0, shape_zyx=(5, 7, 9))
    assert isinstance(c, Crop) and c.array.dtype == np.float32 and c.shape == (5, 7, 9)
    assert c.array[2, 3, 4] == pytest.approx(scan.array[10, 15, 20], abs=1e-3)
    np.testing.assert_allclose(c.voxel_to_world((2, 3, 4)), center, atol=1e-9)
    assert c.direction == scan.direction and c.outside_fraction == 0.0
    # every crop voxel holds the ramp at its world point (rounding of the int16 scan aside)
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in c.shape), indexing="ij")
    world = c.voxel_to_world(np.stack([zz, yy, xx], -1).astype(float))
    np.testing.assert_allclose(c.array, _ramp(world), atol=1.0)
    np.testing.assert_allclose(c.world_to_voxel(world), np.stack([zz, yy, xx], -1), atol=1e-9)


def test_even_shape_puts_the_world_point_between_the_middle_voxels():
    scan = _ramp_scan()
    center = scan.voxel_to_world((10.3, 14.6, 19.2))
    c = crop(scan, center)  # defaults: 40 mm, 32 voxels
    assert c.spacing == pytest.approx((1.25, 1.25, 1.25))
    np.testing.assert_allclose(c.voxel_to_world((15.5, 15.5, 15.5)), center, atol=1e-9)


def test_crop_at_the_corner_is_padded_and_counted():
    scan = Scan(np.full((10, 10, 10), 50, np.int16), (0, 0, 0), (1, 1, 1))
    c = crop(scan, (-0.2, -0.2, -0.2), size_mm=10.0, shape_zyx=(10, 10, 10))
    # voxel centres at -4.7 .. 4.3 mm; inside: >= -0.5 mm (half a voxel), 5 of 10 per axis
    assert c.outside_fraction == pytest.approx(7 / 8)
    assert (c.array[:5] == -1000).all() and (c.array[:, :5] == -1000).all()
    np.testing.assert_allclose(c.array[5:, 5:, 5:], 50)
    far = crop(scan, (500.0, 0.0, 0.0), size_mm=10.0, shape_zyx=(4, 4, 4), pad_hu=-2000)
    assert far.outside_fraction == 1.0 and (far.array == -2000).all()


def test_nan_or_bad_arguments_raise_naming_them():
    scan = _ramp_scan()
    with pytest.raises(GeometryError, match=r"center_xyz_mm = \(1.0, nan, 2.0\) holds NaN"):
        crop(scan, (1.0, np.nan, 2.0))
    with pytest.raises(GeometryError, match="size_mm must be strictly positive"):
        crop(scan, (1.0, 1.0, 2.0), size_mm=-4)
    with pytest.raises(GeometryError, match="shape_zyx must be 3 positive integers"):
        crop(scan, (1.0, 1.0, 2.0), shape_zyx=(4, 4))


@pytest.mark.parametrize("direction", [IDENTITY, ROT90_Z])
def test_paste_into_round_trip(direction):
    scan = _ramp_scan(direction)
    center = scan.voxel_to_world((10, 15, 20))
    c = crop(scan, center, size_mm=12.0, shape_zyx=(12, 12, 12))
    back = c.paste_into(scan)
    assert back.shape == scan.shape and back.dtype == np.float32
    # scan voxels well inside the crop cube get their own values back
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in scan.shape), indexing="ij")
    idx = c.world_to_voxel(scan.voxel_to_world(np.stack([zz, yy, xx], -1).astype(float)))
    well_inside = np.all((idx >= 0.5) & (idx <= 10.5), axis=-1)
    assert well_inside.sum() > 50
    np.testing.assert_allclose(back[well_inside], scan.array[well_inside], atol=1.0)
    outside = np.any((idx < -1) | (idx > 12), axis=-1)
    assert (back[outside] == 0).all()
    # an attribution-like map: a constant 1 on the crop pastes as 1 inside, fill outside
    ones = c.paste_into(scan, np.ones(c.shape), interpolator="nearest", fill=-1)
    assert (ones[well_inside] == 1).all() and (ones[outside] == -1).all()
    with pytest.raises(GeometryError, match="crop-aligned map must have"):
        c.paste_into(scan, np.ones((2, 2, 2)))
