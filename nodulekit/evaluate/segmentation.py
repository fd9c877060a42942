"""Segmentation metrics per nodule: Dice, IoU, volume-equivalent diameter error, intervals by series.

Each annotated nodule is scored inside its own box (its voxels' bounding box grown by
``margin_mm``), so that a neighbouring nodule or a vessel elsewhere in the scan neither helps
nor hurts it; false positives far from every nodule belong to the detection metrics (FROC).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from nodulekit.evaluate._bootstrap import percentile_interval, series_weights

__all__ = [
    "dice_iou",
    "equivalent_diameter_mm",
    "nodule_segmentation_metrics",
    "summarise_segmentation",
]


def dice_iou(prediction: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks (both empty: 1, 1).

    Examples
    --------
    >>> a = np.zeros((1, 4, 4), bool); a[0, :2, :2] = True    # 4 voxels
    >>> b = np.zeros((1, 4, 4), bool); b[0, :2, :3] = True    # 6 voxels, 4 shared
    >>> dice_iou(a, b)
    (0.8, 0.6666666666666666)
    """
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    if prediction.shape != truth.shape:
        raise ValueError(f"masks differ in shape: {prediction.shape} and {truth.shape}")
    inter = int(np.logical_and(prediction, truth).sum())
    total = int(prediction.sum()) + int(truth.sum())
    union = total - inter
    if total == 0:
        return 1.0, 1.0
    return 2 * inter / total, inter / union


def equivalent_diameter_mm(n_voxels: int, spacing_zyx_mm: Iterable[float]) -> float:
    """Diameter of the sphere with the volume of ``n_voxels`` voxels.

    >>> round(equivalent_diameter_mm(1000, (1, 1, 1)), 3)
    12.407
    """
    volume = n_voxels * float(np.prod(list(spacing_zyx_mm)))
    return float((6 * volume / math.pi) ** (1 / 3))


def nodule_segmentation_metrics(
    probability: np.ndarray,
    labels: np.ndarray,
    spacing_zyx_mm: Iterable[float],
    *,
    seriesuid: str = "",
    threshold: float = 0.5,
    margin_mm: float = 5.0,
) -> pd.DataFrame:
    """One row per nodule (label k > 0 of ``labels``): Dice, IoU and diameters in its box.

    Parameters
    ----------
    probability : ndarray (z, y, x)
        Predicted nodule probability (or a 0/1 mask) on the same grid as ``labels``.
    labels : ndarray (z, y, x)
        Label map: k for the k-th annotated nodule, 0 elsewhere.
    spacing_zyx_mm : 3 floats
        Voxel spacing, (z, y, x) order, in mm.
    """
    if probability.shape != labels.shape:
        raise ValueError(
            f"prediction {probability.shape} and label map {labels.shape} are not on one grid"
        )
    spacing = np.asarray(list(spacing_zyx_mm), dtype=float)
    grow = np.ceil(margin_mm / spacing).astype(int)
    predicted = probability >= threshold
    rows = []
    for k in range(1, int(labels.max()) + 1):
        voxels = np.argwhere(labels == k)
        if not len(voxels):
            continue
        lo = np.maximum(voxels.min(axis=0) - grow, 0)
        hi = np.minimum(voxels.max(axis=0) + grow + 1, labels.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        truth = labels[box] == k
        pred = predicted[box] & ((labels[box] == 0) | truth)  # other nodules' voxels do not count
        dice, iou = dice_iou(pred, truth)
        true_d = equivalent_diameter_mm(int(truth.sum()), spacing)
        pred_d = equivalent_diameter_mm(int(pred.sum()), spacing)
        rows.append(
            {
                "seriesuid": seriesuid,
                "label": k,
                "dice": dice,
                "iou": iou,
                "diameter_mm": true_d,
                "predicted_diameter_mm": pred_d,
                "diameter_error_mm": pred_d - true_d,
            }
        )
    columns = [
        "seriesuid",
        "label",
        "dice",
        "iou",
        "diameter_mm",
        "predicted_diameter_mm",
        "diameter_error_mm",
    ]
    return pd.DataFrame(rows, columns=columns)


def summarise_segmentation(
    per_nodule: pd.DataFrame,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Mean Dice, IoU and absolute diameter error over nodules, with intervals by series.

    The bootstrap draws series (never nodules) with replacement; a replicate's mean weighs each
    nodule by how often its series was drawn.
    """
    if per_nodule.empty:
        raise ValueError("no nodules to summarise: the label maps held no nodule")
    codes, uids = pd.factorize(per_nodule["seriesuid"])
    weights = series_weights(len(uids), n_resamples, seed=seed)[:, codes]  # (R, nodules)
    values = {
        "dice": per_nodule["dice"].to_numpy(float),
        "iou": per_nodule["iou"].to_numpy(float),
        "abs_diameter_error_mm": per_nodule["diameter_error_mm"].abs().to_numpy(float),
    }
    rows = []
    for name, v in values.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates = (weights * v).sum(axis=1) / weights.sum(axis=1)
        low, high = percentile_interval(replicates, confidence)
        rows.append(
            {"metric": name, "value": float(v.mean()), "low": float(low), "high": float(high)}
        )
    table = pd.DataFrame(rows)
    table.attrs.update(n_nodules=len(per_nodule), n_series=len(uids), confidence=confidence)
    return table
