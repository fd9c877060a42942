"""Full-scan detection: candidates from multi-scale blob detection in the lungs, scored by a
checkpoint, written as a LUNA16 submission.

1. `candidate_points`: the scan resampled to an isotropic grid (1.25 mm), HU scaled to [0, 1]
   in two windows (full range; lung to -400 HU for ground-glass nodules) inside the lung mask
   (`nodulekit.preprocess.lung_mask`; air outside, so the chest wall makes no edge), local
   maxima of the scale-normalised Laplacian of Gaussian (``-sigma^2 LoG``) at radii of 2 to
   15 mm (``sigma = r / sqrt(3)``, the 3D blob scale) at each scale; each peak scored by its
   Hessian `blobness` at its own scale (all three curvatures negative and alike: a vessel,
   with one curvature near zero, falls far behind a nodule of the same size and contrast);
   the (window, scale) groups interleaved best first (so that the many small dots of one
   scale do not crowd out larger blobs), marks closer than ``merge_mm`` (or a quarter of the better
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
WINDOWS_HU = ((-1000.0, 400.0), (-1000.0, -400.0))
# a mark suppresses weaker ones within max(merge_mm, this x its radius): a quarter, not a half,
# so a 15 mm blob (hilum, vessel junction) does not swallow a 4 mm nodule 6 mm away
MERGE_RADIUS_FRACTION = 0.25


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


def _merge(
    points_mm: np.ndarray,
    radii_mm: np.ndarray,
    merge_mm: float,
    limit: int | None = None,
    radius_fraction: float = MERGE_RADIUS_FRACTION,
) -> np.ndarray:
    """Greedy non-maximum suppression (points sorted strongest first): kept rows, the first
    ``limit`` of them."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points_mm)
    suppressed = np.zeros(len(points_mm), bool)
    keep = []
    for i in range(len(points_mm)):
        if suppressed[i]:
            continue
        if limit is not None and len(keep) >= limit:
            break
        keep.append(i)
        for j in tree.query_ball_point(points_mm[i], max(merge_mm, radius_fraction * radii_mm[i])):
            if j > i:
                suppressed[j] = True
    return np.asarray(keep, dtype=np.int64)


def _gaussian_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled Gaussian and its first and second derivatives out to ``3 sigma``: the kernels
    of ``scipy.ndimage.gaussian_filter(..., order=k, truncate=3.0)``."""
    r = max(1, int(np.ceil(3.0 * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    g0 = np.exp(-0.5 * (t / sigma) ** 2)
    g0 /= g0.sum()
    return g0, -t / sigma**2 * g0, (t**2 / sigma**4 - 1.0 / sigma**2) * g0


def hessian_at(
    volume: np.ndarray, index_zyx: np.ndarray, sigma: float, chunk_voxels: int = 4_000_000
) -> np.ndarray:
    """The Gaussian-scale Hessian ``(N, 3, 3)`` (axes z, y, x) at integer points of ``volume``.

    Equal to ``scipy.ndimage.gaussian_filter(volume, sigma, order=..., mode="nearest",
    truncate=3.0)`` read at the points, but computed only there: a patch of ``6 sigma + 1``
    voxels around each point contracted with the separable kernels, so thousands of points
    cost far less than six filtered volumes.
    """
    g0, g1, g2 = _gaussian_kernels(sigma)
    r = len(g0) // 2
    out = np.zeros((len(index_zyx), 3, 3))
    if not len(index_zyx):
        return out
    padded = np.pad(volume, r, mode="edge")
    offsets = np.arange(-r, r + 1)
    step = max(1, chunk_voxels // len(g0) ** 3)
    for start in range(0, len(index_zyx), step):
        idx = np.asarray(index_zyx[start : start + step]) + r
        z = (idx[:, 0, None] + offsets)[:, :, None, None]
        y = (idx[:, 1, None] + offsets)[:, None, :, None]
        x = (idx[:, 2, None] + offsets)[:, None, None, :]
        patch = padded[z, y, x].astype(np.float64)  # (m, z, y, x)
        px0, px1, px2 = patch @ g0, patch @ g1, patch @ g2  # x contracted: (m, z, y)
        q00, q01, q02, q10, q11, q20 = px0 @ g0, px0 @ g1, px0 @ g2, px1 @ g0, px1 @ g1, px2 @ g0
        h = out[start : start + step]
        h[:, 0, 0], h[:, 1, 1], h[:, 2, 2] = q00 @ g2, q02 @ g0, q20 @ g0
        h[:, 0, 1] = h[:, 1, 0] = q01 @ g1
        h[:, 0, 2] = h[:, 2, 0] = q10 @ g1
        h[:, 1, 2] = h[:, 2, 1] = q11 @ g0
    return out


def blobness(volume: np.ndarray, index_zyx: np.ndarray, sigma: float) -> np.ndarray:
    """Bright-blob strength at points: the dot filter of Li, Sone and Doi (Med. Phys. 2003).

    With the scale-normalised Hessian eigenvalues ``l1 <= l2 <= l3`` (``sigma^2 H``), a
    bright blob has all three negative and of similar size, a tube (vessel) one near zero, a
    plate (fissure, pleura) two. The score is ``l3^2 / |l1|`` when ``l3 < 0`` (``|l3|`` times
    the ratio ``|l3| / |l1|``, so both contrast and roundness count), else 0: a tube of the
    same radius and contrast as a sphere scores near 0.
    """
    eig = np.linalg.eigvalsh(hessian_at(volume, index_zyx, sigma)) * sigma**2
    l1, l3 = -eig[:, 0], -eig[:, 2]
    return np.where(l3 > 0, l3**2 / np.maximum(l1, 1e-12), 0.0)


def _interleaved(score: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Order taking the strongest of each group in turn (then the second of each, ...)."""
    by_score = np.argsort(-score, kind="stable")
    rank_in_group = np.empty(len(score), np.int64)
    for g in np.unique(group):
        members = by_score[group[by_score] == g]
        rank_in_group[members] = np.arange(len(members))
    return np.lexsort((-score, rank_in_group))


def rank_blobs(
    volume_hu: np.ndarray,
    mask: np.ndarray,
    *,
    grid_mm: float = GRID_MM,
    radii_mm: Sequence[float] = RADII_MM,
    min_response: float = 0.02,
    windows_hu: Sequence[tuple[float, float]] = WINDOWS_HU,
    ranking: str = "hessian",
    interleave: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blob peaks of an isotropic HU volume inside ``mask``, best first (not merged).

    Returns ``(index_zyx (N, 3), radius_mm (N,), score (N,))``. Peaks of the scale-normalised
    LoG are found per (window, scale); ``ranking="hessian"`` scores each by its `blobness` at
    its own scale (round blobs above vessels and fissures), ``"log"`` by the LoG response
    (the earlier ranking, kept for comparison). With ``interleave`` the (window, scale)
    groups take turns, strongest first within each, so the many small dots of one scale do
    not crowd out larger blobs.
    """
    if ranking not in ("hessian", "log"):
        raise ValueError(f"ranking must be 'hessian' or 'log', not {ranking!r}")
    from nodulekit.preprocess.window import normalize_hu

    radii_vox = [r / grid_mm for r in radii_mm]
    found = []
    for w, (low, high) in enumerate(windows_hu):
        scaled = normalize_hu(np.asarray(volume_hu, np.float32), min_hu=low, max_hu=high)
        volume = np.where(mask, scaled, 0.0).astype(np.float32)
        index, score, scale = blob_peaks(volume, radii_vox, mask, min_response)
        if ranking == "hessian":
            for k, radius in enumerate(radii_vox):
                at = scale == k
                score[at] = blobness(volume, index[at], radius / np.sqrt(3.0))
        found.append((index, score, scale, scale + w * len(radii_vox)))
    index_zyx, score, scale, group = (np.concatenate([f[k] for f in found]) for k in range(4))
    order = _interleaved(score, group) if interleave else np.argsort(-score, kind="stable")
    return index_zyx[order], np.asarray(radii_mm, float)[scale[order]], score[order]


def candidate_points(
    scan: Any,
    *,
    max_candidates: int = 200,
    grid_mm: float = GRID_MM,
    radii_mm: Sequence[float] = RADII_MM,
    merge_mm: float = 5.0,
    min_response: float = 0.02,
    windows_hu: Sequence[tuple[float, float]] = WINDOWS_HU,
    ranking: str = "hessian",
    interleave: bool = True,
) -> pd.DataFrame:
    """Blob candidates inside the lungs: ``coordX, coordY, coordZ`` (world mm), ``diameter_mm``
    (size estimate), ``blob_score`` (the ranking score), best first, at most ``max_candidates``.

    Peaks are searched in each of ``windows_hu`` (HU clipped to the window, scaled to [0, 1]):
    the full range keeps a solid nodule apart from the vessel beside it; the narrow one
    saturates solid tissue so that a faint ground-glass nodule (about -600 HU) is as strong a
    blob as a solid one. They are ranked by `rank_blobs` (``ranking``, ``interleave``) and
    marks closer than ``merge_mm`` (or a quarter of the better blob's radius) merged.
    """
    iso, mask = _isotropic(scan, grid_mm)
    index_zyx, radius, score = rank_blobs(
        np.asarray(iso.array), mask, grid_mm=grid_mm, radii_mm=radii_mm,
        min_response=min_response, windows_hu=windows_hu, ranking=ranking,
        interleave=interleave,
    )  # fmt: skip
    world = iso.voxel_to_world(index_zyx.astype(float)).reshape(-1, 3)
    keep = _merge(world, radius, merge_mm, max_candidates) if len(world) else np.zeros(0, int)
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
