"""Candidates from a segmentation, and candidate recall per candidates per scan.

`unet_candidate_points` is the learned alternative to the blob detector of
`nodulekit.evaluate.detect.candidate_points`: the U-Net segments the scan inside its lungs
(slice by slice in batches, on the GPU when present), connected components of the voxels at or
above ``threshold`` become candidates, each at its probability-weighted centre of mass in world
mm, with the volume-equivalent diameter and volume of its mask.

`candidate_recall` sets candidate sources side by side as LUNA16 judges a mark (inside a
nodule's radius of its centre): the share of nodules hit when each scan keeps its ``k`` best
candidates, for growing ``k``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["candidate_recall", "compare_candidate_sources", "lung_box", "unet_candidate_points"]

#: candidates-per-scan budgets of `candidate_recall` (the blob detector's default is 200)
BUDGETS = (1, 2, 5, 10, 20, 50, 100, 200)


def lung_box(lungs: np.ndarray, margin_vox: Sequence[int] = (1, 8, 8)) -> tuple[slice, ...]:
    """The bounding box ``(z, y, x)`` of a lung mask grown by ``margin_vox`` (whole volume if
    the mask is empty)."""
    found = np.argwhere(lungs)
    if not len(found):
        return tuple(slice(0, s) for s in lungs.shape)
    lo = np.maximum(found.min(axis=0) - np.asarray(margin_vox), 0)
    hi = np.minimum(found.max(axis=0) + np.asarray(margin_vox) + 1, lungs.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _lungs_grown(scan: Any, grow_mm: float) -> np.ndarray:
    """The lung mask grown by ``grow_mm`` in plane, so that nodules on the pleura stay in."""
    from scipy import ndimage

    from nodulekit.preprocess import lung_mask

    lungs = np.asarray(lung_mask(scan)) > 0
    steps = max(1, round(grow_mm / float(min(scan.spacing[:2]))))
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_dilation(lungs, structure, iterations=steps)


def unet_candidate_points(
    scan: Any,
    segmenter: Any,
    *,
    threshold: float = 0.5,
    max_candidates: int = 200,
    min_diameter_mm: float = 2.0,
    grow_mm: float = 5.0,
    batch_size: int = 16,
    device: Any = "cpu",
) -> pd.DataFrame:
    """Candidates of a scan from a segmentation U-Net, most probable first.

    Parameters
    ----------
    scan : Scan
        The CT.
    segmenter : torch.nn.Module
        A `nodulekit.models.unet.NoduleUNet` (`nodulekit.evaluate.segmentation.load_segmenter`).
    threshold : float
        Probability at or above which a voxel is nodule.
    min_diameter_mm : float
        Components smaller than a sphere of this diameter are dropped (noise).
    grow_mm : float
        The lung mask is grown by this much in plane before masking the prediction.

    Returns
    -------
    DataFrame
        ``coordX, coordY, coordZ`` (world mm, probability-weighted centre of mass),
        ``diameter_mm`` (volume-equivalent), ``volume_mm3``, ``n_voxels`` and ``seg_score``
        (the component's highest probability), sorted by ``seg_score``.
    """
    from scipy import ndimage

    from nodulekit.train.segment import predict_volume

    lungs = _lungs_grown(scan, grow_mm)
    box = lung_box(lungs)
    probability = predict_volume(
        segmenter, scan, z_range=(box[0].start, box[0].stop), box_yx=box[1:],
        batch_size=batch_size, device=device,
    )  # fmt: skip
    probability *= lungs
    components, n = ndimage.label(probability >= threshold)
    columns = ["coordX", "coordY", "coordZ", "diameter_mm", "volume_mm3", "n_voxels", "seg_score"]
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    ids = np.arange(1, n + 1)
    voxel_mm3 = float(np.prod(scan.spacing))
    n_voxels = ndimage.sum_labels(np.ones_like(probability), components, ids)
    centres = np.asarray(ndimage.center_of_mass(probability, components, ids), float)
    peak = ndimage.maximum(probability, components, ids)
    volume = n_voxels * voxel_mm3
    diameter = (6 * volume / math.pi) ** (1 / 3)
    world = np.asarray(scan.voxel_to_world(centres), float).reshape(-1, 3)
    table = pd.DataFrame(
        {
            "coordX": world[:, 0],
            "coordY": world[:, 1],
            "coordZ": world[:, 2],
            "diameter_mm": diameter,
            "volume_mm3": volume,
            "n_voxels": n_voxels.astype(int),
            "seg_score": np.asarray(peak, float),
        }
    )
    table = table[table.diameter_mm >= min_diameter_mm]
    table = table.sort_values(["seg_score", "n_voxels"], ascending=False, kind="stable")
    return table.head(max_candidates).reset_index(drop=True)


def _hits(candidates: pd.DataFrame, nodules: pd.DataFrame) -> np.ndarray:
    """(candidates, nodules): candidate inside the nodule's radius of its centre (LUNA16)."""
    c = candidates[["coordX", "coordY", "coordZ"]].to_numpy(float)
    n = nodules[["coordX", "coordY", "coordZ"]].to_numpy(float)
    distance = np.linalg.norm(c[:, None, :] - n[None, :, :], axis=2)
    return distance <= nodules["diameter_mm"].to_numpy(float)[None, :] / 2


def candidate_recall(
    sources: Mapping[str, pd.DataFrame],
    annotations: pd.DataFrame,
    seriesuids: Iterable[str],
    *,
    budgets: Sequence[int] = BUDGETS,
) -> pd.DataFrame:
    """Nodule recall of each candidate source when each scan keeps its ``k`` first candidates.

    Parameters
    ----------
    sources : {name: DataFrame}
        Candidates per source (``seriesuid, coordX, coordY, coordZ``), each scan's best first.
    annotations : DataFrame
        LUNA16 ``annotations.csv`` rows (``diameter_mm`` gives each nodule's radius).
    seriesuids : strings
        The scans compared (their nodules are the denominator).

    Returns
    -------
    DataFrame
        ``source, budget, candidates_per_scan`` (mean kept), ``recall``, ``nodules_hit``,
        ``nodules``, ``scans``.
    """
    uids = list(dict.fromkeys(seriesuids))
    truth = annotations[annotations.seriesuid.isin(uids)]
    rows = []
    for name, table in sources.items():
        table = table[table.seriesuid.isin(uids)]
        ranks = table.groupby("seriesuid", sort=False).cumcount().to_numpy()
        for k in budgets:
            kept = table[ranks < k]
            hit = 0
            for uid, nodules in truth.groupby("seriesuid"):
                mine = kept[kept.seriesuid == uid]
                hit += int(_hits(mine, nodules).any(axis=0).sum()) if len(mine) else 0
            rows.append(
                {
                    "source": name,
                    "budget": int(k),
                    "candidates_per_scan": len(kept) / max(len(uids), 1),
                    "recall": hit / len(truth) if len(truth) else float("nan"),
                    "nodules_hit": hit,
                    "nodules": len(truth),
                    "scans": len(uids),
                }
            )
    return pd.DataFrame(rows)


def compare_candidate_sources(
    data: str | Any,
    segmenter: Any,
    seriesuids: Iterable[str] | None = None,
    *,
    max_candidates: int = 200,
    budgets: Sequence[int] = BUDGETS,
    device: Any = "cpu",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The blob detector and the U-Net's components side by side on the scans of a data root.

    Parameters
    ----------
    data : path or Luna16
        A LUNA16-layout root (its ``annotations.csv`` is the truth).
    segmenter : torch.nn.Module
        The U-Net (`nodulekit.evaluate.segmentation.load_segmenter`).
    seriesuids : strings, optional
        The scans compared (default: every scan on disk).

    Returns
    -------
    recall, candidates : DataFrame
        `candidate_recall` of both sources, and every candidate (``source`` column) with
        its ``seriesuid``.
    """
    from nodulekit.data import Luna16
    from nodulekit.evaluate.detect import candidate_points

    luna = data if isinstance(data, Luna16) else Luna16(data, warn_missing=False)
    uids = list(luna.scans.seriesuid) if seriesuids is None else list(seriesuids)
    parts = []
    for uid in uids:
        scan = luna.load(uid)
        blob = candidate_points(scan, max_candidates=max_candidates)
        unet = unet_candidate_points(scan, segmenter, max_candidates=max_candidates, device=device)
        parts += [
            blob.assign(source="blob", seriesuid=uid),
            unet.assign(source="unet", seriesuid=uid),
        ]
    candidates = pd.concat(parts, ignore_index=True)
    sources = {name: candidates[candidates.source == name] for name in ("blob", "unet")}
    return candidate_recall(sources, luna.annotations, uids, budgets=budgets), candidates
