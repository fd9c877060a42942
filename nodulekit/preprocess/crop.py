"""Crops in world space: a fixed physical cube around a world point, on a fixed voxel grid.

A `Crop` keeps its own geometry (origin, spacing, direction, in the scan's (x, y, z)
convention), so a map computed on the crop (an attribution, a segmentation) can be put back
into the scan's grid with `Crop.paste_into`.

The crop grid: direction = the scan's direction; spacing = ``size_mm / shape`` per axis;
the centre of the grid (continuous index ``(shape - 1) / 2``) sits exactly on
``center_xyz_mm``. With an odd shape that is the centre voxel; with an even one it lies
between the middle voxels. Only the sub-block of the scan that the cube touches is read
and resampled (linear, SimpleITK), so a crop costs well under a millisecond of arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nodulekit.data.scan import Scan
from nodulekit.errors import GeometryError


def _xyz(value: float | Sequence[float], name: str) -> tuple[float, float, float]:
    if np.isscalar(value):
        values = (float(value),) * 3  # type: ignore[arg-type]
    else:
        arr = np.asarray(value, dtype=float).ravel()
        if arr.shape != (3,):
            raise GeometryError(f"{name} must be one number or 3 numbers (x, y, z), not {value!r}")
        values = (float(arr[0]), float(arr[1]), float(arr[2]))
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise GeometryError(f"{name} must be strictly positive and finite (mm), not {value!r}")
    return values  # type: ignore[return-value]


def check_center(center_xyz_mm: Sequence[float], *, what: str = "center_xyz_mm") -> np.ndarray:
    """``center_xyz_mm`` as 3 finite floats, or a `GeometryError` naming ``what``."""
    center = np.asarray(center_xyz_mm, dtype=float).ravel()
    if center.shape != (3,):
        raise GeometryError(f"{what} must be 3 numbers (x, y, z) in mm, not {center_xyz_mm!r}")
    if not np.all(np.isfinite(center)):
        raise GeometryError(
            f"{what} = {tuple(center.tolist())} holds NaN or infinity; a crop centre must be a "
            "finite world point (x, y, z) in mm. Drop or fix that row."
        )
    return center


@dataclass(frozen=True, eq=False)
class Crop:
    """A resampled cube of a scan: float32 HU ``(z, y, x)`` plus the cube's geometry.

    Attributes
    ----------
    array : (D, H, W) ndarray of float32
        HU; air (``pad_hu``) where the cube leaves the scan.
    origin, spacing : 3 floats (x, y, z)
        World position (mm) of voxel ``[0, 0, 0]`` and the voxel size (mm), as in `Scan`.
    direction : 9 floats
        Row-major direction matrix, the scan's own.
    center_xyz_mm : 3 floats
        The world point the crop is centred on.
    outside_fraction : float
        Fraction of the crop's voxels that fall outside the scan (padded).
    seriesuid : str
        The scan's series UID.
    """

    array: np.ndarray
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]
    center_xyz_mm: tuple[float, float, float]
    outside_fraction: float = 0.0
    seriesuid: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxel shape ``(z, y, x)``."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def direction_matrix(self) -> np.ndarray:
        """The 3 x 3 direction matrix (columns: world directions of array axes x, y, z)."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def voxel_to_world(self, index_zyx: Sequence[float] | np.ndarray) -> np.ndarray:
        """World points ``(x, y, z)`` in mm of (continuous) crop voxel indices ``(z, y, x)``."""
        idx = np.asarray(index_zyx, dtype=float)
        scaled_xyz = idx[..., ::-1] * np.asarray(self.spacing)
        return scaled_xyz @ self.direction_matrix.T + np.asarray(self.origin)

    def world_to_voxel(self, points_xyz_mm: Sequence[float] | np.ndarray) -> np.ndarray:
        """Continuous crop voxel indices ``(z, y, x)`` of world points ``(x, y, z)`` in mm."""
        rel = np.asarray(points_xyz_mm, dtype=float) - np.asarray(self.origin)
        index_xyz = rel @ self.direction_matrix / np.asarray(self.spacing)
        return index_xyz[..., ::-1].copy()

    def paste_into(
        self,
        scan: Scan,
        values: np.ndarray | None = None,
        *,
        interpolator: str = "linear",
        fill: float = 0.0,
    ) -> np.ndarray:
        """Resample a crop-aligned map back onto ``scan``'s grid (float32, ``scan.shape``).

        Parameters
        ----------
        scan : Scan
            The scan the crop was cut from (or any scan in the same world).
        values : (D, H, W) ndarray, optional
            A map on the crop's grid, e.g. an attribution; the crop's own HU by default.
        interpolator : {"linear", "nearest"}
        fill : float
            Value of scan voxels outside the crop.
        """
        import SimpleITK as sitk

        values = self.array if values is None else np.asarray(values)
        if values.shape != self.array.shape:
            raise GeometryError(
                f"paste_into: values have shape {values.shape}, the crop {self.array.shape}; "
                "a crop-aligned map must have the crop's (z, y, x) shape"
            )
        methods = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}
        if interpolator not in methods:
            raise ValueError(f"interpolator must be one of {sorted(methods)}, not {interpolator!r}")
        out = np.full(scan.shape, fill, dtype=np.float32)
        corners = _corners_zyx(self.shape)
        box = _bounding_box(scan.world_to_voxel(self.voxel_to_world(corners)), scan.shape, 1)
        if box is None:
            return out
        lo, hi = box
        image = sitk.GetImageFromArray(np.ascontiguousarray(values, dtype=np.float32))
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        sub_origin = scan.voxel_to_world(np.asarray(lo, dtype=float))
        resampled = sitk.Resample(
            image,
            [int(h - low) for low, h in zip(lo[::-1], hi[::-1], strict=True)],
            sitk.Transform(),
            methods[interpolator],
            [float(v) for v in sub_origin],
            scan.spacing,
            scan.direction,
            float(fill),
            sitk.sitkFloat32,
        )
        out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = sitk.GetArrayFromImage(resampled)
        return out


def _corners_zyx(shape_zyx: Sequence[int]) -> np.ndarray:
    """The 8 corner voxel indices ``(z, y, x)`` of a grid."""
    nz, ny, nx = (n - 1 for n in shape_zyx)
    return np.array([[z, y, x] for z in (0, nz) for y in (0, ny) for x in (0, nx)], dtype=float)


def _bounding_box(
    index_zyx: np.ndarray, shape_zyx: Sequence[int], margin: int
) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """Integer half-open box ``(lo, hi)`` of a scan covering continuous indices, clipped."""
    lo = np.floor(index_zyx.min(axis=0)).astype(int) - margin
    hi = np.ceil(index_zyx.max(axis=0)).astype(int) + margin + 1
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.asarray(shape_zyx))
    if np.any(hi <= lo):
        return None
    return tuple(int(v) for v in lo), tuple(int(v) for v in hi)  # type: ignore[return-value]


def crop_grid(
    scan: Scan,
    center_xyz_mm: Sequence[float],
    size_mm: float | Sequence[float] = 40.0,
    shape_zyx: Sequence[int] = (32, 32, 32),
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``(origin_xyz, spacing_xyz)`` of the crop grid centred on ``center_xyz_mm``."""
    center = check_center(center_xyz_mm)
    size_xyz = np.asarray(_xyz(size_mm, "size_mm"))
    shape = tuple(int(n) for n in shape_zyx)
    if len(shape) != 3 or min(shape) < 1:
        raise GeometryError(f"shape_zyx must be 3 positive integers (z, y, x), not {shape_zyx!r}")
    shape_xyz = np.asarray(shape[::-1], dtype=float)
    spacing = size_xyz / shape_xyz
    half_extent = spacing * (shape_xyz - 1) / 2.0
    origin = center - scan.direction_matrix @ half_extent
    return (
        tuple(float(v) for v in origin),  # type: ignore[return-value]
        tuple(float(v) for v in spacing),  # type: ignore[return-value]
    )


def crop(
    scan: Scan,
    center_xyz_mm: Sequence[float],
    size_mm: float | Sequence[float] = 40.0,
    shape_zyx: Sequence[int] = (32, 32, 32),
    *,
    pad_hu: float = -1000.0,
) -> Crop:
    """Cut a cube of ``size_mm`` around a world point and resample it to ``shape_zyx``.

    Parameters
    ----------
    scan : Scan
    center_xyz_mm : 3 floats
        World point (x, y, z) in mm, LPS (a LUNA16 ``coordX, coordY, coordZ``).
    size_mm : float or 3 floats (x, y, z)
        Physical edge length of the cube.
    shape_zyx : 3 ints
        Voxel shape of the result.
    pad_hu : float
        Value where the cube leaves the scan (air).

    Returns
    -------
    Crop
        float32 HU, linear interpolation, with its geometry and ``outside_fraction``.

    Raises
    ------
    GeometryError
        For a NaN or infinite centre, or a bad size or shape.
    """
    import SimpleITK as sitk

    origin, spacing = crop_grid(scan, center_xyz_mm, size_mm, shape_zyx)
    shape = tuple(int(n) for n in shape_zyx)
    center = tuple(float(v) for v in np.asarray(center_xyz_mm, dtype=float))
    result = Crop(
        np.full(shape, pad_hu, dtype=np.float32),
        origin,
        spacing,
        scan.direction,
        center,  # type: ignore[arg-type]
        1.0,
        scan.seriesuid,
    )
    corners = scan.world_to_voxel(result.voxel_to_world(_corners_zyx(shape)))
    inside: np.ndarray | None = None
    if np.all(scan.contains(corners)):
        outside_fraction = 0.0  # a box whose corners are inside is inside
    else:
        # which crop voxels lie inside the scan (ITK's rule: within half a voxel of the edge)
        zz, yy, xx = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
        grid_zyx = np.stack([zz.ravel(), yy.ravel(), xx.ravel()], axis=1).astype(float)
        inside = np.asarray(scan.contains(scan.world_to_voxel(result.voxel_to_world(grid_zyx))))
        outside_fraction = 1.0 - float(np.count_nonzero(inside)) / inside.size
    box = _bounding_box(corners, scan.shape, 1)
    if box is None or outside_fraction >= 1.0:
        return result
    lo, hi = box
    block = scan.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    image = sitk.GetImageFromArray(np.ascontiguousarray(block, dtype=np.float32))
    image.SetOrigin([float(v) for v in scan.voxel_to_world(np.asarray(lo, dtype=float))])
    image.SetSpacing(scan.spacing)
    image.SetDirection(scan.direction)
    resampled = sitk.Resample(
        image,
        list(shape[::-1]),
        sitk.Transform(),
        sitk.sitkLinear,
        origin,
        spacing,
        scan.direction,
        float(pad_hu),
        sitk.sitkFloat32,
    )
    array = sitk.GetArrayFromImage(resampled)
    if inside is not None:
        # the sub-block edge is the scan edge where it was clipped; enforce the same rule
        array[~inside.reshape(shape)] = pad_hu
    return Crop(
        array,
        origin,
        spacing,
        scan.direction,
        center,  # type: ignore[arg-type]
        outside_fraction,
        scan.seriesuid,
    )
