"""The chest phantom: body, fat, spine, sternum, ribs, two lungs, trachea and main bronchi.

Shapes live in normalised body coordinates: ``u = (x - cx) / a`` (patient left is +u),
``v = (y - cy) / b`` (posterior is +v) and ``t = (z - z_base) / height`` (0 at the lung
bases, 1 at the apices). The lungs are implicit shapes that can be asked about any world
point, so the vessel trees and nodules can be grown and placed inside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nodulekit.data.synthetic.geometry import Grid, capsule_occupancy

RIGHT_LUNG, LEFT_LUNG, AIRWAY = 3, 4, 5
LUNG_OUTER_RHO = 0.8  # lungs stay inside this fraction of the body ellipse (ribs lie outside)
RIB_RHO = 0.86
FAT_RHO = 0.93


@dataclass
class Anatomy:
    """Random but plausible chest proportions, in world millimetres."""

    cx: float
    cy: float
    a: float  # body half-width (mm, x)
    b: float  # body half-depth (mm, y)
    z_base: float  # lung bases (world z)
    height: float  # lung height (mm)
    scale: float  # size of tubes and bones relative to an adult chest
    hu: dict[str, float]
    lung_center: tuple[float, float] = (0.42, 0.04)
    lung_radii: tuple[float, float] = (0.33, 0.72)
    mediastinum: float = 0.14
    dome_peak: tuple[float, float] = (0.2, 0.15)  # right, left
    heart: tuple[float, ...] = (0.1, -0.32, 0.22, 0.33, 0.42, 0.3)  # u, v, t, radii
    phases: np.ndarray = field(default_factory=lambda: np.zeros(6))
    carina_t: float = 0.62
    trachea_v: float = 0.15

    # -- coordinates ----------------------------------------------------------------------
    def uvt(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
        return (x - self.cx) / self.a, (y - self.cy) / self.b, (z - self.z_base) / self.height

    def world(self, u: float, v: float, t: float) -> np.ndarray:
        return np.array([self.cx + u * self.a, self.cy + v * self.b, self.z_base + t * self.height])

    # -- the lungs --------------------------------------------------------------------------
    def lung_labels(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Lung label (3 right, 4 left, 0 elsewhere) of broadcastable world coordinates."""
        u, v, t = self.uvt(x, y, z)
        u, v, t = np.asarray(u, np.float32), np.asarray(v, np.float32), np.asarray(t, np.float32)
        shape = np.broadcast_shapes(u.shape, v.shape, t.shape)
        labels = np.zeros(shape, np.uint8)
        apex = np.sqrt(np.clip((1.0 - t) / 0.28, 0.0, 1.0))  # cross-section shrinks at the top
        rho2 = u * u + v * v
        hu_, hv, ht, hru, hrv, hrt = self.heart
        heart = ((u - hu_) / hru) ** 2 + ((v - hv) / hrv) ** 2 + ((t - ht) / hrt) ** 2 < 1.0
        outside_common = heart | (rho2 > LUNG_OUTER_RHO**2) | (t >= 1.0)
        uc, vc = self.lung_center
        wu, wv = self.lung_radii
        scale = np.maximum(apex, 1e-3)
        for side, label, peak, phase in (
            (-1.0, RIGHT_LUNG, self.dome_peak[0], self.phases[:3]),
            (1.0, LEFT_LUNG, self.dome_peak[1], self.phases[3:]),
        ):
            uu = side * u
            du = (uu - uc) / (wu * scale)
            dv = (v - vc + 0.12 * (1.0 - apex)) / (wv * scale)
            r2 = du * du + dv * dv
            r = np.sqrt(r2) + 1e-6
            c, s = du / r, dv / r  # cos and sin of the polar angle, without arctan2
            c2, s2 = c * c, s * s
            sin3, cos3 = s * (3.0 - 4.0 * s2), c * (4.0 * c2 - 3.0)
            sin5 = s * (16.0 * s2 * s2 - 20.0 * s2 + 5.0)
            cos5 = c * (16.0 * c2 * c2 - 20.0 * c2 + 5.0)
            ph0, ph2 = phase[0] + 3.0 * t, phase[2] + 5.0 * t
            wobble = (
                0.05 * (sin3 * np.cos(ph0) + cos3 * np.sin(ph0))
                + 0.03 * (sin5 * np.cos(phase[1]) + cos5 * np.sin(phase[1]))
                + 0.02 * (2.0 * s * c * np.cos(ph2) + (c2 - s2) * np.sin(ph2))
            )
            inside = r2 < (1.0 + wobble) ** 2
            dome = peak * np.clip(1.0 - ((uu - uc) / 0.42) ** 2 - (v / 0.85) ** 2, 0.0, 1.0)
            medial = self.mediastinum * (1.0 - 0.35 * np.clip(np.abs(v) - 0.3, 0.0, 1.0))
            inside &= (t > dome) & (uu > medial)
            labels[np.broadcast_to(inside, shape) & ~outside_common] = label
        return labels

    def lung_volume(self, grid: Grid) -> np.ndarray:
        """Lung labels of every voxel, evaluated only where a lung can be (fast)."""
        z_mm, y_mm, x_mm = grid.axis_mm(0), grid.axis_mm(1), grid.axis_mm(2)
        u2 = ((x_mm - self.cx) / self.a)[None, :]
        v2 = ((y_mm - self.cy) / self.b)[:, None]
        possible = (u2**2 + v2**2 < LUNG_OUTER_RHO**2) & (np.abs(u2) > 0.5 * self.mediastinum)
        idx = np.flatnonzero(possible)
        ys, xs = np.unravel_index(idx, possible.shape)
        labels = np.zeros(grid.shape_zyx, np.uint8)
        t = (z_mm - self.z_base) / self.height
        rows = np.nonzero(t < 1.0)[0]
        if rows.size and idx.size:
            part = self.lung_labels(x_mm[xs][None, :], y_mm[ys][None, :], z_mm[rows][:, None])
            flat = labels.reshape(labels.shape[0], -1)
            flat[rows[0] : rows[-1] + 1, idx] = part
        return labels

    # -- airway centre lines -------------------------------------------------------------------
    def airway_tubes(self, z_top: float) -> list[tuple[np.ndarray, np.ndarray, float, float, bool]]:
        """Airway segments ``(p0, p1, r0, r1, main)``; ``main`` ones get label 5 (trachea, bronchi)."""
        s = self.scale
        carina = self.world(0.0, self.trachea_v, self.carina_t)
        top = carina.copy()
        top[2] = z_top + 10.0
        r_tr = 8.0 * s
        tubes = [(top, carina, r_tr, r_tr * 0.95, True)]
        for side, drop, r_main in ((-1.0, 0.09, 6.0 * s), (1.0, 0.06, 5.5 * s)):
            hilum = self.world(side * (self.mediastinum + 0.1), 0.08, self.carina_t - drop)
            tubes.append((carina, hilum, r_main, r_main * 0.9, True))
            for du, dv, dt in ((0.12, -0.2, 0.18), (0.14, 0.15, -0.2), (0.16, -0.25, -0.12)):
                end = self.world(
                    side * (self.mediastinum + 0.1 + du), 0.08 + dv, self.carina_t - drop + dt
                )
                tubes.append((hilum, end, r_main * 0.6, r_main * 0.35, False))
        return tubes

    # -- rendering ---------------------------------------------------------------------------
    def render(self, grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Draw the chest: float32 HU volume (no vessels, nodules, blur or noise), lung and
        airway labels, and where any airway lumen is (bool)."""
        z_mm, y_mm, x_mm = grid.axis_mm(0), grid.axis_mm(1), grid.axis_mm(2)
        u2 = ((x_mm - self.cx) / self.a)[None, :]
        v2 = ((y_mm - self.cy) / self.b)[:, None]
        rho = np.sqrt(u2**2 + v2**2)
        hu = self.hu
        vol = np.full(grid.shape_zyx, -1000.0, np.float32)
        vol[:, rho < 1.0] = hu["fat"]
        vol[:, rho < FAT_RHO] = hu["soft"]
        self._draw_bones(vol, grid, u2, v2, rho)

        labels = self.lung_volume(grid)
        lung = labels > 0
        # parenchyma: denser towards the back (gravity), plus low-frequency texture
        gradient = hu["lung"] + 45.0 * np.clip(v2 + 0.2, 0.0, 1.2)
        texture = _smooth_noise(rng, grid.shape_zyx, (4, 12, 12)) * 18.0
        parenchyma = gradient[None, :, :] + texture
        vol[lung] = parenchyma[lung]

        # airways: all walls first, then all lumens, so that no wall crosses a lumen
        airway_label = np.zeros(grid.shape_zyx, bool)
        airway_any = np.zeros(grid.shape_zyx, bool)
        tubes = self.airway_tubes(float(z_mm[-1]))
        wall = 1.6 * self.scale + 0.4
        for step in ("wall", "lumen"):
            for p0, p1, r0, r1, main in tubes:
                pad = max(r0, r1) + wall + 2.0
                box = grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
                if box is None:
                    continue
                sub = vol[box]
                if step == "wall":
                    outer = capsule_occupancy(grid, box, p0, p1, r0 + wall, r1 + wall)
                    sub += outer * (hu["airway_wall"] - sub)
                    continue
                inner = capsule_occupancy(grid, box, p0, p1, r0, r1)
                sub += inner * (-1000.0 - sub)
                airway_any[box] |= inner > 0.0
                if main:
                    airway_label[box] |= inner >= 0.5
        labels[airway_label] = AIRWAY
        return vol, labels, airway_any

    def _draw_bones(
        self, vol: np.ndarray, grid: Grid, u2: np.ndarray, v2: np.ndarray, rho: np.ndarray
    ) -> None:
        s, a, b, hu = self.scale, self.a, self.b, self.hu
        x_mm = u2 * a  # relative to the body centre
        y_mm = v2 * b
        z_mm = grid.axis_mm(0)
        # spine: vertebral body with a cortical rim, canal, posterior arch
        vy = (0.62 * b, 14.0 * s, 12.0 * s)
        body_e = (x_mm / vy[1]) ** 2 + ((y_mm - vy[0]) / vy[2]) ** 2
        canal_y = vy[0] + vy[2] + 8.0 * s
        canal_r = np.sqrt(x_mm**2 + (y_mm - canal_y) ** 2)
        arch = (canal_r < 12.0 * s) | ((np.abs(x_mm) < 3.0 * s) & (y_mm > canal_y) & (rho < 0.97))
        vol[:, body_e < 1.0] = hu["bone_cortex"]
        vol[:, body_e < 0.7] = hu["bone_marrow"]
        vol[:, arch] = hu["bone_cortex"]
        vol[:, canal_r < 7.0 * s] = hu["soft"] - 15.0
        period, disc = 28.0 * s, 5.0 * s
        discs = np.nonzero(np.mod(z_mm - self.z_base, period) < disc)[0]
        if discs.size:
            plane = vol[discs]
            plane[:, body_e < 1.0] = hu["soft"] + 40.0
            vol[discs] = plane
        # sternum, in the upper two thirds of the lungs
        st = (x_mm / (13.0 * s)) ** 2 + ((y_mm + (1.0 - 0.075 - 0.06) * b) / (5.5 * s)) ** 2 < 1.0
        t = (z_mm - self.z_base) / self.height
        rows = np.nonzero((t > 0.3) & (t < 0.98))[0]
        if rows.size:
            plane = vol[rows]
            plane[:, st] = hu["bone_marrow"] + 150.0
            vol[rows] = plane
        # ribs: one arc per level, running down towards the front
        phi = np.arctan2(np.abs(u2) * a, v2 * b) * np.ones_like(rho)  # 0 at the spine
        ring = (np.abs(rho - RIB_RHO) < 0.06) & (phi > 0.25) & (phi < 0.78 * np.pi)
        idx = np.flatnonzero(ring)
        dr = ((rho.ravel()[idx] - RIB_RHO) * 0.5 * (a + b)) / (3.2 * s)
        drop_shape = (1.0 - np.cos(phi.ravel()[idx])) / 2.0
        spacing = 24.0 * s
        drop = 1.6 * spacing
        half_h = 4.5 * s
        flat = vol.reshape(vol.shape[0], -1)
        for z_rib in np.arange(
            self.z_base + 0.1 * spacing, self.z_base + self.height + drop, spacing
        ):
            z_line = z_rib - drop * drop_shape
            rows = np.nonzero((z_mm > z_rib - drop - 2 * half_h) & (z_mm < z_rib + 2 * half_h))[0]
            if not rows.size:
                continue
            dz = (z_mm[rows][:, None] - z_line[None, :]) / half_h
            e = dr[None, :] ** 2 + dz**2
            block = flat[rows[0] : rows[-1] + 1][:, idx]
            block = np.where(
                e < 0.45, hu["bone_marrow"], np.where(e < 1.0, hu["bone_cortex"], block)
            )
            flat[rows[0] : rows[-1] + 1, idx] = block


def sample_anatomy(rng: np.random.Generator, grid: Grid) -> Anatomy:
    """Random chest proportions that fit the scan's field of view."""
    ext = grid.extent_xyz_mm
    center = np.asarray(grid.origin_xyz_mm) + (ext - np.asarray(grid.spacing_xyz_mm)) / 2
    a = float(rng.uniform(0.40, 0.45)) * ext[0]
    b = a * float(rng.uniform(0.62, 0.74))
    height = float(rng.uniform(0.84, 0.97)) * ext[2]
    z_base = float(grid.origin_xyz_mm[2]) + float(rng.uniform(0.01, 0.12)) * ext[2]
    hu = {
        "fat": float(rng.uniform(-115, -85)),
        "soft": float(rng.uniform(35, 55)),
        "lung": float(rng.uniform(-880, -835)),
        "airway_wall": float(rng.uniform(0, 40)),
        "bone_cortex": float(rng.uniform(650, 950)),
        "bone_marrow": float(rng.uniform(180, 320)),
        "vessel": float(rng.uniform(30, 55)),
    }
    scale = float(np.clip(a / 150.0, 0.5, 1.15))
    return Anatomy(
        cx=float(center[0] + rng.uniform(-0.03, 0.03) * ext[0]),
        cy=float(center[1] + rng.uniform(-0.02, 0.05) * ext[1]),
        a=a,
        b=b,
        z_base=z_base,
        height=height,
        scale=scale,
        hu=hu,
        lung_center=(float(rng.uniform(0.40, 0.44)), float(rng.uniform(0.0, 0.08))),
        lung_radii=(float(rng.uniform(0.30, 0.34)), float(rng.uniform(0.66, 0.74))),
        mediastinum=float(rng.uniform(0.12, 0.17)),
        dome_peak=(float(rng.uniform(0.16, 0.26)), float(rng.uniform(0.12, 0.2))),
        heart=(
            float(rng.uniform(0.06, 0.14)),
            float(rng.uniform(-0.38, -0.28)),
            float(rng.uniform(0.15, 0.28)),
            float(rng.uniform(0.28, 0.36)),
            float(rng.uniform(0.36, 0.46)),
            float(rng.uniform(0.25, 0.35)),
        ),
        phases=rng.uniform(0, 2 * np.pi, 6),
        carina_t=float(rng.uniform(0.58, 0.68)),
        trachea_v=float(rng.uniform(0.08, 0.2)),
    )


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], step: tuple[int, ...]
) -> np.ndarray:
    """Random field varying over ``step`` voxels: a coarse grid, linearly interpolated."""
    coarse_shape = tuple(int(np.ceil(n / s)) + 2 for n, s in zip(shape, step, strict=True))
    field = rng.standard_normal(coarse_shape).astype(np.float32)
    for axis in (2, 1, 0):  # the full-size pass last, along the slowest axis (fast copies)
        n, s = shape[axis], step[axis]
        pos = np.arange(n, dtype=np.float32) / s
        lo = pos.astype(int)
        w = (pos - lo).reshape([-1 if a == axis else 1 for a in range(3)])
        field = np.take(field, lo, axis=axis) * (1 - w) + np.take(field, lo + 1, axis=axis) * w
    return field
