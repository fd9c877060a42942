"""The Mask: a label volume that carries its grid, checked and printed like a Scan."""

from __future__ import annotations

import numpy as np
import pytest

from nodulekit.data import Mask, Scan
from nodulekit.errors import GeometryError

FLIPPED = (-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0)


@pytest.fixture
def scan() -> Scan:
    return Scan(np.zeros((4, 5, 6), np.int16), (10, 20, 30), (0.5, 0.5, 2.0), FLIPPED, "1.2.3")


def test_like_takes_the_grid_and_measures_in_ml(scan):
    array = np.zeros(scan.shape, bool)
    array[1:3, 1:3, 1:3] = True  # 8 voxels of 0.5 mm3
    mask = Mask.like(scan, array, name="box")
    assert mask.same_geometry(scan) and mask.seriesuid == "1.2.3" and mask.name == "box"
    assert mask.voxel_count == 8 and mask.volume_ml == pytest.approx(8 * 0.5 / 1000)
    # the same world <-> voxel as the scan: one implementation, direction included
    index = np.array([[1.5, 2.0, 0.3], [3.0, 4.0, 5.0]])
    np.testing.assert_array_equal(mask.voxel_to_world(index), scan.voxel_to_world(index))
    assert mask.orientation == scan.orientation == "RSP"
    assert repr(mask) == (
        "Mask(name='box', uid='1.2.3', shape_zyx=(4, 5, 6), spacing_xyz_mm=(0.5, 0.5, 2), "
        "origin_xyz_mm=(10.0, 20.0, 30.0), orientation=RSP, voxels=8, volume=0.004 ml)"
    )


def test_behaves_like_its_array_where_cheap(scan):
    mask = Mask.like(scan, np.ones(scan.shape, np.uint8))
    assert np.asarray(mask) is mask.array and mask[0].shape == (5, 6)
    assert mask.any() is True and int(mask.sum()) == 120 and mask.dtype == np.uint8
    assert int((mask & np.zeros(scan.shape, np.uint8)).sum()) == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"array": np.zeros((2, 2, 2), np.float32)}, TypeError, "bool or uint8 labels"),
        ({"array": np.zeros((2, 2), bool)}, GeometryError, "3 dimensions"),
        ({"spacing": (1, 0, 1)}, GeometryError, "spacing must be one or 3 finite positive"),
        ({"direction": (1, 0, 0, 0, 2, 0, 0, 0, 1)}, GeometryError, "orthonormal"),
    ],
)
def test_bad_masks_are_refused(kwargs, error, message):
    args = {"array": np.zeros((2, 2, 2), bool), "origin": (0, 0, 0), "spacing": (1, 1, 1)}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        Mask(**args)


def test_a_mask_on_another_grid_is_refused_naming_both(scan):
    with pytest.raises(GeometryError, match=r"shape \(4, 5\).*Scan grid it should lie on .*"):
        Mask.like(scan, np.zeros((4, 5), bool))
    other = Mask(np.zeros(scan.shape, bool), (0, 0, 0), scan.spacing, scan.direction)
    with pytest.raises(
        GeometryError,
        match=r"Scan grid shape_zyx=\(4, 5, 6\), .*origin_xyz_mm=\(10\.00, 20\.00, 30\.00\).*; "
        r"Mask grid shape_zyx=\(4, 5, 6\), .*origin_xyz_mm=\(0\.00, 0\.00, 0\.00\)",
    ):
        scan.check_same_geometry(other)
