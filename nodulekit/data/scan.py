"""The `Scan`: a CT volume in Hounsfield units together with its geometry.

Axis order, written down once:

==========================  ===========  =========================================
what                        order        example name
==========================  ===========  =========================================
numpy arrays, voxel indices (z, y, x)    ``scan.array[z, y, x]``, ``index_zyx``
world points (LPS, mm)      (x, y, z)    ``center_xyz_mm``, LUNA16 ``coordX/Y/Z``
``origin``, ``spacing``     (x, y, z)    as the file (and SimpleITK) says
==========================  ===========  =========================================

The mapping between them is SimpleITK's::

    world_xyz = origin + direction @ (spacing * index_xyz)

where ``direction`` is the 3 x 3 matrix whose *columns* are the world directions of the
x, y and z array axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nodulekit._checks import positive_triple
from nodulekit.errors import GeometryError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

IDENTITY_DIRECTION: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
SAME_SPACE_MESSAGE = "Inputs do not occupy the same physical space"


def _triple(value: Sequence[float], name: str) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=float).ravel()
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise GeometryError(f"{name} must be 3 finite numbers (x, y, z) in mm, not {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def check_grid(
    origin: Sequence[float], spacing: float | Sequence[float], direction: Sequence[float]
) -> tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, ...]]:
    """``(origin, spacing, direction)`` checked and as plain float tuples.

    The one check of a voxel grid, used by `Scan`, `Mask` and the crop's grid: origin is 3
    finite numbers (mm), spacing one or 3 finite positive numbers (mm), direction a row-major
    orthonormal 3 x 3 matrix (rotations and flips only). Raises `GeometryError` otherwise.
    """
    checked_origin = _triple(origin, "origin")
    checked_spacing = positive_triple(spacing, "spacing")
    flat = np.asarray(direction, dtype=float).ravel()
    if flat.shape != (9,):
        raise GeometryError(
            f"direction must be 9 numbers (a row-major 3 x 3 matrix), not {direction!r}"
        )
    matrix = flat.reshape(3, 3)
    if not (np.all(np.isfinite(matrix)) and np.abs(matrix.T @ matrix - np.eye(3)).max() <= 1e-4):
        raise GeometryError(
            f"direction must be orthonormal (rotations and flips only), not {matrix.tolist()}"
        )
    return checked_origin, checked_spacing, tuple(float(v) for v in flat)


def rows_times_matrix(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points @ matrix`` for points ``(..., 3)``, summed in a fixed order.

    Element-wise instead of BLAS, so that a point gives bit-for-bit the same result whether
    it is mapped alone or in a batch of thousands (BLAS kernels change with the batch size).
    """
    p0, p1, p2 = points[..., 0:1], points[..., 1:2], points[..., 2:3]
    return p0 * matrix[0] + p1 * matrix[1] + p2 * matrix[2]


class VoxelGrid:
    """World ⇄ voxel geometry of a ``(z, y, x)`` array: shared by `Scan`, `Mask` and `Crop`.

    A subclass has ``array``, ``origin``, ``spacing`` and ``direction`` (checked with
    `check_grid`); this class holds the one implementation of the mapping between them::

        world_xyz = origin + direction @ (spacing * index_xyz)
    """

    __slots__ = ()
    array: np.ndarray
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]

    def _check_grid_fields(self) -> None:
        """`check_grid` the fields and store them normalised (for frozen dataclasses'
        ``__post_init__``)."""
        origin, spacing, direction = check_grid(self.origin, self.spacing, self.direction)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "direction", direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_zyx_mm(self) -> tuple[float, float, float]:
        """Voxel size in mm in array order ``(z, y, x)`` (``spacing`` is in file order x, y, z)."""
        return self.spacing[::-1]

    @property
    def direction_matrix(self) -> np.ndarray:
        """The 3 x 3 direction matrix; column ``i`` is the world direction of array axis x, y, z."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def size_xyz_mm(self) -> tuple[float, float, float]:
        """Physical extent in mm along the x, y and z array axes (voxel count times spacing)."""
        nz, ny, nx = self.shape
        sx, sy, sz = self.spacing
        return (nx * sx, ny * sy, nz * sz)

    @property
    def orientation(self) -> str:
        """Three-letter orientation code of the array axes x, y, z (``"LPS"`` for LUNA16)."""
        letters = (("L", "R"), ("P", "A"), ("S", "I"))  # +x = L, +y = P, +z = S in LPS
        code = ""
        for column in self.direction_matrix.T:
            axis = int(np.argmax(np.abs(column)))
            code += letters[axis][0 if column[axis] > 0 else 1]
        return code

    def world_to_voxel(self, points_xyz_mm: Sequence[float] | np.ndarray) -> np.ndarray:
        """Continuous voxel index ``(z, y, x)`` of world points ``(x, y, z)`` in mm.

        Accepts one point (shape ``(3,)``) or many (shape ``(N, 3)``) and returns the same
        leading shape. Honours the direction matrix, like SimpleITK's
        ``TransformPhysicalPointToContinuousIndex``.
        """
        pts = np.asarray(points_xyz_mm, dtype=float)
        if pts.shape[-1:] != (3,):
            raise ValueError(f"world points must end in 3 values (x, y, z), not shape {pts.shape}")
        rel = pts - np.asarray(self.origin)
        # index_xyz = (D^T @ rel) / spacing; D is orthonormal so D^-1 = D^T
        index_xyz = rows_times_matrix(rel, self.direction_matrix) / np.asarray(self.spacing)
        return index_xyz[..., ::-1].copy()

    def world_to_index(self, points_xyz_mm: Sequence[float] | np.ndarray) -> np.ndarray:
        """Nearest voxel index ``(z, y, x)`` (int64) of world points ``(x, y, z)`` in mm."""
        return np.floor(self.world_to_voxel(points_xyz_mm) + 0.5).astype(np.int64)

    def voxel_to_world(self, index_zyx: Sequence[float] | np.ndarray) -> np.ndarray:
        """World points ``(x, y, z)`` in mm of (continuous) voxel indices ``(z, y, x)``."""
        idx = np.asarray(index_zyx, dtype=float)
        if idx.shape[-1:] != (3,):
            raise ValueError(f"voxel indices must end in 3 values (z, y, x), not shape {idx.shape}")
        scaled_xyz = idx[..., ::-1] * np.asarray(self.spacing)
        return rows_times_matrix(scaled_xyz, self.direction_matrix.T) + np.asarray(self.origin)

    def contains(self, index_zyx: Sequence[float] | np.ndarray) -> np.ndarray | bool:
        """Whether (continuous) voxel indices ``(z, y, x)`` fall inside the volume.

        ITK's rule: within half a voxel of the outer voxel centres.
        """
        idx = np.asarray(index_zyx, dtype=float)
        upper = np.asarray(self.shape, dtype=float) - 0.5
        inside = np.all((idx >= -0.5) & (idx < upper), axis=-1)
        return bool(inside) if inside.ndim == 0 else inside

    def same_geometry(self, other: VoxelGrid, *, atol_mm: float = 1e-3) -> bool:
        """Whether ``other`` has the same shape, origin, spacing and direction."""
        return (
            self.shape == other.shape
            and np.allclose(self.origin, other.origin, atol=atol_mm)
            and np.allclose(self.spacing, other.spacing, atol=atol_mm)
            and np.allclose(self.direction, other.direction, atol=1e-6)
        )

    def describe_grid(self) -> str:
        """One line naming this grid: shape, spacing, origin and orientation (for errors)."""
        sx, sy, sz = self.spacing
        ox, oy, oz = self.origin
        return (
            f"shape_zyx={self.shape}, spacing_xyz_mm=({sx:.4g}, {sy:.4g}, {sz:.4g}), "
            f"origin_xyz_mm=({ox:.2f}, {oy:.2f}, {oz:.2f}), direction={self.direction}"
        )

    def check_same_geometry(self, other: VoxelGrid, *, atol_mm: float = 1e-3) -> None:
        """Raise `GeometryError` unless ``other`` lies in the same physical space.

        The message names both grids, ``self``'s first, each under its type's name.
        """
        if not self.same_geometry(other, atol_mm=atol_mm):
            mine, theirs = type(self).__name__, type(other).__name__
            if mine == theirs:
                mine, theirs = f"first {mine}", f"second {theirs}"
            raise GeometryError(
                f"{SAME_SPACE_MESSAGE}: {mine} grid {self.describe_grid()}; "
                f"{theirs} grid {other.describe_grid()}"
            )


@dataclass(frozen=True, eq=False, repr=False)
class Scan(VoxelGrid):
    """A CT volume: int16 HU voxels indexed ``(z, y, x)`` plus where they sit in the world.

    Parameters
    ----------
    array : (Z, Y, X) ndarray of int16
        Hounsfield units. Other integer or float arrays are refused; convert them with
        ``np.rint(a).astype(np.int16)`` after checking their range.
    origin : 3 floats
        World position in mm (x, y, z, LPS) of the centre of voxel ``[0, 0, 0]``.
    spacing : 1 or 3 floats
        Voxel size in mm along the x, y and z array axes (file order, not array order).
    direction : 9 floats, optional
        Row-major 3 x 3 direction cosines, as ``SimpleITK.Image.GetDirection()`` gives them.
    seriesuid : str, optional
        The series instance UID (the LUNA16 ``seriesuid``).
    path : path, optional
        Where the scan was read from.
    metadata : mapping, optional
        Non-identifying acquisition facts (modality, slice thickness, kernel...).

    Examples
    --------
    >>> import numpy as np
    >>> scan = Scan(np.zeros((4, 5, 6), np.int16), origin=(10, 20, 30), spacing=(0.5, 0.5, 2))
    >>> scan.shape, scan.spacing_zyx_mm
    ((4, 5, 6), (2.0, 0.5, 0.5))
    >>> scan.voxel_to_world((1, 2, 3))  # (z, y, x) in, (x, y, z) mm out
    array([11.5, 21. , 32. ])
    >>> scan.world_to_voxel((11.5, 21.0, 32.0))
    array([1., 2., 3.])
    """

    array: np.ndarray
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...] = IDENTITY_DIRECTION
    seriesuid: str = ""
    path: Path | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        array = self.array
        if not isinstance(array, np.ndarray):
            raise TypeError(f"Scan array must be a numpy array, not {type(array).__name__}")
        if array.ndim != 3:
            raise GeometryError(
                f"Scan array must have 3 dimensions (z, y, x), not {array.ndim} "
                f"(shape {array.shape})"
            )
        if array.dtype != np.int16:
            raise TypeError(
                f"Scan array must hold int16 Hounsfield units, not {array.dtype}; "
                "convert with np.rint(array).astype(np.int16) after checking the range"
            )
        self._check_grid_fields()
        object.__setattr__(self, "seriesuid", str(self.seriesuid))
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "metadata", dict(self.metadata))

    # -- conversion ---------------------------------------------------------------------
    def with_array(self, array: np.ndarray) -> Scan:
        """A scan with the same geometry and identity but other voxels (same shape)."""
        if array.shape != self.array.shape:
            raise GeometryError(f"new array must have shape {self.shape}, not {array.shape}")
        return Scan(
            array,
            self.origin,
            self.spacing,
            self.direction,
            self.seriesuid,
            self.path,
            self.metadata,
        )

    def to_sitk(self) -> sitk.Image:
        """This scan as a ``SimpleITK.Image`` (the voxels are copied)."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.array)
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        return image

    @classmethod
    def from_sitk(
        cls,
        image: sitk.Image,
        *,
        seriesuid: str = "",
        path: str | Path | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Scan:
        """Build a scan from a 3D ``SimpleITK.Image``; non-int16 voxels are rounded to int16."""
        import SimpleITK as sitk

        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise GeometryError(
                f"a scan must be a 3D single-channel image, not {image.GetDimension()}D with "
                f"{image.GetNumberOfComponentsPerPixel()} components"
                + (f" ({path})" if path else "")
            )
        array = sitk.GetArrayFromImage(image)
        array = to_int16_hu(array, source=str(path) if path else "image")
        return cls(
            array,
            image.GetOrigin(),
            image.GetSpacing(),
            image.GetDirection(),
            seriesuid,
            Path(path) if path else None,
            metadata or {},
        )

    # -- printing -----------------------------------------------------------------------
    def __repr__(self) -> str:
        uid = self.seriesuid
        short_uid = f"...{uid[-12:]}" if len(uid) > 16 else uid
        sx, sy, sz = self.spacing
        ox, oy, oz = self.origin
        return (
            f"Scan(uid={short_uid!r}, shape_zyx={self.shape}, "
            f"spacing_xyz_mm=({sx:.3g}, {sy:.3g}, {sz:.3g}), "
            f"origin_xyz_mm=({ox:.1f}, {oy:.1f}, {oz:.1f}), orientation={self.orientation}, "
            f"memory={self.array.nbytes / 2**20:.1f} MiB)"
        )


def to_int16_hu(array: np.ndarray, *, source: str = "array") -> np.ndarray:
    """Return ``array`` as int16 HU, rounding floats; refuse values that do not fit in int16."""
    if array.dtype == np.int16:
        return array
    if array.size and (np.issubdtype(array.dtype, np.floating) or array.dtype.itemsize >= 2):
        lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise GeometryError(f"{source}: voxels contain NaN or infinity; a CT scan cannot")
        if lo < -32768 or hi > 32767:
            raise GeometryError(
                f"{source}: voxel values {lo:g}..{hi:g} do not fit int16 Hounsfield units; "
                "is this a CT scan in HU (rescale slope and intercept applied)?"
            )
    if np.issubdtype(array.dtype, np.floating):
        return np.rint(array).astype(np.int16)
    return array.astype(np.int16)
