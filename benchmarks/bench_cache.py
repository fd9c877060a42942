"""Crop cache: build seconds per scan, and crops per second read back from the memmap.

Run: ``python benchmarks/bench_cache.py [--scans 6] [--size small] [--workers 2]``.
Draws a synthetic LUNA16 set (`nodulekit.data.make_synthetic_luna16`) in a temporary folder,
builds the cache of all its candidates (the defaults: 32 mm, 24^3), then reads random crops
back, then builds a second parameter set while the first is open (both data folders kept).
Prints figures measured in this one run. (Crops per second through a DataLoader with
augmentation, against training throughput, is ``benchmarks/bench_train.py``'s business.)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from nodulekit.data import Luna16, make_synthetic_luna16
from nodulekit.preprocess import CropCache, build_crop_cache, normalize_hu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=6)
    parser.add_argument("--size", default="small", choices=["tiny", "small", "full"])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_luna16(
            Path(tmp) / "luna", n_scans=args.scans, seed=0, size=args.size, progress=False
        )
        data = Luna16(root)
        candidates = data.candidates
        out = Path(tmp) / "cache"

        start = time.perf_counter()
        cache = build_crop_cache(candidates, data.scans, out, workers=args.workers, progress=False)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        CropCache.open(out)
        build_crop_cache(candidates, data.scans, out, workers=args.workers, progress=False)
        reuse_s = time.perf_counter() - start

        rng = np.random.default_rng(0)
        order = rng.permutation(len(cache))
        reopened = CropCache.open(out)
        start = time.perf_counter()
        for i in order:
            normalize_hu(np.asarray(reopened.crops[i]))
        read_s = time.perf_counter() - start

        print(f"scans: {args.scans} ({args.size}), candidates: {len(cache)}, "
              f"workers: {args.workers}")  # fmt: skip
        print(f"build: {build_s:.2f} s, {build_s / args.scans:.2f} s per scan, "
              f"{len(cache) / build_s:.0f} crops/s")  # fmt: skip
        print(f"reopen with the same fingerprint: {reuse_s * 1e3:.0f} ms (no rebuild)")
        print(f"random reads + normalize_hu: {len(cache) / read_s:.0f} crops/s")
        print(f"cache size: {cache.crops.nbytes / 2**20:.1f} MiB")

        start = time.perf_counter()
        build_crop_cache(
            candidates, data.scans, out, shape_zyx=16, workers=args.workers, progress=False
        )
        other_s = time.perf_counter() - start
        kept = sorted(p.name for p in out.glob("data-*"))
        print(f"second parameter set (16^3) while the first is open: {other_s:.2f} s, "
              f"data folders kept: {len(kept)}; the open one still reads: "
              f"{np.array_equal(reopened.crops[order[:8]], cache.crops[order[:8]])}")  # fmt: skip


if __name__ == "__main__":
    main()
