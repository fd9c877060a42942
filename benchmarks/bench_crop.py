"""Cutting a scan's candidate crops: milliseconds per crop, batched vs one at a time.

Run: ``NODULEKIT_SAMPLE_DIR=../shared/data python benchmarks/bench_crop.py [--crops 2000]``
(the real 512 x 512 x 133 sample scan; without it, a synthetic "full" scan).

Compares, on the same scan and the same random centres (default crop: 32 mm in 24^3):

- ``sitk per crop``: the previous ``crop()``: read the sub-block the cube touches and
  ``sitk.Resample`` it (linear), one call per crop; the reference for the values;
- ``crop() per crop``: today's one-at-a-time `nodulekit.preprocess.crop`;
- ``crop_many``: `nodulekit.preprocess.crop_many`, all crops of the scan in one call.

Prints ms per crop, the ratio to the SimpleITK loop measured in this run, and the largest
difference from SimpleITK's values (float32 rounding). For scale: the issue measured MONAI
1.6.1 at about 0.5 ms per crop of a volume it resampled once, and the SimpleITK loop at 0.95.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nodulekit.data import Scan, read_scan
from nodulekit.preprocess import DEFAULT_CROP_SHAPE_ZYX, DEFAULT_CROP_SIZE_MM, crop, crop_many
from nodulekit.preprocess.crop import crop_grid

SAMPLE_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"


def load() -> Scan:
    sample = os.environ.get("NODULEKIT_SAMPLE_DIR")
    if sample:
        return read_scan(Path(sample) / "luna16-mini" / "subset0" / f"{SAMPLE_UID}.mhd")
    from nodulekit.data import make_synthetic_luna16

    root = make_synthetic_luna16(
        Path(tempfile.mkdtemp()) / "s", n_scans=1, size="full", progress=False
    )
    return read_scan(next(root.glob("subset*/*.mhd")))


def sitk_crop(scan: Scan, center, size_mm, shape_zyx, pad_hu: float = -1000.0) -> np.ndarray:
    """The previous crop(): the touched sub-block through sitk.Resample, ITK's inside rule."""
    origin, spacing = crop_grid(scan, center, size_mm, shape_zyx)
    corners = np.array([[z, y, x] for z in (0, 1) for y in (0, 1) for x in (0, 1)], float)
    corners *= np.asarray(shape_zyx, float) - 1
    twin = Scan(np.zeros((1, 1, 1), np.int16), origin, spacing, scan.direction)
    index = scan.world_to_voxel(twin.voxel_to_world(corners))
    lo = np.maximum(np.floor(index.min(0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(index.max(0)).astype(int) + 2, scan.shape)
    if np.any(hi <= lo):
        return np.full(shape_zyx, pad_hu, np.float32)
    block = scan.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    image = sitk.GetImageFromArray(np.ascontiguousarray(block, dtype=np.float32))
    image.SetOrigin([float(v) for v in scan.voxel_to_world(lo.astype(float))])
    image.SetSpacing(scan.spacing)
    image.SetDirection(scan.direction)
    out = sitk.Resample(
        image, list(shape_zyx[::-1]), sitk.Transform(), sitk.sitkLinear, origin, spacing,
        scan.direction, float(pad_hu), sitk.sitkFloat32,
    )  # fmt: skip
    return sitk.GetArrayFromImage(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=2000)
    parser.add_argument("--size-mm", type=float, default=DEFAULT_CROP_SIZE_MM)
    parser.add_argument("--shape", type=int, default=DEFAULT_CROP_SHAPE_ZYX[0])
    parser.add_argument(
        "--sitk-threads", type=int, default=1, help="SimpleITK threads (0: its default, all cores)"
    )
    args = parser.parse_args()
    if args.sitk_threads:  # one thread each, as nodulekit's crops (cache workers run in parallel)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.sitk_threads)
    scan = load()
    print(scan)
    shape = (args.shape,) * 3
    rng = np.random.default_rng(0)
    # candidates anywhere in the volume, a few near its faces (padded crops)
    index = rng.uniform(-2, np.asarray(scan.shape) + 1, size=(args.crops, 3))
    centers = scan.voxel_to_world(index)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    print(f"{args.crops} crops of {args.size_mm:g} mm in {shape}; SimpleITK threads: {threads}")

    start = time.perf_counter()
    reference = [sitk_crop(scan, c, args.size_mm, shape) for c in centers]
    sitk_s = time.perf_counter() - start
    start = time.perf_counter()
    single = [crop(scan, c, args.size_mm, shape).array for c in centers]
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    batch = crop_many(scan, centers, args.size_mm, shape)
    batch_s = time.perf_counter() - start

    n = args.crops
    for label, seconds in (
        ("sitk per crop (previous crop())", sitk_s),
        ("crop() per crop", single_s),
        ("crop_many, one call", batch_s),
    ):
        ratio = sitk_s / seconds
        print(f"{label:<34} {1e3 * seconds / n:6.3f} ms/crop   {ratio:4.1f}x the sitk loop")
    same = all(np.array_equal(a, b) for a, b in zip(single, batch.arrays, strict=True))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(reference, batch.arrays, strict=True))
    print(f"crop() == crop_many bit for bit: {same}; largest difference from sitk: {diff:.2g} HU")


if __name__ == "__main__":
    main()
