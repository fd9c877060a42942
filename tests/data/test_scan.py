"""Scan geometry against SimpleITK's own transforms, validation and printing."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nodulekit.data import Scan
from nodulekit.errors import GeometryError

# a flipped, rotated (non-identity) direction: x -> -x, y and z swapped
FLIPPED = (-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0)
ROTATED = tuple(
    np.array(
        [
            [np.cos(0.3), -np.sin(0.3), 0.0],
            [np.sin(0.3), np.cos(0.3), 0.0],
            [0.0, 0.0, 1.0],
        ]
    ).ravel()
)


@pytest.mark.parametrize(
    ("spacing", "direction"),
    [
        ((0.7, 0.7, 2.5), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)),
        ((0.6, 0.9, 1.25), FLIPPED),
        ((1.0, 2.0, 3.0), ROTATED),
    ],
)
def test_world_voxel_mapping_matches_simpleitk(spacing, direction, rng):
    scan = Scan(np.zeros((7, 9, 11), np.int16), (-160.5, -170.0, -340.0), spacing, direction)
    image = scan.to_sitk()
    for _ in range(10):
        index_zyx = rng.uniform(-2, 12, size=3)
        world = scan.voxel_to_world(index_zyx)
        expected_world = image.TransformContinuousIndexToPhysicalPoint(
            [float(v) for v in index_zyx[::-1]]
        )
        np.testing.assert_allclose(world, expected_world, atol=1e-9)
        back = scan.world_to_voxel(world)
        np.testing.assert_allclose(back, index_zyx, atol=1e-9)
        expected_index = image.TransformPhysicalPointToIndex(world.tolist())
        np.testing.assert_array_equal(scan.world_to_index(world), expected_index[::-1])


def test_hand_computed_points_with_a_flipped_direction():
    # x axis points to -x in the world: voxel x=2 sits 2 * 0.5 mm to the left of the origin
    scan = Scan(np.zeros((2, 3, 4), np.int16), (10, 20, 30), (0.5, 1.0, 2.0), FLIPPED)
    np.testing.assert_allclose(scan.voxel_to_world((0, 0, 2)), (9.0, 20.0, 30.0))
    # array y runs along world z, array z along world y
    np.testing.assert_allclose(scan.voxel_to_world((1, 2, 0)), (10.0, 22.0, 32.0))
    assert scan.orientation == "RSP"


def test_vectorised_points_keep_their_leading_shape():
    scan = Scan(np.zeros((4, 4, 4), np.int16), (0, 0, 0), (1, 1, 1))
    points = np.arange(12, dtype=float).reshape(4, 3)
    assert scan.world_to_voxel(points).shape == (4, 3)
    np.testing.assert_array_equal(scan.world_to_voxel(points)[1], (5.0, 4.0, 3.0))
    assert list(scan.contains([[0, 0, 0], [3.4, 0, 0], [3.6, 0, 0], [-0.6, 0, 0]])) == [
        True,
        True,
        False,
        False,
    ]


def test_sitk_round_trip_keeps_voxels_and_geometry():
    array = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    scan = Scan(array, (1.5, -2, 3), (0.7, 0.8, 2.5), FLIPPED, seriesuid="1.2.3")
    back = Scan.from_sitk(scan.to_sitk(), seriesuid="1.2.3")
    assert back.same_geometry(scan)
    np.testing.assert_array_equal(back.array, array)


def test_from_sitk_rounds_float_hu_and_refuses_values_outside_int16():
    image = sitk.GetImageFromArray(np.full((2, 2, 2), -999.6, np.float32))
    assert Scan.from_sitk(image).array[0, 0, 0] == -1000
    too_big = sitk.GetImageFromArray(np.full((2, 2, 2), 1e6, np.float32))
    with pytest.raises(GeometryError, match="do not fit int16"):
        Scan.from_sitk(too_big, path="big.nii.gz")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"array": np.zeros((4, 4), np.int16)}, GeometryError, "3 dimensions"),
        ({"array": np.zeros((2, 2, 2), np.float32)}, TypeError, "int16 Hounsfield"),
        ({"spacing": (1, 0, 1)}, GeometryError, r"spacing must be one or 3 finite positive .* mm"),
        ({"spacing": (1, 1)}, GeometryError, r"spacing must be one or 3 .* not \(1, 1\)"),
        ({"origin": (0, np.nan, 0)}, GeometryError, "3 finite numbers"),
        ({"direction": (1, 0, 0, 0, 2, 0, 0, 0, 1)}, GeometryError, "orthonormal"),
        ({"direction": (1, 0, 0)}, GeometryError, "9 numbers"),
    ],
)
def test_bad_inputs_are_refused_with_a_message(kwargs, error, message):
    args = {"array": np.zeros((2, 2, 2), np.int16), "origin": (0, 0, 0), "spacing": (1, 1, 1)}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        Scan(**args)


def test_same_geometry_error_uses_the_shared_message():
    a = Scan(np.zeros((2, 2, 2), np.int16), (0, 0, 0), (1, 1, 1))
    b = Scan(np.zeros((2, 2, 2), np.int16), (0, 0, 1), (1, 1, 1))
    a.check_same_geometry(a.with_array(np.ones((2, 2, 2), np.int16)))
    with pytest.raises(GeometryError, match="Inputs do not occupy the same physical space"):
        a.check_same_geometry(b)


def test_repr_shows_what_a_person_needs():
    scan = Scan(
        np.zeros((133, 8, 8), np.int16),
        (-166, -171.7, -340),
        (0.703125, 0.703125, 2.5),
        seriesuid="1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192",
    )
    text = repr(scan)
    for part in ("...059720603192", "(133, 8, 8)", "0.703", "2.5", "LPS", "MiB"):
        assert part in text
