"""Candidate recall against candidates per scan, LoG ranking against Hessian ranking, one run.

Run: ``python benchmarks/bench_candidates.py [--scans 8] [--seed 16] [--data ROOT]``.
Without ``--data`` it writes ``--scans`` full-size synthetic scans (512 x 512, LUNA16-like
nodules; every scan with nodules) into a temporary folder; with it, it reads a LUNA16-layout
folder (synthetic, or ``$NODULEKIT_SAMPLE_DIR/luna16-mini`` for the real scan). For every scan the
isotropic volume, lung mask and LoG peaks are made once, then ordered by both rankings of
`nodulekit.evaluate.detect.rank_blobs` and merged as `candidate_points` does: ``log`` is the
earlier pipeline (LoG response; a mark merges weaker ones within half its radius), ``hessian``
the current one (Hessian blobness; a quarter of the radius). A nodule (>= 3 mm) is found at ``K`` candidates when one of the first
``K`` marks lies closer to its centre than its radius (the LUNA16 hit rule). Prints recall at
25, 50, 100, 200 and 400 candidates per scan, the misses at 200, and the CPU seconds per scan of
candidate generation (resampling and lung mask, plus each ranking and merge).

Measured 2026-11-30 (``--data`` = 8 full-size synthetic scans, seed 16, every scan with
nodules, 25 nodules >= 3 mm, median 7.1 mm, 44 % < 6 mm; 2 shared CPU cores):

    ranking       25     50    100    200    400   cpu s/scan
    log        0.760  0.800  0.800  0.800  0.920     38.5
    hessian    0.960  0.960  0.960  1.000  1.000     40.7
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

CANDIDATES_PER_SCAN = (25, 50, 100, 200, 400)
RANKINGS = ("log", "hessian")


def _hit_ranks(points_xyz: np.ndarray, nodules: np.ndarray) -> list[int]:
    """Rank of the first mark inside each nodule (``-1``: none); rows ``x, y, z, diameter``."""
    ranks = []
    for *centre, diameter in nodules:
        hits = np.flatnonzero(np.linalg.norm(points_xyz - centre, axis=1) < diameter / 2)
        ranks.append(int(hits[0]) if len(hits) else -1)
    return ranks


def _scan_ranks(scan, nodules: np.ndarray) -> tuple[dict[str, list[int]], dict[str, float]]:
    """The nodules' hit ranks per ranking, and CPU seconds per stage of candidate generation.

    The LoG peaks are found once and ordered both ways (what `rank_blobs` does for each
    ranking), so the Hessian's own cost is measured apart.
    """
    from nodulekit.evaluate.detect import (
        GRID_MM,
        RADII_MM,
        WINDOWS_HU,
        _interleaved,
        _isotropic,
        _merge,
        blob_peaks,
        blobness,
    )  # fmt: skip
    from nodulekit.preprocess.window import normalize_hu

    seconds = dict.fromkeys(
        ("resample+mask", "LoG peaks", "hessian", "merge log", "merge hessian"), 0.0
    )
    cpu = time.process_time()
    iso, mask = _isotropic(scan, GRID_MM)
    seconds["resample+mask"] = time.process_time() - cpu
    radii_vox = [r / GRID_MM for r in RADII_MM]
    found = []
    for w, (low, high) in enumerate(WINDOWS_HU):
        cpu = time.process_time()
        scaled = normalize_hu(np.asarray(iso.array, np.float32), min_hu=low, max_hu=high)
        volume = np.where(mask, scaled, 0.0).astype(np.float32)
        index, response, scale = blob_peaks(volume, radii_vox, mask, 0.02)
        seconds["LoG peaks"] += time.process_time() - cpu
        cpu = time.process_time()
        blob = np.zeros(len(index))
        for k, radius in enumerate(radii_vox):
            blob[scale == k] = blobness(volume, index[scale == k], radius / np.sqrt(3.0))
        seconds["hessian"] += time.process_time() - cpu
        found.append((index, response, blob, scale, scale + w * len(radii_vox)))
    index, response, blob, scale, group = (np.concatenate([f[k] for f in found]) for k in range(5))
    world = iso.voxel_to_world(index.astype(float)).reshape(-1, 3)
    ranks = {}
    # before: LoG ranking, marks within half a blob's radius merged; after: blobness, a quarter
    for ranking, score, fraction in (("log", response, 0.5), ("hessian", blob, 0.25)):
        cpu = time.process_time()
        order = _interleaved(score, group)
        radius = np.asarray(RADII_MM)[scale[order]]
        keep = order[_merge(world[order], radius, 5.0, 400, radius_fraction=fraction)]
        seconds[f"merge {ranking}"] = time.process_time() - cpu
        ranks[ranking] = _hit_ranks(world[keep], nodules)
    return ranks, seconds


def main() -> None:
    from nodulekit.data import Luna16, make_synthetic_luna16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=8)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--data", help="a LUNA16-layout folder instead of new synthetic scans")
    args = parser.parse_args()
    if args.data:
        root = Path(args.data)
    else:
        root = make_synthetic_luna16(
            Path(tempfile.mkdtemp()) / "synthetic", n_scans=args.scans, size="full",
            seed=args.seed, nodule_free_fraction=0.0, progress=False,
        )  # fmt: skip
    luna = Luna16(root)
    ranks: dict[str, list[int]] = {r: [] for r in RANKINGS}
    seconds: dict[str, list[float]] = {}
    diameters: list[float] = []
    uids = list(luna.scans["seriesuid"])[: args.scans]
    for uid in uids:
        table = luna.annotations_for(uid)
        nodules = table.loc[table["diameter_mm"] >= 3, ["coordX", "coordY", "coordZ",
                                                          "diameter_mm"]].to_numpy(float)  # fmt: skip
        diameters += nodules[:, 3].tolist()
        scan_ranks, scan_seconds = _scan_ranks(luna.load(uid), nodules)
        for ranking, r in scan_ranks.items():
            ranks[ranking] += r
        for stage, s in scan_seconds.items():
            seconds.setdefault(stage, []).append(s)
    print(f"{root}: {len(uids)} scans, {len(diameters)} nodules >= 3 mm "
          f"(median {np.median(diameters):.1f} mm, {np.mean(np.less(diameters, 6)):.0%} < 6 mm)")  # fmt: skip
    print("recall at candidates per scan:")
    print(f"{'ranking':<9}" + "".join(f"{k:>7}" for k in CANDIDATES_PER_SCAN) + "   cpu s/scan")
    mean = {stage: float(np.mean(s)) for stage, s in seconds.items()}
    shared = mean["resample+mask"] + mean["LoG peaks"]
    cpu_per_scan = {"log": shared + mean["merge log"],
                    "hessian": shared + mean["hessian"] + mean["merge hessian"]}  # fmt: skip
    for ranking in RANKINGS:
        r = np.array(ranks[ranking])
        found = [np.mean((r >= 0) & (r < k)) for k in CANDIDATES_PER_SCAN]
        print(f"{ranking:<9}" + "".join(f"{f:7.3f}" for f in found)
              + f"   {cpu_per_scan[ranking]:6.1f}")  # fmt: skip
    print("cpu s/scan by stage: " + ", ".join(f"{k} {v:.1f}" for k, v in mean.items()))
    print(
        f"hessian/log candidate-generation cpu ratio: {cpu_per_scan['hessian'] / cpu_per_scan['log']:.2f}"
    )
    for ranking in RANKINGS:
        pairs = zip(ranks[ranking], diameters, strict=True)
        missed = [(k, round(d, 1)) for k, d in pairs if not 0 <= k < 200]
        print(f"{ranking}: missed at 200 (rank, diameter mm; -1: not in the first 400): {missed}")
        if len(diameters) <= 5:
            print(f"{ranking}: rank of each nodule: {ranks[ranking]}")


if __name__ == "__main__":
    main()
