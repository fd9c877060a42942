"""Resampling scans and masks to another voxel spacing or onto another scan's grid.

All of it goes through SimpleITK (``sitk.Resample``), so the direction matrix is honoured.
Geometry rules of `resample`: the origin (centre of voxel ``[0, 0, 0]``) and the direction
are kept; the number of voxels along each axis is ``ceil(n * old_spacing / new_spacing)``,
so the new grid covers at least the old physical extent. Voxels past the last old voxel
centre take the nearest edge value rather than a made-up one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nodulekit.data.scan import Scan
from nodulekit.errors import GeometryError

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


def _spacing_xyz(spacing_mm: float | Sequence[float]) -> tuple[float, float, float]:
    if np.isscalar(spacing_mm):
        values = (float(spacing_mm),) * 3  # type: ignore[arg-type]
    else:
        arr = np.asarray(spacing_mm, dtype=float).ravel()
        if arr.shape != (3,):
            raise GeometryError(
                f"spacing_mm must be one number or 3 numbers (x, y, z) in mm, not {spacing_mm!r}"
            )
        values = (float(arr[0]), float(arr[1]), float(arr[2]))
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise GeometryError(f"spacing_mm must be strictly positive and finite, not {spacing_mm!r}")
    return values  # type: ignore[return-value]


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
    source: Scan,
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
    scan: Scan,
    spacing_mm: float | Sequence[float] = 1.0,
    *,
    interpolator: str = "linear",
) -> Scan:
    """Resample a scan to a new voxel spacing (isotropic 1 mm by default).

    Parameters
    ----------
    scan : Scan
        The CT scan.
    spacing_mm : float or 3 floats (x, y, z)
        The new voxel size in mm; one number means isotropic.
    interpolator : {"linear", "nearest", "bspline"}
        Linear for CT (default); nearest for label volumes held in a `Scan`.

    Returns
    -------
    Scan
        Same origin, direction, series UID and metadata; int16 HU (rounded).

    Examples
    --------
    >>> import numpy as np
    >>> scan = Scan(np.zeros((4, 10, 10), np.int16), (0, 0, 0), (0.5, 0.5, 2.5))
    >>> iso = resample(scan, 1.0)
    >>> iso.shape, iso.spacing, iso.origin
    ((10, 5, 5), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    """
    new_spacing = _spacing_xyz(spacing_mm)
    shape = resampled_shape_zyx(scan.shape, scan.spacing, new_spacing)
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


def resample_like(scan: Scan, like: Scan, *, interpolator: str = "linear") -> Scan:
    """Resample ``scan`` onto the grid (origin, spacing, direction, shape) of ``like``.

    Voxels of ``like``'s grid outside ``scan`` take the nearest edge value.
    """
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


def resample_mask(
    mask: np.ndarray | Scan,
    like: Scan,
    *,
    source: Scan | None = None,
) -> np.ndarray:
    """Resample a mask or label volume onto ``like``'s grid with nearest-neighbour lookup.

    Parameters
    ----------
    mask : (Z, Y, X) ndarray (bool or integer labels), or Scan
        The mask. An array lies on ``source``'s grid; a `Scan` (labels fit int16) carries
        its own geometry.
    like : Scan
        The grid to resample onto, for example ``resample(scan, 1.0)``.
    source : Scan, optional
        The scan whose grid ``mask`` (an array) lies on; required for an array.

    Returns
    -------
    ndarray of shape ``like.shape``, the dtype of the input mask; 0 (False) outside it.
    """
    if isinstance(mask, Scan):
        array, grid = mask.array, mask
    else:
        if source is None:
            raise GeometryError(
                "resample_mask: a mask given as an array needs source=<the Scan it lies on>; "
                "or pass the labels as a Scan"
            )
        array, grid = np.asarray(mask), source
        if array.shape != source.shape:
            raise GeometryError(
                f"resample_mask: mask shape {array.shape} differs from source scan shape "
                f"{source.shape}; the mask must lie on the source scan's grid"
            )
    import SimpleITK as sitk

    dtype = array.dtype
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.astype(np.int32)))
    image.SetOrigin(grid.origin)
    image.SetSpacing(grid.spacing)
    image.SetDirection(grid.direction)
    out = sitk.Resample(
        image,
        list(like.shape[::-1]),
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        like.origin,
        like.spacing,
        like.direction,
        0,
        sitk.sitkInt32,
    )
    return sitk.GetArrayFromImage(out).astype(dtype)
