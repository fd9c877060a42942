"""The `Mask`: a boolean or label volume that carries its own geometry, like a `Scan`.

A mask travels with its grid (origin, spacing, direction), as TorchIO's ``LabelMap`` carries
its affine, so nothing has to pass the scan back in: `nodulekit.preprocess.resample` picks
nearest-neighbour for it, `nodulekit.preprocess.lung_volume_ml` needs only the mask, and a
mask given together with a scan on another grid is refused with both grids named.

For code written against bare arrays, a mask behaves like its array where that is cheap:
``np.asarray(mask)``, ``mask[z]``, ``mask.shape``, ``mask.dtype``, ``mask.any()``,
``mask.sum()``, and operators (``mask & other``, ``~mask``) that give plain arrays (an
array has no grid to check; use ``Mask.like(scan, result)`` to give it one back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nodulekit.data.scan import IDENTITY_DIRECTION, VoxelGrid
from nodulekit.errors import GeometryError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

MASK_DTYPES = (np.dtype(bool), np.dtype(np.uint8))


@dataclass(frozen=True, eq=False, repr=False)
class Mask(VoxelGrid, np.lib.mixins.NDArrayOperatorsMixin):
    """A ``(z, y, x)`` bool or uint8-label volume plus where it sits in the world.

    Parameters
    ----------
    array : (Z, Y, X) ndarray of bool or uint8
        True (or a label > 0) inside. Other dtypes are refused; convert with
        ``array > 0`` or ``array.astype(np.uint8)`` after checking the labels fit.
    origin, spacing, direction
        As in `Scan`: world position (mm, x, y, z) of voxel ``[0, 0, 0]``, voxel size (mm,
        x, y, z), row-major direction cosines.
    seriesuid : str, optional
        The series the mask belongs to.
    name : str, optional
        What it marks (``"lungs"``).

    Examples
    --------
    >>> import numpy as np
    >>> from nodulekit.data import Scan
    >>> scan = Scan(np.zeros((2, 4, 4), np.int16), (0, 0, 0), (0.5, 0.5, 2.0), seriesuid="1.2")
    >>> mask = Mask.like(scan, scan.array == 0, name="all")
    >>> mask
    Mask(name='all', uid='1.2', shape_zyx=(2, 4, 4), spacing_xyz_mm=(0.5, 0.5, 2), origin_xyz_mm=(0.0, 0.0, 0.0), orientation=LPS, voxels=32, volume=0.016 ml)
    >>> mask.volume_ml, mask.same_geometry(scan)
    (0.016, True)
    """

    array: np.ndarray
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...] = IDENTITY_DIRECTION
    seriesuid: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        array = self.array
        if not isinstance(array, np.ndarray):
            raise TypeError(f"Mask array must be a numpy array, not {type(array).__name__}")
        if array.ndim != 3:
            raise GeometryError(
                f"Mask array must have 3 dimensions (z, y, x), not {array.ndim} "
                f"(shape {array.shape})"
            )
        if array.dtype not in MASK_DTYPES:
            raise TypeError(
                f"Mask array must be bool or uint8 labels, not {array.dtype}; convert with "
                "array > 0, or array.astype(np.uint8) after checking the labels are 0..255"
            )
        self._check_grid_fields()
        object.__setattr__(self, "seriesuid", str(self.seriesuid))
        object.__setattr__(self, "name", str(self.name))

    @classmethod
    def like(cls, grid: VoxelGrid, array: np.ndarray, *, name: str = "") -> Mask:
        """A mask on ``grid``'s voxels (a `Scan`, another `Mask`); ``array`` must fit its shape."""
        array = np.asarray(array)
        if array.shape != grid.shape:
            raise GeometryError(
                f"mask array has shape {array.shape} but the {type(grid).__name__} grid it "
                f"should lie on has shape {grid.shape} (z, y, x)"
            )
        return cls(
            array,
            grid.origin,
            grid.spacing,
            grid.direction,
            getattr(grid, "seriesuid", ""),
            name or getattr(grid, "name", ""),
        )

    def with_array(self, array: np.ndarray) -> Mask:
        """A mask with the same geometry and identity but other voxels (same shape)."""
        return Mask.like(self, array)

    # -- what a mask measures ------------------------------------------------------------
    @property
    def voxel_count(self) -> int:
        """Number of voxels inside (True or label > 0)."""
        return int(np.count_nonzero(self.array))

    @property
    def volume_ml(self) -> float:
        """Volume inside in millilitres (cm³): voxel count times the voxel volume."""
        return self.voxel_count * float(np.prod(self.spacing)) / 1000.0

    # -- array-like where cheap, so code written for bare arrays keeps running ------------
    @property
    def dtype(self) -> np.dtype:
        """The array's dtype (bool or uint8)."""
        return self.array.dtype

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if dtype is None or np.dtype(dtype) == self.array.dtype:
            return self.array.copy() if copy else self.array
        return self.array.astype(dtype)

    def __getitem__(self, key: Any) -> Any:
        return self.array[key]

    def any(self) -> bool:
        """Whether any voxel is inside."""
        return bool(self.array.any())

    def sum(self, *args: Any, **kwargs: Any) -> Any:
        """``self.array.sum(...)``; for the voxel count, `voxel_count` says what it means."""
        return self.array.sum(*args, **kwargs)

    # -- conversion ----------------------------------------------------------------------
    def to_sitk(self) -> sitk.Image:
        """This mask as a uint8 ``SimpleITK.Image`` (the voxels are copied)."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.array.astype(np.uint8))
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, *, seriesuid: str = "", name: str = "") -> Mask:
        """A uint8 label mask from a 3D integer ``SimpleITK.Image`` (labels must be 0..255)."""
        import SimpleITK as sitk

        array = sitk.GetArrayFromImage(image)
        if array.ndim != 3 or not np.issubdtype(array.dtype, np.integer):
            raise GeometryError(
                f"a mask must be a 3D integer image, not {array.ndim}D {array.dtype}"
            )
        if array.size and (array.min() < 0 or array.max() > 255):
            raise GeometryError(
                f"mask labels {array.min()}..{array.max()} do not fit uint8 (0..255)"
            )
        return cls(
            array.astype(np.uint8),
            image.GetOrigin(),
            image.GetSpacing(),
            image.GetDirection(),
            seriesuid,
            name,
        )

    def __repr__(self) -> str:
        uid = self.seriesuid
        short_uid = f"...{uid[-12:]}" if len(uid) > 16 else uid
        sx, sy, sz = self.spacing
        ox, oy, oz = self.origin
        labels = ""
        if self.array.dtype == np.uint8:
            present = np.flatnonzero(np.bincount(self.array.ravel(), minlength=256)[1:]) + 1
            labels = f", labels={present.tolist()}"
        return (
            f"Mask(name={self.name!r}, uid={short_uid!r}, shape_zyx={self.shape}, "
            f"spacing_xyz_mm=({sx:.3g}, {sy:.3g}, {sz:.3g}), "
            f"origin_xyz_mm=({ox:.1f}, {oy:.1f}, {oz:.1f}), orientation={self.orientation}, "
            f"voxels={self.voxel_count}, volume={self.volume_ml:.4g} ml{labels})"
        )
