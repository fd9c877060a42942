"""Segmentation metrics per nodule: Dice, IoU, volume-equivalent diameter error, intervals by series.

Each annotated nodule is scored inside its own box (its voxels' bounding box grown by
``margin_mm``), so that a neighbouring nodule or a vessel elsewhere in the scan neither helps
nor hurts it; false positives far from every nodule belong to the detection metrics (FROC).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from nodulekit.errors import CheckpointError
from nodulekit.evaluate._bootstrap import percentile_interval, series_weights

__all__ = [
    "dice_iou",
    "equivalent_diameter_mm",
    "evaluate_segmentation",
    "load_segmenter",
    "nodule_segmentation_metrics",
    "segment_nodule_boxes",
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


def load_segmenter(checkpoint: str | os.PathLike, *, device: str = "auto") -> tuple[Any, dict]:
    """A segmentation checkpoint's U-Net (eval mode, on ``device``) and its training config.

    Raises
    ------
    CheckpointError
        The checkpoint holds a classifier (trained with ``--task classify``), not a U-Net.
    """
    from nodulekit.evaluate.scoring import load_model
    from nodulekit.models import SEGMENTATION_MODELS

    model, config = load_model(checkpoint, device=device)
    if config.get("model") not in SEGMENTATION_MODELS:
        raise CheckpointError(
            f"{checkpoint} holds model {config.get('model')!r}, a classifier, not a U-Net; a "
            "segmenter is a "
            f"U-Net trained with `nodulekit train --task segment` (models {list(SEGMENTATION_MODELS)})"
        )
    return model, config


def _nodule_boxes(labels: np.ndarray, grow_zyx: np.ndarray) -> list[tuple[slice, slice, slice]]:
    """Each nodule's bounding box grown by ``grow_zyx`` voxels, clipped to the volume."""
    boxes = []
    for k in range(1, int(labels.max()) + 1):
        voxels = np.argwhere(labels == k)
        if len(voxels):
            lo = np.maximum(voxels.min(axis=0) - grow_zyx, 0)
            hi = np.minimum(voxels.max(axis=0) + grow_zyx + 1, labels.shape)
            boxes.append(tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True)))
    return boxes


def segment_nodule_boxes(
    model: Any, scan: Any, labels: np.ndarray, *, context_mm: float = 16.0, device: Any = "cpu"
) -> np.ndarray:
    """Nodule probability in each labelled nodule's box grown by ``context_mm`` (0 elsewhere).

    The network sees the nodule with ``context_mm`` of its surroundings on every side (what a
    reader sees around it), not the whole scan: the per-nodule metrics score these boxes only.
    """
    from nodulekit.train.segment import predict_volume

    spacing = np.asarray(scan.spacing[::-1], dtype=float)
    probability = np.zeros(scan.shape, np.float32)
    for box in _nodule_boxes(labels, np.ceil(context_mm / spacing).astype(int)):
        part = predict_volume(
            model,
            scan,
            z_range=(box[0].start, box[0].stop),
            box_yx=(box[1], box[2]),
            device=device,
        )
        probability[box] = np.maximum(probability[box], part[box])
    return probability


def evaluate_segmentation(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    subsets: Iterable[int] | None = None,
    *,
    device: str = "auto",
    margin_mm: float = 5.0,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-nodule Dice, IoU and diameter error of a segmentation checkpoint on held-out scans.

    Parameters
    ----------
    checkpoint : path
        A ``best.pt`` of ``nodulekit train --task segment``.
    data : path
        The LUNA16-layout root (masks in ``seg-nodules-*``, else the sphere fallback).
    subsets : ints, optional
        Scans of these subsets; default the checkpoint's test subsets (else its validation's).

    Returns
    -------
    per_nodule, summary : DataFrame
        `nodule_segmentation_metrics` rows of every scan (plus ``mask_source``), and
        `summarise_segmentation` of them (intervals by series).
    """
    from nodulekit.data import Luna16
    from nodulekit.train.loop import resolve_device
    from nodulekit.train.segment import nodule_labels

    model, config = load_segmenter(checkpoint, device=device)
    if subsets is None:
        subsets = config.get("test_subsets") or config.get("val_subsets") or []
    subsets = [int(s) for s in subsets]
    luna = Luna16(data, warn_missing=False)
    uids = luna.scans.loc[luna.scans["subset"].astype(int).isin(subsets), "seriesuid"].tolist()
    if not uids:
        raise ValueError(f"{data}: no scans in subsets {subsets}; give subsets present on disk")
    parts = []
    for uid in uids:
        scan = luna.load(uid)
        labels, source = nodule_labels(luna, uid, scan)
        probability = segment_nodule_boxes(model, scan, labels, device=resolve_device(device))
        rows = nodule_segmentation_metrics(
            probability, labels, scan.spacing[::-1], seriesuid=uid, margin_mm=margin_mm
        )
        parts.append(rows.assign(mask_source=source))
    per_nodule = pd.concat(parts, ignore_index=True)
    summary = summarise_segmentation(per_nodule, n_resamples=n_resamples, seed=seed)
    summary.attrs["subsets"] = subsets
    return per_nodule, summary
