"""LUNA16 FROC at challenge scale: nodulekit's vectorised FROC against the script's loops.

Run: ``python benchmarks/bench_froc.py [--scans 888] [--marks 750000]``. Builds a synthetic
submission the size of LUNA16's (888 scans, 1186 nodules, excluded findings, 750,000 marks),
scores it with `nodulekit.evaluate.froc` and with `script_froc` below (a faithful
re-implementation of ``noduleCADEvaluationLUNA16.py``'s per-scan Python loops), checks that both
give the same CPM, and prints seconds and the ratio measured in this one run.

The original script also collects each scan's marks by re-reading every row of the submission
once per scan (888 x 750,000 row visits); `script_froc` groups marks by scan in one pass
instead, so the ratio printed *understates* the real script's time.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

FP_PER_SCAN = (0.125, 0.25, 0.5, 1, 2, 4, 8)


def luna_scale_data(n_scans=888, n_marks=750_000, n_nodules=1186, n_excluded=1500, seed=0):
    """(predictions, annotations, excluded, seriesuids) with LUNA16's sizes, random geometry."""
    rng = np.random.default_rng(seed)
    uids = np.array([f"1.3.6.1.4.1.{seed}.{i}" for i in range(n_scans)])

    def findings(n, diameter):
        return pd.DataFrame(
            {
                "seriesuid": uids[rng.integers(0, n_scans, n)],
                "coordX": rng.uniform(-150, 150, n),
                "coordY": rng.uniform(-150, 150, n),
                "coordZ": rng.uniform(-300, 0, n),
                "diameter_mm": diameter(n),
            }
        )

    annotations = findings(n_nodules, lambda n: rng.uniform(3, 30, n))
    excluded = findings(
        n_excluded, lambda n: np.where(rng.random(n) < 0.5, -1.0, rng.uniform(1, 6, n))
    )
    near = min(n_marks // 10, 3 * n_nodules)  # marks near nodules: hits, doubles and misses
    pick = rng.integers(0, n_nodules, near)
    base = annotations.iloc[pick]
    offset = rng.normal(0, 1, (near, 3)) * base["diameter_mm"].to_numpy()[:, None] * 0.4
    rest = n_marks - near
    marks = pd.DataFrame(
        {
            "seriesuid": np.r_[base["seriesuid"].to_numpy(), uids[rng.integers(0, n_scans, rest)]],
            "coordX": np.r_[base["coordX"].to_numpy() + offset[:, 0], rng.uniform(-150, 150, rest)],
            "coordY": np.r_[base["coordY"].to_numpy() + offset[:, 1], rng.uniform(-150, 150, rest)],
            "coordZ": np.r_[base["coordZ"].to_numpy() + offset[:, 2], rng.uniform(-300, 0, rest)],
            "probability": np.r_[rng.beta(5, 2, near), rng.beta(1, 8, rest)].round(4),
        }
    )
    return marks, annotations, excluded, list(uids)


def script_froc(predictions, annotations, excluded, seriesuids):
    """The evaluation script's method, loop for loop: returns (fps, sens, CPM by np.interp)."""
    cands: dict[str, dict[int, tuple]] = {}
    for i, row in enumerate(predictions.itertuples(index=False)):
        cands.setdefault(row.seriesuid, {})[i] = (
            row.coordX,
            row.coordY,
            row.coordZ,
            row.probability,
        )
    nodules: dict[str, list] = {}
    for state, table in (("Included", annotations), ("Excluded", excluded)):
        for row in table.itertuples(index=False):
            nodules.setdefault(row.seriesuid, []).append(
                (state, row.coordX, row.coordY, row.coordZ, row.diameter_mm)
            )
    gt_list, prob_list, exclude_list = [], [], []
    for uid in seriesuids:
        candidates = cands.get(uid, {})
        candidates2 = dict(candidates)
        for state, x, y, z, diameter in nodules.get(uid, []):
            if diameter < 0.0:
                diameter = 10.0
            radius_squared = (diameter / 2.0) ** 2
            matches = []
            for key, (x2, y2, z2, p) in candidates.items():
                dist = (x - x2) ** 2.0 + (y - y2) ** 2.0 + (z - z2) ** 2.0
                if dist < radius_squared:
                    if state == "Included":
                        matches.append(p)
                        candidates2.pop(key, None)
                    elif key in candidates2:
                        del candidates2[key]
            if state == "Included":
                gt_list.append(1.0)
                prob_list.append(max(matches) if matches else -1e9)
                exclude_list.append(not matches)
        for _key, (_x, _y, _z, p) in candidates2.items():
            gt_list.append(0.0)
            prob_list.append(p)
            exclude_list.append(False)
    gt_local = [g for g, e in zip(gt_list, exclude_list, strict=True) if not e]
    prob_local = [p for p, e in zip(prob_list, exclude_list, strict=True) if not e]
    detected, total = sum(gt_local), sum(gt_list)
    fpr, tpr, _ = roc_curve(gt_local, prob_local)
    fps = fpr * (len(prob_local) - detected) / len(seriesuids)
    sens = tpr * detected / total
    return fps, sens, float(np.mean(np.interp(FP_PER_SCAN, fps, sens)))


def main() -> None:
    from nodulekit.evaluate._froc import froc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=888)
    parser.add_argument("--marks", type=int, default=750_000)
    args = parser.parse_args()
    marks, ann, exc, uids = luna_scale_data(args.scans, args.marks)
    start = time.perf_counter()
    fast = froc(marks, ann, exc, uids, n_resamples=0)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    boot = froc(marks, ann, exc, uids, n_resamples=1000)
    t_boot = time.perf_counter() - start
    start = time.perf_counter()
    _, _, cpm_script = script_froc(marks, ann, exc, uids)
    t_script = time.perf_counter() - start
    same = math.isclose(fast.cpm, cpm_script, rel_tol=0, abs_tol=1e-12)
    print(f"{args.scans} scans, {len(marks):,} marks, {len(ann)} nodules, {len(exc)} excluded")
    print(f"nodulekit froc           {t_fast:7.2f} s   CPM {fast.cpm:.6f}")
    print(
        f"  + 1000 scan bootstraps {t_boot:7.2f} s   CPM 95% CI {boot.cpm_ci[0]:.3f}-{boot.cpm_ci[1]:.3f}"
    )
    print(f"script's loops           {t_script:7.2f} s   CPM {cpm_script:.6f}  (same: {same})")
    print(f"ratio script / nodulekit {t_script / t_fast:7.1f} x")


if __name__ == "__main__":
    main()
