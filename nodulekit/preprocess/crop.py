"""Crops in world space: a fixed physical cube around a world point, on a fixed voxel grid.

A `Crop` keeps its own geometry (origin, spacing, direction, in the scan's (x, y, z)
convention; world ⇄ voxel is `nodulekit.data.scan.VoxelGrid`, the one implementation `Scan`
uses), so a map computed on the crop (an attribution, a segmentation) can be put back into
the scan's grid with `Crop.paste_into`.

The crop grid: direction = the scan's direction; spacing = ``size_mm / shape`` per axis;
the centre of the grid (continuous index ``(shape - 1) / 2``) sits exactly on
``center_xyz_mm``. With an odd shape that is the centre voxel; with an even one it lies
between the middle voxels. Defaults: `DEFAULT_CROP_SIZE_MM` (32 mm) in
`DEFAULT_CROP_SHAPE_ZYX` (24 x 24 x 24 voxels), what training and the preview use.

Values: linear interpolation, SimpleITK's rule (``sitk.Resample`` with ``sitkLinear`` gives
the same values to float32 rounding, which the tests check). Because the crop grid has the
scan's direction, each crop axis runs along one scan axis and the trilinear interpolation
splits into three 1-D ones over the sub-block the cube touches. A crop voxel is inside the
scan when it lies within half a voxel of the outer voxel centres (ITK's rule); voxels outside
take ``pad_hu``. `crop_many` cuts all the crops of a scan in one call (a few times faster
than SimpleITK per crop); `crop` is `crop_many` with one centre, so both give the same values
bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from nodulekit._checks import positive_int_triple, positive_triple
from nodulekit.data.scan import Scan, VoxelGrid, rows_times_matrix
from nodulekit.errors import GeometryError

#: Edge length of the crop cube in mm (x, y, z): what training and the preview use.
DEFAULT_CROP_SIZE_MM = 32.0
#: Voxel shape (z, y, x) of a crop: 32 mm in 24 voxels is 1.33 mm per voxel.
DEFAULT_CROP_SHAPE_ZYX = (24, 24, 24)


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


def check_centers(centers_xyz_mm: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """``centers_xyz_mm`` as an ``(N, 3)`` float array of finite points, or a `GeometryError`."""
    centers = np.asarray(centers_xyz_mm, dtype=float)
    if centers.ndim == 1 and centers.size == 0:
        centers = centers.reshape(0, 3)
    if centers.ndim != 2 or centers.shape[1] != 3:
        raise GeometryError(
            f"centers_xyz_mm must be N rows of 3 numbers (x, y, z) in mm, not shape {centers.shape}"
        )
    bad = np.flatnonzero(~np.all(np.isfinite(centers), axis=1))
    if bad.size:
        check_center(centers[bad[0]], what=f"centers_xyz_mm row {bad[0]}")
    return centers


@dataclass(frozen=True, eq=False, repr=False)
class Crop(VoxelGrid):
    """A resampled cube of a scan: float32 HU ``(z, y, x)`` plus the cube's geometry.

    World ⇄ voxel (`world_to_voxel`, `voxel_to_world`, `contains`...) is the shared
    `VoxelGrid` implementation, the one `Scan` uses, direction matrix included.

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

    def __post_init__(self) -> None:
        if not isinstance(self.array, np.ndarray) or self.array.ndim != 3:
            raise GeometryError(
                f"Crop array must be a 3D (z, y, x) numpy array, not {type(self.array).__name__}"
                f" of shape {getattr(self.array, 'shape', '?')}"
            )
        self._check_grid_fields()
        center = check_center(self.center_xyz_mm)
        object.__setattr__(self, "center_xyz_mm", tuple(float(v) for v in center))

    def __repr__(self) -> str:
        cx, cy, cz = self.center_xyz_mm
        sx, sy, sz = self.spacing
        return (
            f"Crop(uid={self.seriesuid[-12:]!r}, shape_zyx={self.shape}, "
            f"center_xyz_mm=({cx:.1f}, {cy:.1f}, {cz:.1f}), "
            f"spacing_xyz_mm=({sx:.3g}, {sy:.3g}, {sz:.3g}), orientation={self.orientation}, "
            f"outside_fraction={self.outside_fraction:.2f})"
        )

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


def _grid_offsets(
    scan: VoxelGrid, size_mm: float | Sequence[float], shape_zyx: int | Sequence[int]
) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """``(shape_zyx, spacing_xyz, offset_xyz)``: crop origin = centre - offset (world mm)."""
    size_xyz = np.asarray(positive_triple(size_mm, "size_mm"))
    shape = positive_int_triple(shape_zyx, "shape_zyx")
    shape_xyz = np.asarray(shape[::-1], dtype=float)
    spacing = size_xyz / shape_xyz
    half_extent = spacing * (shape_xyz - 1) / 2.0
    offset = rows_times_matrix(half_extent[None, :], scan.direction_matrix.T)[0]  # D @ half
    return shape, spacing, offset


def crop_grid(
    scan: Scan,
    center_xyz_mm: Sequence[float],
    size_mm: float | Sequence[float] = DEFAULT_CROP_SIZE_MM,
    shape_zyx: int | Sequence[int] = DEFAULT_CROP_SHAPE_ZYX,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``(origin_xyz, spacing_xyz)`` of the crop grid centred on ``center_xyz_mm``."""
    center = check_center(center_xyz_mm)
    _, spacing, offset = _grid_offsets(scan, size_mm, shape_zyx)
    origin = center - offset
    return (
        tuple(float(v) for v in origin),  # type: ignore[return-value]
        tuple(float(v) for v in spacing),  # type: ignore[return-value]
    )


@dataclass(frozen=True, eq=False, repr=False)
class CropBatch:
    """All the crops of one scan from one `crop_many` call: one array, one grid per crop.

    ``batch[i]`` is the `Crop` of centre ``i`` (with its geometry, so ``paste_into`` works);
    ``batch.arrays`` is the ``(N, D, H, W)`` float32 stack, ready for a model or a cache.

    Attributes
    ----------
    arrays : (N, D, H, W) ndarray of float32
    origins_xyz_mm : (N, 3) ndarray
        World position of voxel ``[0, 0, 0]`` of each crop.
    spacing, direction
        Shared by every crop (the spacing is ``size_mm / shape``, the direction the scan's).
    centers_xyz_mm : (N, 3) ndarray
    outside_fractions : (N,) ndarray of float
    seriesuid : str
    """

    arrays: np.ndarray
    origins_xyz_mm: np.ndarray
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]
    centers_xyz_mm: np.ndarray
    outside_fractions: np.ndarray
    seriesuid: str = ""

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> Crop:
        return Crop(
            self.arrays[i],
            tuple(float(v) for v in self.origins_xyz_mm[i]),  # type: ignore[arg-type]
            self.spacing,
            self.direction,
            tuple(float(v) for v in self.centers_xyz_mm[i]),  # type: ignore[arg-type]
            float(self.outside_fractions[i]),
            self.seriesuid,
        )

    def __iter__(self) -> Iterator[Crop]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return (
            f"CropBatch(uid={self.seriesuid[-12:]!r}, crops={len(self)}, "
            f"shape_zyx={tuple(self.arrays.shape[1:])}, "
            f"padded={int(np.count_nonzero(self.outside_fractions))})"
        )


def _axis_plan(
    start: np.ndarray, step: float, n_out: int, n_scan: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """1-D linear interpolation plan along one axis for every crop.

    ``start`` (N,) is the continuous scan index of crop voxel 0. Returns the lower and upper
    neighbour (clamped into the scan, so the edge value extends half a voxel outwards), the
    weight of the upper one, and whether each crop voxel is inside (within half a voxel).
    """
    t = start[:, None] + step * np.arange(n_out, dtype=float)
    floor = np.floor(t)
    weight = t - floor
    lower = floor.astype(np.intp)
    inside = (t >= -0.5) & (t < n_scan - 0.5)
    top = n_scan - 1
    return (
        np.minimum(np.maximum(lower, 0), top),
        np.minimum(np.maximum(lower + 1, 0), top),
        weight,
        inside,
    )


def _interpolate_one(volume: np.ndarray, plans: list[tuple[np.ndarray, ...]], k: int) -> np.ndarray:
    """Trilinear values (float64, ``(D, H, W)``) of crop ``k``: three 1-D passes, x then y, z."""
    (z0, z1, wz, _), (y0, y1, wy, _), (x0, x1, wx, _) = plans
    lo = (z0[k, 0], y0[k, 0], x0[k, 0])
    block = volume[lo[0] : z1[k, -1] + 1, lo[1] : y1[k, -1] + 1, lo[2] : x1[k, -1] + 1]
    w = wx[k]
    b = block[:, :, x0[k] - lo[2]] * (1.0 - w) + block[:, :, x1[k] - lo[2]] * w
    w = wy[k][:, None]
    b = b[:, y0[k] - lo[1], :] * (1.0 - w) + b[:, y1[k] - lo[1], :] * w
    w = wz[k][:, None, None]
    return b[z0[k] - lo[0]] * (1.0 - w) + b[z1[k] - lo[0]] * w


def crop_many(
    scan: Scan,
    centers_xyz_mm: Sequence[Sequence[float]] | np.ndarray,
    size_mm: float | Sequence[float] = DEFAULT_CROP_SIZE_MM,
    shape_zyx: int | Sequence[int] = DEFAULT_CROP_SHAPE_ZYX,
    *,
    pad_hu: float = -1000.0,
) -> CropBatch:
    """Cut one cube per world point from ``scan``, all in one call (the batched `crop`).

    Same arguments and values as `crop` (bit for bit: `crop` calls this), with
    ``centers_xyz_mm`` an ``(N, 3)`` table of world points (x, y, z) in mm, for example
    ``table[["coordX", "coordY", "coordZ"]].to_numpy()``. The geometry of all crops is
    worked out at once; only the interpolation runs per crop. The result holds
    ``N x D x H x W`` float32 values (55 kB per 24³ crop): for tens of thousands of centres,
    call it on slices of the table.

    Returns
    -------
    CropBatch
        ``arrays`` ``(N, D, H, W)`` float32, per-crop origins and outside fractions;
        ``batch[i]`` is a `Crop`.

    Raises
    ------
    GeometryError
        For a centre holding NaN or infinity (naming its row), a bad size or shape.

    Examples
    --------
    >>> scan = Scan(np.zeros((10, 10, 10), np.int16), (0, 0, 0), (1, 1, 1))
    >>> batch = crop_many(scan, [[5, 5, 5], [0, 0, 0]], size_mm=4, shape_zyx=4)
    >>> batch.arrays.shape, batch.outside_fractions.tolist()
    ((2, 4, 4, 4), [0.0, 0.578125])
    """
    centers = check_centers(centers_xyz_mm)
    shape, spacing, offset = _grid_offsets(scan, size_mm, shape_zyx)
    origins = centers - offset
    start_zyx = scan.world_to_voxel(origins)  # continuous scan index of each crop's [0, 0, 0]
    step_zyx = (spacing / np.asarray(scan.spacing))[::-1]  # same direction: axes run together
    plans = [
        _axis_plan(start_zyx[:, axis], float(step_zyx[axis]), shape[axis], scan.shape[axis])
        for axis in range(3)
    ]
    inside_z, inside_y, inside_x = (plan[3] for plan in plans)
    counts = inside_z.sum(1) * inside_y.sum(1) * inside_x.sum(1)
    outside_fractions = 1.0 - counts / float(np.prod(shape))
    arrays = np.empty((len(centers), *shape), dtype=np.float32)
    for k in range(len(centers)):
        if counts[k] == 0:
            arrays[k] = pad_hu
            continue
        arrays[k] = _interpolate_one(scan.array, plans, k)
        if outside_fractions[k] > 0:
            inside = inside_z[k][:, None, None] & inside_y[k][None, :, None] & inside_x[k]
            arrays[k][~inside] = pad_hu
    return CropBatch(
        arrays,
        origins,
        tuple(float(v) for v in spacing),  # type: ignore[arg-type]
        scan.direction,
        centers,
        outside_fractions,
        scan.seriesuid,
    )


def crop(
    scan: Scan,
    center_xyz_mm: Sequence[float],
    size_mm: float | Sequence[float] = DEFAULT_CROP_SIZE_MM,
    shape_zyx: int | Sequence[int] = DEFAULT_CROP_SHAPE_ZYX,
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
        Physical edge length of the cube; `DEFAULT_CROP_SIZE_MM` (32 mm) by default.
    shape_zyx : int or 3 ints
        Voxel shape of the result; `DEFAULT_CROP_SHAPE_ZYX` (24 x 24 x 24) by default.
    pad_hu : float
        Value where the cube leaves the scan (air).

    Returns
    -------
    Crop
        float32 HU, linear interpolation, with its geometry and ``outside_fraction``.
        For many centres of one scan, `crop_many` gives the same values faster.

    Raises
    ------
    GeometryError
        For a NaN or infinite centre, or a bad size or shape.
    """
    center = check_center(center_xyz_mm)
    return crop_many(scan, center[None, :], size_mm, shape_zyx, pad_hu=pad_hu)[0]
