"""The synthetic set against LUNA16: seconds per scan, nodule sizes, empty scans, negatives.

Targets (issue 15): diameters with a Kolmogorov-Smirnov distance <= 0.25 to LUNA16's
``annotations.csv`` (median 6.4 mm, 42 % under 6 mm); about a third of the scans without a
nodule; vessels (cross-sections, forks, crossings) a large share of the class-0 candidates;
generation fast enough for the demo (30 scans, under 5 minutes including training on 2
cores). Prints what this run measured; with ``--luna16 annotations.csv`` (or
``NODULEKIT_SAMPLE_DIR`` set) also the two-sample KS distance to the real table.

    python benchmarks/bench_synthetic.py [--scans 30] [--size small] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from nodulekit.data.synthetic import make_synthetic_luna16
from nodulekit.data.synthetic.diameters import diameter_cdf


def _bands(d: np.ndarray) -> str:
    shares = np.histogram(d, bins=[0, 6, 10, 20, 999])[0] / max(len(d), 1)
    return " / ".join(f"{s:.0%}" for s in shares) + " (<6 / 6-10 / 10-20 / >20 mm)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=30)
    parser.add_argument("--size", default="small")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--luna16", default="", help="LUNA16's annotations.csv")
    args = parser.parse_args()
    real_path = Path(args.luna16) if args.luna16 else None
    if real_path is None and os.environ.get("NODULEKIT_SAMPLE_DIR"):
        real_path = next(Path(os.environ["NODULEKIT_SAMPLE_DIR"]).rglob("annotations.csv"), None)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = make_synthetic_luna16(
            Path(tmp) / "set",
            n_scans=args.scans,
            size=args.size,
            seed=args.seed,
            workers=args.workers,
            progress=False,
        )
        seconds = time.perf_counter() - t0
        d = pd.read_csv(root / "annotations.csv")["diameter_mm"].to_numpy()
        cands = pd.read_csv(root / "synthetic_candidates.csv")
        counts = json.loads((root / "synthetic.json").read_text(encoding="utf-8"))["counts"]
    negatives = cands[cands["class"] == 0]["kind"]
    vessel_share = negatives.str.startswith("vessel").mean()
    print(f"{args.scans} {args.size} scans, {args.workers} worker(s): {seconds:.1f} s, "
          f"{seconds / args.scans:.2f} s per scan")  # fmt: skip
    print(f"nodules: {len(d)}, median {np.median(d):.1f} mm, {_bands(d)}")
    print(
        f"KS distance to the shipped LUNA16 summary: {stats.kstest(d, diameter_cdf).statistic:.3f}"
    )
    if real_path is not None and real_path.is_file():
        real = pd.read_csv(real_path)["diameter_mm"].to_numpy()
        ks = stats.ks_2samp(d, real).statistic
        print(f"KS distance to {real_path} ({len(real)} nodules): {ks:.3f} (target <= 0.25)")
    print(f"scans without a nodule: {counts['scans_without_nodules']} of {counts['scans']}")
    print(f"class-0 candidates on vessels: {vessel_share:.0%}; by kind: "
          + ", ".join(f"{k} {v:.0%}" for k, v in negatives.value_counts(normalize=True).items()))  # fmt: skip


if __name__ == "__main__":
    main()
