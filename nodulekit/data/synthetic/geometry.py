"""Scan geometry for the synthetic set: voxel grid, sizes, and drawing inside bounding boxes.

Everything is in world millimetres (x, y, z, LPS, identity direction as LUNA16); arrays are
``(z, y, x)``. Shapes are drawn as soft occupancy (0..1) so that their edges carry partial
volume, and each object only touches the voxels of its own bounding box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# name -> in-plane voxels, slice-count range (None: from a realistic z extent)
SIZES: dict[str, tuple[int, tuple[int, int] | None]] = {
    "tiny": (128, (28, 40)),
    "small": (256, (60, 120)),
    "full": (512, None),
}
SLICE_SPACINGS_MM = (1.25, 1.5, 2.0, 2.5)
INPLANE_SPACING_RANGE_MM = (0.6, 0.9)


@dataclass(frozen=True)
class Grid:
    """A scan's voxel grid: ``shape_zyx``, ``spacing_xyz_mm`` and ``origin_xyz_mm``."""

    shape_zyx: tuple[int, int, int]
    spacing_xyz_mm: tuple[float, float, float]
    origin_xyz_mm: tuple[float, float, float]

    @property
    def extent_xyz_mm(self) -> np.ndarray:
        nz, ny, nx = self.shape_zyx
        return np.array([nx, ny, nz]) * np.asarray(self.spacing_xyz_mm)

    def axis_mm(self, axis: int) -> np.ndarray:
        """World coordinates (mm) of voxel centres along array axis 0 (z), 1 (y) or 2 (x)."""
        xyz = 2 - axis
        n = self.shape_zyx[axis]
        return (self.origin_xyz_mm[xyz] + self.spacing_xyz_mm[xyz] * np.arange(n)).astype(
            np.float32
        )

    def to_index(self, points_xyz_mm: np.ndarray) -> np.ndarray:
        """Continuous ``(z, y, x)`` indices of world points ``(..., 3)`` in (x, y, z) mm."""
        pts = np.asarray(points_xyz_mm, dtype=float)
        idx_xyz = (pts - np.asarray(self.origin_xyz_mm)) / np.asarray(self.spacing_xyz_mm)
        return idx_xyz[..., ::-1]

    def to_world(self, index_zyx: np.ndarray) -> np.ndarray:
        """World points (x, y, z) mm of ``(z, y, x)`` indices."""
        idx = np.asarray(index_zyx, dtype=float)[..., ::-1]
        return idx * np.asarray(self.spacing_xyz_mm) + np.asarray(self.origin_xyz_mm)

    def nearest(self, point_xyz_mm: np.ndarray) -> tuple[int, int, int] | None:
        """Nearest voxel ``(z, y, x)`` of one world point, or None outside the grid."""
        idx = np.floor(self.to_index(point_xyz_mm) + 0.5).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.asarray(self.shape_zyx)):
            return None
        return (int(idx[0]), int(idx[1]), int(idx[2]))

    def box(
        self, lo_xyz_mm: np.ndarray, hi_xyz_mm: np.ndarray
    ) -> tuple[slice, slice, slice] | None:
        """Voxel slices ``(z, y, x)`` covering the world box, clipped; None when empty."""
        lo = np.ceil(self.to_index(lo_xyz_mm)).astype(int)
        hi = np.floor(self.to_index(hi_xyz_mm)).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, np.asarray(self.shape_zyx))
        if np.any(hi <= lo):
            return None
        return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))

    def box_coords(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, ...]:
        """Broadcastable world coordinates ``(x, y, z)`` (mm) of the voxels in ``box``."""
        z = self.axis_mm(0)[box[0]][:, None, None]
        y = self.axis_mm(1)[box[1]][None, :, None]
        x = self.axis_mm(2)[box[2]][None, None, :]
        return x, y, z


def sample_grid(rng: np.random.Generator, size: str) -> Grid:
    """A scan geometry: in-plane 0.6-0.9 mm, slices 1.25-2.5 mm, LUNA16-like origins."""
    n_xy, slice_range = SIZES[size]
    spacing_xy = round(float(rng.uniform(*INPLANE_SPACING_RANGE_MM)), 6)
    spacing_z = float(rng.choice(SLICE_SPACINGS_MM))
    if slice_range is None:
        n_z = round(float(rng.uniform(260.0, 340.0)) / spacing_z)
    else:
        n_z = int(rng.integers(slice_range[0], slice_range[1] + 1))
    fov = n_xy * spacing_xy
    origin_x = round(-fov / 2 + float(rng.uniform(-0.06, 0.06)) * fov, 4)
    origin_y = round(-fov / 2 + float(rng.uniform(-0.06, 0.06)) * fov, 4)
    origin_z = round(-float(rng.uniform(0.3, 0.9)) * n_z * spacing_z - 80.0, 2)
    return Grid(
        (n_z, n_xy, n_xy), (spacing_xy, spacing_xy, spacing_z), (origin_x, origin_y, origin_z)
    )


def capsule_occupancy(
    grid: Grid,
    box: tuple[slice, slice, slice],
    p0_xyz_mm: np.ndarray,
    p1_xyz_mm: np.ndarray,
    r0_mm: float,
    r1_mm: float,
) -> np.ndarray:
    """Soft occupancy (0..1) in ``box`` of a tapered tube from ``p0`` (radius r0) to ``p1``."""
    x, y, z = grid.box_coords(box)
    axis = np.asarray(p1_xyz_mm, float) - np.asarray(p0_xyz_mm, float)
    length = float(np.linalg.norm(axis))
    d = axis / max(length, 1e-6)
    wx, wy, wz = x - p0_xyz_mm[0], y - p0_xyz_mm[1], z - p0_xyz_mm[2]
    along = wx * d[0] + wy * d[1] + wz * d[2]
    t = np.clip(along / max(length, 1e-6), 0.0, 1.0)
    s = t * length
    dist = np.sqrt((wx - s * d[0]) ** 2 + (wy - s * d[1]) ** 2 + (wz - s * d[2]) ** 2)
    radius = r0_mm + (r1_mm - r0_mm) * t
    edge = grid.spacing_xyz_mm[0]
    return np.clip((radius - dist) / edge + 0.5, 0.0, 1.0).astype(np.float32)


def blob_occupancy(
    grid: Grid,
    box: tuple[slice, slice, slice],
    center_xyz_mm: np.ndarray,
    radii_mm: np.ndarray,
    rotation: np.ndarray,
    lobes: np.ndarray,
) -> np.ndarray:
    """Soft occupancy of a rotated, slightly lobulated ellipsoid.

    ``rotation`` is 3 x 3 (rows: the ellipsoid's axes in world), ``lobes`` is ``(K, 4)``:
    unit direction (3) and amplitude (1) of bumps that make the surface irregular.
    """
    x, y, z = grid.box_coords(box)
    wx, wy, wz = x - center_xyz_mm[0], y - center_xyz_mm[1], z - center_xyz_mm[2]
    local = [rotation[i, 0] * wx + rotation[i, 1] * wy + rotation[i, 2] * wz for i in range(3)]
    norm = np.sqrt(sum((local[i] / radii_mm[i]) ** 2 for i in range(3)))  # 1 on the surface
    dist = np.sqrt(wx**2 + wy**2 + wz**2) + 1e-6
    bump = np.zeros_like(norm)
    for lobe in lobes:
        cos = (wx * lobe[0] + wy * lobe[1] + wz * lobe[2]) / dist
        bump += lobe[3] * np.clip(cos, 0.0, 1.0) ** 4
    mean_radius = float(np.mean(radii_mm))
    # signed distance (mm) to the surface, approximately
    signed = (1.0 + bump - norm) * mean_radius
    edge = grid.spacing_xyz_mm[0]
    return np.clip(signed / edge + 0.5, 0.0, 1.0).astype(np.float32)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3 x 3 rotation matrix."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length 1."""
    return v / max(float(np.linalg.norm(v)), 1e-9)
