"""A tiny chest phantom with known lungs, airway, vessels, a nodule and stomach gas."""

from __future__ import annotations

import numpy as np

from nodulekit.data import Scan


def chest_phantom(
    shape_zyx: tuple[int, int, int] = (40, 96, 112),
    spacing_xyz: tuple[float, float, float] = (3.0, 3.0, 6.0),
) -> tuple[Scan, dict[str, np.ndarray]]:
    """A phantom chest and its truth masks: ``lungs``, ``airway``, ``stomach``, ``nodule``.

    Index z grows towards the head (identity direction, as LUNA16). The trachea runs down
    the middle from the top slice and splits into two bronchi that enter the lungs.
    """
    nz, ny, nx = shape_zyx
    sx, sy, sz = spacing_xyz
    z, y, x = np.meshgrid(np.arange(nz) * sz, np.arange(ny) * sy, np.arange(nx) * sx, indexing="ij")
    cz, cy, cx = (nz - 1) * sz / 2, (ny - 1) * sy / 2, (nx - 1) * sx / 2
    array = np.full(shape_zyx, -1000, dtype=np.int16)
    body = ((x - cx) / (0.45 * nx * sx)) ** 2 + ((y - cy) / (0.38 * ny * sy)) ** 2 <= 1
    array[body] = 40
    array[:, -3:, :] = 300  # the table, separated from the body by an air gap

    lung_cz = cz - 0.05 * nz * sz
    lungs = np.zeros(shape_zyx, dtype=bool)
    for side in (-1, 1):
        lungs |= (
            ((x - (cx + side * 0.22 * nx * sx)) / (0.17 * nx * sx)) ** 2
            + ((y - cy) / (0.28 * ny * sy)) ** 2
            + ((z - lung_cz) / (0.32 * nz * sz)) ** 2
        ) <= 1
    array[lungs] = -850
    # vessels (lines of soft tissue) and a nodule inside the left lung
    vessels = lungs & (np.abs(y - cy) < 1.5 * sy) & (np.abs((x - cx) % 30 - 15) < 2)
    array[vessels] = 40
    nodule_center = (lung_cz, cy + 0.1 * ny * sy, cx + 0.22 * nx * sx)
    nodule = (
        (z - nodule_center[0]) ** 2 + (y - nodule_center[1]) ** 2 + (x - nodule_center[2]) ** 2
    ) <= 8.0**2
    array[nodule] = 30

    # trachea from the top slice down to the carina, then two bronchi into the lungs
    carina_z = lung_cz + 0.15 * nz * sz
    radius = 7.0
    trachea = ((x - cx) ** 2 + (y - cy) ** 2 <= radius**2) & (z >= carina_z)
    t = np.clip((carina_z - z) / (0.2 * nz * sz), 0, 1)
    bronchi = np.zeros(shape_zyx, dtype=bool)
    for side in (-1, 1):
        bx = cx + side * t * 0.2 * nx * sx
        bronchi |= ((x - bx) ** 2 + (y - cy) ** 2 <= (radius * 0.7) ** 2) & (z < carina_z) & (t < 1)
    airway = (trachea | bronchi) & body
    array[airway] = -1000
    # stomach gas below the lungs
    stomach = (
        ((x - (cx + 0.2 * nx * sx)) ** 2 + (y - cy) ** 2 + (z - 0.025 * nz * sz) ** 2) <= 8.0**2
    ) & ~lungs
    array[stomach] = -1000
    scan = Scan(array, origin=(-100.0, -120.0, -300.0), spacing=spacing_xyz, seriesuid="1.2.3")
    truth = {
        "lungs": lungs & ~airway,
        "airway": airway & ~lungs,
        "stomach": stomach,
        "nodule": nodule,
    }
    return scan, truth


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (arrays or `Mask`s)."""
    a, b = np.asarray(a), np.asarray(b)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total
