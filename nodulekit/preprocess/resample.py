"""Resampling scans and masks to another voxel spacing or onto another scan's grid.

A `Scan` is interpolated linearly by default; a `Mask` always with nearest-neighbour lookup
(its labels stay labels, a bool mask stays bool), without being told.

All of it goes through SimpleITK (``sitk.Resample``), so the direction matrix is honoured.
Geometry rules of `resample`: the origin (centre of voxel ``[0, 0, 0]``) and the direction
are kept; the number of voxels along each axis is ``ceil(n * old_spacing / new_spacing)``,
so the new grid covers at least the old physical extent. Voxels past the last old voxel
centre take the nearest edge value rather than a made-up one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from nodulekit._checks import positive_triple
from nodulekit.data.mask import Mask
from nodulekit.data.scan import Scan, VoxelGrid
from nodulekit.errors import GeometryError

GridT = TypeVar("GridT", Scan, Mask)

INTERPOLATORS = ("linear", "nearest", "bspline")


def _sitk_interpolator(name: str) -> int:
    import SimpleITK as sitk

    table = {
        "linear": sitk.sitkLinear,
        "nearest": sitk.sitkNearestNeighbor,
        "bspline": sitk.sitkBSpline,
    }
    if name not in table:
        raise ValueError(f"interpolator must be one of {INTERPOLATORS}, not {name!r}")
    return table[name]


def resampled_shape_zyx(
    shape_zyx: Sequence[int], spacing_xyz: Sequence[float], new_spacing_xyz: Sequence[float]
) -> tuple[int, int, int]:
    """Voxel count ``(z, y, x)`` that `resample` gives: ``ceil(n * old / new)`` per axis."""
    sizes_xyz = [
        max(1, math.ceil(n * s / t - 1e-6))
        for n, s, t in zip(shape_zyx[::-1], spacing_xyz, new_spacing_xyz, strict=True)
    ]
    return (sizes_xyz[2], sizes_xyz[1], sizes_xyz[0])


def _resample_array(
    array: np.ndarray,
    source: VoxelGrid,
    *,
    origin: Sequence[float],
    spacing: Sequence[float],
    direction: Sequence[float],
    shape_zyx: Sequence[int],
    interpolator: str,
    default_value: float,
) -> np.ndarray:
    """Resample a ``(z, y, x)`` array on ``source``'s grid onto another grid (float32 out)."""
    import SimpleITK as sitk

    method = _sitk_interpolator(interpolator)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    image.SetOrigin(source.origin)
    image.SetSpacing(source.spacing)
    image.SetDirection(source.direction)
    out = sitk.Resample(
        image,
        [int(n) for n in shape_zyx[::-1]],
        sitk.Transform(),
        method,
        [float(v) for v in origin],
        [float(v) for v in spacing],
        [float(v) for v in direction],
        float(default_value),
        sitk.sitkFloat32,
        True,  # useNearestNeighborExtrapolator: edge voxels, not default_value
    )
    return sitk.GetArrayFromImage(out)


def resample(
    scan: GridT,
    spacing_mm: float | Sequence[float] = 1.0,
    *,
    interpolator: str = "linear",
) -> GridT:
    """Resample a scan or a mask to a new voxel spacing (isotropic 1 mm by default).

    Parameters
    ----------
    scan : Scan or Mask
        The CT scan, or a mask (always resampled nearest-neighbour, whatever
        ``interpolator`` says, so its values stay in the labels it had).
    spacing_mm : float or 3 floats (x, y, z)
        The new voxel size in mm; one number means isotropic.
    interpolator : {"linear", "nearest", "bspline"}
        For a scan: linear for CT (default), nearest for labels held in a `Scan`.

    Returns
    -------
    Scan or Mask
        Same type, origin, direction and series UID; a scan keeps its metadata and is int16
        HU (rounded), a mask keeps its dtype.

    Examples
    --------
    >>> import numpy as np
    >>> scan = Scan(np.zeros((4, 10, 10), np.int16), (0, 0, 0), (0.5, 0.5, 2.5))
    >>> iso = resample(scan, 1.0)
    >>> iso.shape, iso.spacing, iso.origin
    ((10, 5, 5), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    >>> resample(Mask.like(scan, scan.array == 0), 1.0).dtype
    dtype('bool')
    """
    new_spacing = positive_triple(spacing_mm, "spacing_mm")
    shape = resampled_shape_zyx(scan.shape, scan.spacing, new_spacing)
    if isinstance(scan, Mask):
        return _resample_mask_onto(scan, scan.origin, new_spacing, scan.direction, shape)
    out = _resample_array(
        scan.array,
        scan,
        origin=scan.origin,
        spacing=new_spacing,
        direction=scan.direction,
        shape_zyx=shape,
        interpolator=interpolator,
        default_value=-1000.0,
    )
    array = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
    metadata = dict(scan.metadata)
    metadata["resampled_from_spacing"] = scan.spacing
    return Scan(
        array, scan.origin, new_spacing, scan.direction, scan.seriesuid, scan.path, metadata
    )


def resample_like(scan: GridT, like: VoxelGrid, *, interpolator: str = "linear") -> GridT:
    """Resample a scan or a mask onto the grid (origin, spacing, direction, shape) of ``like``.

    Voxels of ``like``'s grid outside a scan take the nearest edge value; outside a mask,
    0 (False). A `Mask` is resampled nearest-neighbour whatever ``interpolator`` says.
    """
    if isinstance(scan, Mask):
        return _resample_mask_onto(scan, like.origin, like.spacing, like.direction, like.shape)
    out = _resample_array(
        scan.array,
        scan,
        origin=like.origin,
        spacing=like.spacing,
        direction=like.direction,
        shape_zyx=like.shape,
        interpolator=interpolator,
        default_value=-1000.0,
    )
    array = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
    return Scan(
        array, like.origin, like.spacing, like.direction, scan.seriesuid, scan.path, scan.metadata
    )


def _nearest_labels(
    array: np.ndarray,
    grid: VoxelGrid,
    origin: Sequence[float],
    spacing: Sequence[float],
    direction: Sequence[float],
    shape_zyx: Sequence[int],
) -> np.ndarray:
    """Labels of ``array`` (on ``grid``) looked up nearest-neighbour on another grid."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array.astype(np.int32)))
    image.SetOrigin(grid.origin)
    image.SetSpacing(grid.spacing)
    image.SetDirection(grid.direction)
    out = sitk.Resample(
        image,
        [int(n) for n in shape_zyx[::-1]],
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        [float(v) for v in origin],
        [float(v) for v in spacing],
        [float(v) for v in direction],
        0,
        sitk.sitkInt32,
    )
    return sitk.GetArrayFromImage(out).astype(array.dtype)


def _resample_mask_onto(
    mask: Mask,
    origin: Sequence[float],
    spacing: Sequence[float],
    direction: Sequence[float],
    shape_zyx: Sequence[int],
) -> Mask:
    array = _nearest_labels(mask.array, mask, origin, spacing, direction, shape_zyx)
    return Mask(array, origin, spacing, direction, mask.seriesuid, mask.name)  # type: ignore[arg-type]


def resample_mask(
    mask: Mask | np.ndarray | Scan,
    like: VoxelGrid,
    *,
    source: VoxelGrid | None = None,
) -> Mask | np.ndarray:
    """Resample a mask or label volume onto ``like``'s grid with nearest-neighbour lookup.

    With a `Mask` this is ``resample_like(mask, like)``; the bare-array forms remain for
    code written before masks carried their grid.

    Parameters
    ----------
    mask : Mask, (Z, Y, X) ndarray (bool or integer labels), or Scan
        A `Mask` or a `Scan` (labels fit int16) carries its own geometry; an array lies on
        ``source``'s grid.
    like : Scan or Mask
        The grid to resample onto, for example ``resample(scan, 1.0)``.
    source : Scan, optional
        The grid ``mask`` lies on: required for an array; with a `Mask`, it must be the
        mask's own grid (`GeometryError` naming both grids otherwise).

    Returns
    -------
    Mask for a `Mask`; otherwise an ndarray of shape ``like.shape`` and the input's dtype.
    0 (False) outside the mask.
    """
    if isinstance(mask, Mask):
        if source is not None:
            source.check_same_geometry(mask)
        return _resample_mask_onto(mask, like.origin, like.spacing, like.direction, like.shape)
    if isinstance(mask, Scan):
        return _nearest_labels(
            mask.array, mask, like.origin, like.spacing, like.direction, like.shape
        )
    if source is None:
        raise GeometryError(
            "resample_mask: a mask given as an array needs source=<the Scan it lies on>; "
            "or pass a Mask (lung_mask returns one; Mask.like(scan, array) makes one)"
        )
    array = np.asarray(mask)
    if array.shape != source.shape:
        raise GeometryError(
            f"resample_mask: mask shape {array.shape} differs from source scan shape "
            f"{source.shape}; the mask must lie on the source scan's grid"
        )
    return _nearest_labels(array, source, like.origin, like.spacing, like.direction, like.shape)
