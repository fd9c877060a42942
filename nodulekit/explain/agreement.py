"""Do the maps point at the annotated nodule? Pointing game and positive share inside it.

For each crop of a true nodule (LUNA16 annotation: a centre and a diameter, i.e. a sphere):

- **pointing game** (Zhang et al., 2018): a hit when the hottest voxel of the map (the most
  positive one, for signed maps) lies inside the sphere, enlarged by ``tolerance_mm``;
- **positive share inside**: the fraction of the map's positive mass that lies inside the
  sphere;
- **chance**: the fraction of the crop's voxels inside the sphere, what both scores would be
  for a map that ignores the nodule (uniform, or a random hottest voxel).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nodulekit._checks import positive_triple
from nodulekit.explain.methods import Attribution


def _centres_and_spacing(
    attribution: Attribution,
    centers_xyz_mm: np.ndarray | None,
    centers_zyx_vox: np.ndarray | None,
    voxel_mm: float | Sequence[float] | None,
) -> tuple[np.ndarray, np.ndarray]:
    n, shape = len(attribution), np.asarray(attribution.maps.shape[1:], dtype=float)
    crops = attribution.crops
    if voxel_mm is not None:
        spacing = np.tile(
            np.asarray(positive_triple(voxel_mm, "voxel_mm", axes="z, y, x"), float), (n, 1)
        )
    elif crops is not None:
        spacing = np.array([c.spacing[::-1] for c in crops], dtype=float)
    else:
        raise ValueError(
            "nodule_agreement needs the voxel size: pass voxel_mm=<mm, or (z, y, x) mm> or an "
            "Attribution made with crops=[Crop, ...]"
        )
    if centers_zyx_vox is not None:
        centres = np.asarray(centers_zyx_vox, dtype=float).reshape(n, 3)
    elif centers_xyz_mm is not None:
        if crops is None:
            raise ValueError(
                "centers_xyz_mm are world points: the Attribution needs its crops "
                "(attribute(..., crops=...)); or pass centers_zyx_vox"
            )
        points = np.asarray(centers_xyz_mm, dtype=float).reshape(n, 3)
        centres = np.array([c.world_to_voxel(p) for c, p in zip(crops, points, strict=True)])
    else:
        centres = np.tile((shape - 1) / 2.0, (n, 1))
    return centres, spacing


def nodule_agreement(
    attribution: Attribution,
    diameters_mm: Sequence[float] | np.ndarray,
    *,
    centers_xyz_mm: np.ndarray | None = None,
    centers_zyx_vox: np.ndarray | None = None,
    voxel_mm: float | Sequence[float] | None = None,
    tolerance_mm: float = 0.0,
) -> pd.DataFrame:
    """Pointing game and positive share inside the nodule's sphere, one row per crop.

    Parameters
    ----------
    attribution : Attribution
        Maps of ``N`` crops.
    diameters_mm : N floats
        The annotated nodule's diameter per crop; NaN or <= 0 for a crop without a nodule
        (its row has NaN scores and ``is_nodule`` False).
    centers_xyz_mm : (N, 3), optional
        Nodule centres in world mm (needs the crops' geometry on ``attribution``).
    centers_zyx_vox : (N, 3), optional
        Nodule centres as continuous crop indices. Default: the crop's centre, where
        candidate crops are cut.
    voxel_mm : float or 3 floats (z, y, x), optional
        Voxel size; by default the crops' own spacing.
    tolerance_mm : float
        Added to the radius for the pointing game.

    Returns
    -------
    DataFrame
        ``is_nodule, diameter_mm, hit, positive_share_inside, chance`` per crop;
        `summarise_agreement` averages it over the nodules.
    """
    diameters = np.asarray(diameters_mm, dtype=float).ravel()
    if diameters.size != len(attribution):
        raise ValueError(f"got {diameters.size} diameters for {len(attribution)} maps")
    centres, spacing = _centres_and_spacing(attribution, centers_xyz_mm, centers_zyx_vox, voxel_mm)
    grid = np.indices(attribution.maps.shape[1:], dtype=float)  # (3, D, H, W)
    rows = []
    for i, diameter in enumerate(diameters):
        row = {"is_nodule": bool(np.isfinite(diameter) and diameter > 0), "diameter_mm": diameter}
        if not row["is_nodule"]:
            rows.append({**row, "hit": np.nan, "positive_share_inside": np.nan, "chance": np.nan})
            continue
        offset = (grid - centres[i][:, None, None, None]) * spacing[i][:, None, None, None]
        distance = np.sqrt((offset**2).sum(axis=0))
        inside = distance <= diameter / 2.0
        amap = attribution.maps[i]
        hottest = np.unravel_index(int(np.argmax(amap)), amap.shape)
        positive = np.clip(amap, 0, None)
        total = float(positive.sum())
        rows.append(
            {
                **row,
                "hit": float(distance[hottest] <= diameter / 2.0 + float(tolerance_mm)),
                "positive_share_inside": float(positive[inside].sum()) / total
                if total > 0
                else np.nan,
                "chance": float(inside.mean()),
            }
        )
    return pd.DataFrame(rows)


def summarise_agreement(table: pd.DataFrame, *, method: str = "") -> pd.DataFrame:
    """One row: ``method, n_nodules, pointing_game, positive_share_inside, chance`` (means)."""
    nodules = table[table["is_nodule"]]
    return pd.DataFrame(
        [
            {
                "method": method,
                "n_nodules": len(nodules),
                "pointing_game": float(nodules["hit"].mean()),
                "positive_share_inside": float(nodules["positive_share_inside"].mean()),
                "chance": float(nodules["chance"].mean()),
            }
        ]
    )
