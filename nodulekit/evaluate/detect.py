"""Full-scan detection: candidates from multi-scale blob detection in the lungs, scored by a
checkpoint, written as a LUNA16 submission.

1. `candidate_points`: the scan resampled to an isotropic grid (1.25 mm), HU scaled to [0, 1]
   in two windows (full range; lung to -400 HU for ground-glass nodules) inside the lung mask
   (`nodulekit.preprocess.lung_mask`; air outside, so the chest wall makes no edge), the scale-normalised Laplacian of Gaussian (``-sigma^2 LoG``) at radii of
   2 to 15 mm (``sigma = r / sqrt(3)``, the 3D blob scale), local maxima at each scale,
   the (window, scale) groups interleaved strongest first (so that the many small vessel
   dots do not crowd out larger blobs), marks closer than ``merge_mm`` (or half the stronger
   blob's radius) merged;
2. `score_points`: a crop around each with the checkpoint's geometry, scored in batches
   (CUDA with mixed precision when present);
3. `detect_scan`: both, one row per mark: ``seriesuid, coordX, coordY, coordZ, probability``
   (plus ``diameter_mm``, the blob's size estimate, and ``blob_score``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

GRID_MM = 1.25
RADII_MM = (2.0, 3.0, 4.5, 7.0, 10.0, 15.0)


def _isotropic(scan: Any, grid_mm: float) -> tuple[Any, np.ndarray]:
    """The scan and its lung mask resampled to ``grid_mm`` voxels (mask: nearest)."""
    from nodulekit.preprocess import lung_mask, resample, resample_mask

    mask = np.asarray(lung_mask(scan)).astype(np.uint8)  # a Mask object or an array
    iso = resample(scan, grid_mm)
    iso_mask = resample_mask(mask, iso, source=scan)
    return iso, np.asarray(iso_mask).astype(bool)


def blob_peaks(
    volume: np.ndarray, radii_vox: Sequence[float], mask: np.ndarray, min_response: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of the scale-normalised ``-sigma^2 LoG`` at each scale, inside ``mask``.

    Returns ``(index_zyx (N, 3), response (N,), scale (N,))``. Peaks are taken per scale (not
    on the maximum over scales), so a small nodule beside a large vessel keeps its own peak.
    """
    from scipy.ndimage import gaussian_laplace, maximum_filter

    found = []
    for k, radius in enumerate(radii_vox):
        sigma = radius / np.sqrt(3.0)
        response = -(sigma**2) * gaussian_laplace(volume, sigma, mode="nearest")
        peaks = (response == maximum_filter(response, size=3)) & mask & (response > min_response)
        index = np.argwhere(peaks)
        found.append((index, response[peaks], np.full(len(index), k)))
    index = np.concatenate([f[0] for f in found])
    return index, np.concatenate([f[1] for f in found]), np.concatenate([f[2] for f in found])


def _merge(points_mm: np.ndarray, radii_mm: np.ndarray, merge_mm: float) -> np.ndarray:
    """Greedy non-maximum suppression (points sorted strongest first): kept rows."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points_mm)
    suppressed = np.zeros(len(points_mm), bool)
    keep = []
    for i in range(len(points_mm)):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in tree.query_ball_point(points_mm[i], max(merge_mm, 0.5 * radii_mm[i])):
            if j > i:
                suppressed[j] = True
    return np.asarray(keep, dtype=np.int64)


def candidate_points(
    scan: Any,
    *,
    max_candidates: int = 200,
    grid_mm: float = GRID_MM,
    radii_mm: Sequence[float] = RADII_MM,
    merge_mm: float = 5.0,
    min_response: float = 0.02,
    windows_hu: Sequence[tuple[float, float]] = ((-1000.0, 400.0), (-1000.0, -400.0)),
    interleave: bool = True,
) -> pd.DataFrame:
    """Blob candidates inside the lungs: ``coordX, coordY, coordZ`` (world mm), ``diameter_mm``
    (size estimate), ``blob_score`` (LoG response), strongest first, at most ``max_candidates``.

    Peaks are searched in each of ``windows_hu`` (HU clipped to the window, scaled to [0, 1]):
    the full range keeps a solid nodule apart from the vessel beside it; the narrow one
    saturates solid tissue so that a faint ground-glass nodule (about -600 HU) is as strong a
    blob as a solid one. Both sets of peaks are merged.
    """
    from nodulekit.preprocess.window import normalize_hu

    iso, mask = _isotropic(scan, grid_mm)
    radii_vox = [r / grid_mm for r in radii_mm]
    found = []
    for w, (low, high) in enumerate(windows_hu):
        scaled = normalize_hu(np.asarray(iso.array, np.float32), min_hu=low, max_hu=high)
        volume = np.where(mask, scaled, 0.0).astype(np.float32)
        index, response, scale = blob_peaks(volume, radii_vox, mask, min_response)
        found.append((index, response, scale, scale + w * len(radii_vox)))
    index_zyx, score, scale, group = (np.concatenate([f[k] for f in found]) for k in range(4))
    # interleave the (window, scale) groups, strongest first within each: vessel dots at the
    # smallest scale are many and strong, and would otherwise crowd out larger blobs
    by_score = np.argsort(-score, kind="stable")
    rank_in_group = np.empty(len(score), np.int64)
    for g in np.unique(group):
        members = by_score[group[by_score] == g]
        rank_in_group[members] = np.arange(len(members))
    order = np.lexsort((-score, rank_in_group)) if interleave else by_score
    index_zyx, score = index_zyx[order], score[order]
    radius = np.asarray(radii_mm)[scale[order]]
    world = iso.voxel_to_world(index_zyx.astype(float)).reshape(-1, 3)
    keep = _merge(world, radius, merge_mm)[:max_candidates] if len(world) else np.zeros(0, int)
    return pd.DataFrame(
        {
            "coordX": world[keep, 0],
            "coordY": world[keep, 1],
            "coordZ": world[keep, 2],
            "diameter_mm": 2 * radius[keep],
            "blob_score": score[keep].astype(float),
        }
    )


def score_points(
    scan: Any,
    points: pd.DataFrame,
    model: Any,
    *,
    size_mm: float,
    shape_zyx: Sequence[int],
    batch_size: int = 128,
    device: str = "auto",
) -> np.ndarray:
    """Nodule probability of a crop (the checkpoint's geometry) around each point."""
    from nodulekit.evaluate.scoring import score_crops
    from nodulekit.preprocess import crop

    xyz = points[["coordX", "coordY", "coordZ"]].to_numpy(float)
    crops = (
        np.stack([crop(scan, c, size_mm, shape_zyx).array for c in xyz])
        if len(xyz)
        else (np.zeros((0, *shape_zyx), np.float32))
    )
    return score_crops(model, crops, batch_size=batch_size, device=device)


def detect_scan(
    scan: Any,
    checkpoint: str | os.PathLike | tuple[Any, dict],
    *,
    max_candidates: int = 200,
    seriesuid: str | None = None,
    device: str = "auto",
    batch_size: int = 128,
    candidates: str = "blob",
    segmenter: str | os.PathLike | tuple[Any, dict] | None = None,
) -> pd.DataFrame:
    """Marks of one scan, most probable first: ``seriesuid, coordX, coordY, coordZ,
    probability, diameter_mm, blob_score``.

    ``checkpoint``: a path, or the ``(model, config)`` of `nodulekit.evaluate.scoring.load_model`
    (to load it once for many scans). ``seriesuid``: the UID written (default: the scan's).
    ``candidates="unet"``: candidates from the segmentation of ``segmenter`` (a ``--task
    segment`` checkpoint, or its ``(model, config)``) instead of blobs
    (`nodulekit.evaluate.segment_candidates.unet_candidate_points`); the table then has
    ``diameter_mm`` and ``volume_mm3`` measured from each candidate's mask, and ``seg_score``.
    """
    from nodulekit.evaluate.scoring import crop_geometry, load_model

    model, config = (
        checkpoint if isinstance(checkpoint, tuple) else load_model(checkpoint, device=device)
    )
    size_mm, shape = crop_geometry(config)
    points = _candidates(scan, candidates, segmenter, max_candidates, device)
    probability = score_points(
        scan, points, model, size_mm=size_mm, shape_zyx=shape, batch_size=batch_size,
        device=device,
    )  # fmt: skip
    uid = seriesuid or getattr(scan, "seriesuid", "") or "scan"
    table = points.assign(probability=probability.astype(float), seriesuid=uid)
    columns = ["seriesuid", "coordX", "coordY", "coordZ", "probability", "diameter_mm"]
    extra = ["blob_score"] if candidates == "blob" else ["volume_mm3", "seg_score"]
    table = table[[*columns, *extra]]
    return table.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)


def _candidates(
    scan: Any, source: str, segmenter: Any, max_candidates: int, device: str
) -> pd.DataFrame:
    """Candidate points of ``source``: ``"blob"`` (`candidate_points`) or ``"unet"``."""
    if source == "blob":
        return candidate_points(scan, max_candidates=max_candidates)
    if source != "unet":
        raise ValueError(f"candidates must be 'blob' or 'unet', not {source!r}")
    if segmenter is None:
        raise ValueError(
            "candidates 'unet' needs a segmenter: the best.pt of `nodulekit train --task segment`"
        )
    from nodulekit.evaluate.segment_candidates import unet_candidate_points
    from nodulekit.evaluate.segmentation import load_segmenter
    from nodulekit.train.loop import resolve_device

    model, _ = (
        segmenter if isinstance(segmenter, tuple) else load_segmenter(segmenter, device=device)
    )
    return unet_candidate_points(
        scan, model, max_candidates=max_candidates, device=resolve_device(device)
    )
