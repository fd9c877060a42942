import numpy as np
import pytest

from nodulekit.data import Scan
from nodulekit.errors import GeometryError
from nodulekit.preprocess import Crop, crop
from nodulekit.preprocess.crop import (
    DEFAULT_CROP_SHAPE_ZYX,
    DEFAULT_CROP_SIZE_MM,
    CropBatch,
    crop_many,
)

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
FLIP_XY = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
ROT90_Z = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # array x -> world +y, y -> -x
FLIP_SWAP = (-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0)  # x -> -x, y and z swapped
_c, _s = np.cos(0.3), np.sin(0.3)
OBLIQUE = (_c, -_s, 0.0, _s, _c, 0.0, 0.0, 0.0, 1.0)  # rotated 0.3 rad about z


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
    c = crop(scan, center)  # defaults: 32 mm in 24 voxels, what training uses
    assert (DEFAULT_CROP_SIZE_MM, DEFAULT_CROP_SHAPE_ZYX) == (32.0, (24, 24, 24))
    assert c.shape == (24, 24, 24) and c.spacing == pytest.approx((4 / 3, 4 / 3, 4 / 3))
    np.testing.assert_allclose(c.voxel_to_world((11.5, 11.5, 11.5)), center, atol=1e-9)


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
    with pytest.raises(
        GeometryError,
        match=r"size_mm must be one or 3 finite positive numbers \(x, y, z\) in mm, not -4",
    ):
        crop(scan, (1.0, 1.0, 2.0), size_mm=-4)
    with pytest.raises(
        GeometryError, match=r"shape_zyx must be one or 3 positive integers \(z, y, x\)"
    ):
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


@pytest.mark.parametrize("direction", [IDENTITY, FLIP_XY, ROT90_Z, FLIP_SWAP, OBLIQUE])
def test_crop_world_voxel_mapping_is_the_scans(direction):
    """A Crop maps world <-> voxel exactly as a Scan (and SimpleITK) with its geometry does."""
    scan = _ramp_scan(direction, (0.7, 1.0, 2.5))
    c = crop(
        scan, scan.voxel_to_world((9.3, 14.8, 20.4)), size_mm=(9.0, 7.0, 11.0), shape_zyx=(5, 7, 9)
    )
    twin = Scan(np.zeros(c.shape, np.int16), c.origin, c.spacing, c.direction)
    image = twin.to_sitk()
    index_zyx = np.random.default_rng(1).uniform(-2, 9, size=(20, 3))
    world = c.voxel_to_world(index_zyx)
    np.testing.assert_array_equal(world, twin.voxel_to_world(index_zyx))
    np.testing.assert_array_equal(c.world_to_voxel(world), twin.world_to_voxel(world))
    np.testing.assert_array_equal(c.contains(index_zyx), twin.contains(index_zyx))
    for idx, point in zip(index_zyx, world, strict=True):
        expected = image.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx[::-1]])
        np.testing.assert_allclose(point, expected, atol=1e-9)
    np.testing.assert_allclose(c.world_to_voxel(world), index_zyx, atol=1e-9)
    assert c.orientation == scan.orientation


def test_crop_geometry_is_checked_like_a_scans():
    with pytest.raises(GeometryError, match="direction must be orthonormal"):
        Crop(
            np.zeros((2, 2, 2), np.float32),
            (0, 0, 0),
            (1, 1, 1),
            (1, 0, 0, 0, 2, 0, 0, 0, 1),
            (0, 0, 0),
        )
    with pytest.raises(GeometryError, match="spacing must be one or 3 finite positive numbers"):
        Crop(np.zeros((2, 2, 2), np.float32), (0, 0, 0), (1, -1, 1), IDENTITY, (0, 0, 0))


def _sitk_reference(scan: Scan, c: Crop, pad_hu: float) -> np.ndarray:
    """The crop as SimpleITK resamples the whole scan onto the crop grid (ITK's inside rule)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(scan.array.astype(np.float32))
    image.SetOrigin(scan.origin)
    image.SetSpacing(scan.spacing)
    image.SetDirection(scan.direction)
    out = sitk.Resample(
        image, list(c.shape[::-1]), sitk.Transform(), sitk.sitkLinear, c.origin, c.spacing,
        c.direction, pad_hu, sitk.sitkFloat32,
    )  # fmt: skip
    return sitk.GetArrayFromImage(out)


@pytest.mark.parametrize("direction", [IDENTITY, FLIP_XY, ROT90_Z, FLIP_SWAP])
def test_crop_values_match_simpleitk_inside_and_at_the_edges(direction):
    rng = np.random.default_rng(3)
    base = _ramp_scan(direction, (0.7, 1.0, 2.5))
    scan = base.with_array(rng.integers(-1000, 400, base.shape).astype(np.int16))  # not linear
    # centres inside, near a face (half a voxel rule), at a corner
    for index in [(10.2, 14.7, 19.9), (1.0, 2.3, 38.6), (-0.4, 0.2, 0.1), (19.3, 29.1, 39.4)]:
        c = crop(scan, scan.voxel_to_world(index), size_mm=10.0, shape_zyx=(6, 8, 10))
        np.testing.assert_allclose(c.array, _sitk_reference(scan, c, -1000.0), atol=2e-3)


@pytest.mark.parametrize("direction", [IDENTITY, ROT90_Z, FLIP_SWAP])
def test_crop_many_equals_crop_one_at_a_time_bit_for_bit(direction):
    rng = np.random.default_rng(7)
    base = _ramp_scan(direction, (0.7, 1.0, 2.5))
    scan = base.with_array(rng.integers(-1000, 400, base.shape).astype(np.int16))
    index = rng.uniform(-3, [22, 32, 42], size=(40, 3))  # some outside, some padded
    centers = scan.voxel_to_world(index)
    centers[0] = scan.voxel_to_world((500, 0, 0))  # wholly outside
    batch = crop_many(scan, centers, size_mm=(9.0, 12.0, 15.0), shape_zyx=(7, 8, 9), pad_hu=-1500)
    assert isinstance(batch, CropBatch) and len(batch) == 40
    assert batch.arrays.shape == (40, 7, 8, 9) and batch.arrays.dtype == np.float32
    assert 0 < np.count_nonzero(batch.outside_fractions) < 40
    assert batch.outside_fractions[0] == 1.0 and (batch.arrays[0] == -1500).all()
    for k, center in enumerate(centers):
        one = crop(scan, center, size_mm=(9.0, 12.0, 15.0), shape_zyx=(7, 8, 9), pad_hu=-1500)
        np.testing.assert_array_equal(batch.arrays[k], one.array)
        assert batch.outside_fractions[k] == one.outside_fraction
        assert batch[k].origin == one.origin and batch[k].center_xyz_mm == one.center_xyz_mm
    assert len(crop_many(scan, np.empty((0, 3)))) == 0


def test_crop_many_names_the_bad_row():
    scan = _ramp_scan()
    with pytest.raises(GeometryError, match=r"centers_xyz_mm row 1 = \(1.0, inf, 2.0\) holds NaN"):
        crop_many(scan, [[1.0, 1.0, 2.0], [1.0, np.inf, 2.0]])
    with pytest.raises(GeometryError, match=r"N rows of 3 numbers .* not shape \(2, 2\)"):
        crop_many(scan, [[1.0, 1.0], [2.0, 2.0]])
