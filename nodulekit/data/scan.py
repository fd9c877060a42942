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

from nodulekit.errors import GeometryError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

IDENTITY_DIRECTION: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
SAME_SPACE_MESSAGE = "Inputs do not occupy the same physical space"


def _triple(value: Sequence[float], name: str) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=float).ravel()
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise GeometryError(f"{name} must be 3 finite numbers (x, y, z), not {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True, eq=False, repr=False)
class Scan:
    """A CT volume: int16 HU voxels indexed ``(z, y, x)`` plus where they sit in the world.

    Parameters
    ----------
    array : (Z, Y, X) ndarray of int16
        Hounsfield units. Other integer or float arrays are refused; convert them with
        ``np.rint(a).astype(np.int16)`` after checking their range.
    origin : 3 floats
        World position in mm (x, y, z, LPS) of the centre of voxel ``[0, 0, 0]``.
    spacing : 3 floats
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
    >>> scan.shape
    (4, 5, 6)
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
        origin = _triple(self.origin, "origin")
        spacing = _triple(self.spacing, "spacing")
        if min(spacing) <= 0:
            raise GeometryError(f"spacing must be strictly positive (mm), not {spacing}")
        direction = np.asarray(self.direction, dtype=float).ravel()
        if direction.shape != (9,):
            raise GeometryError(
                f"direction must be 9 numbers (a row-major 3 x 3 matrix), not {self.direction!r}"
            )
        matrix = direction.reshape(3, 3)
        if not np.allclose(matrix.T @ matrix, np.eye(3), atol=1e-4):
            raise GeometryError(
                f"direction must be orthonormal (rotations and flips only), not {matrix.tolist()}"
            )
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "direction", tuple(float(v) for v in direction))
        object.__setattr__(self, "seriesuid", str(self.seriesuid))
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "metadata", dict(self.metadata))

    # -- shape and geometry -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel size in mm in array order ``(z, y, x)``."""
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
        index_xyz = rel @ self.direction_matrix / np.asarray(self.spacing)
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
        return scaled_xyz @ self.direction_matrix.T + np.asarray(self.origin)

    def contains(self, index_zyx: Sequence[float] | np.ndarray) -> np.ndarray | bool:
        """Whether (continuous) voxel indices ``(z, y, x)`` fall inside the volume."""
        idx = np.asarray(index_zyx, dtype=float)
        upper = np.asarray(self.shape, dtype=float) - 0.5
        inside = np.all((idx >= -0.5) & (idx < upper), axis=-1)
        return bool(inside) if inside.ndim == 0 else inside

    def same_geometry(self, other: Scan, *, atol_mm: float = 1e-3) -> bool:
        """Whether ``other`` has the same shape, origin, spacing and direction."""
        return (
            self.shape == other.shape
            and np.allclose(self.origin, other.origin, atol=atol_mm)
            and np.allclose(self.spacing, other.spacing, atol=atol_mm)
            and np.allclose(self.direction, other.direction, atol=1e-6)
        )

    def check_same_geometry(self, other: Scan, *, atol_mm: float = 1e-3) -> None:
        """Raise `GeometryError` unless ``other`` lies in the same physical space."""
        if not self.same_geometry(other, atol_mm=atol_mm):
            raise GeometryError(
                f"{SAME_SPACE_MESSAGE}: shape {self.shape} vs {other.shape}, origin {self.origin} "
                f"vs {other.origin}, spacing {self.spacing} vs {other.spacing}, direction "
                f"{self.direction} vs {other.direction}"
            )

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
