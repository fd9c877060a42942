"""PreprocessPreview: redraw time of each control on a full-size scan.

Run: ``NODULEKIT_SAMPLE_DIR=../shared/data python benchmarks/bench_preprocess_preview.py``
(the real 512 x 512 x 133 sample scan; without it, a synthetic "full" scan is drawn).
Prints milliseconds per control change, and the one-off costs (lung mask, resampling).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from nodulekit.data import read_scan
from nodulekit.widgets import PreprocessPreview

SAMPLE_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"


def load():
    sample = os.environ.get("NODULEKIT_SAMPLE_DIR")
    if sample:
        return read_scan(Path(sample) / "luna16-mini" / "subset0" / f"{SAMPLE_UID}.mhd")
    from nodulekit.data import make_synthetic_luna16

    root = make_synthetic_luna16(
        Path(tempfile.mkdtemp()) / "s", n_scans=1, size="full", progress=False
    )
    return read_scan(next(root.glob("subset*/*.mhd")))


def timed(label: str, changes) -> None:
    times = []
    for change in changes:
        start = time.perf_counter()
        change()
        times.append((time.perf_counter() - start) * 1e3)
    print(f"{label:<34} median {statistics.median(times):6.0f} ms, max {max(times):6.0f} ms")


def main() -> None:
    scan = load()
    print(scan)
    x, y, z = scan.voxel_to_world([s // 2 for s in scan.shape])
    candidates = pd.DataFrame(
        {"coordX": [x, x + 30, x - 40], "coordY": [y, y - 20, y + 10],
         "coordZ": [z, z - 20, z + 30], "class": [1, 0, 0]}
    )  # fmt: skip
    w = PreprocessPreview(scan, candidates=candidates)
    nz = scan.shape[0]
    timed(
        "slice slider", [lambda i=i: setattr(w.slice_slider, "value", i) for i in range(5, nz, 9)]
    )
    presets = ["mediastinum", "bone", "lung"] * 3
    timed("window preset", [lambda p=p: setattr(w.preset, "value", p) for p in presets])
    timed("level slider", [lambda v=v: setattr(w.level, "value", v) for v in range(-700, -500, 20)])
    start = time.perf_counter()
    w.show_mask.value = True
    print(f"{'lung mask (first time, computes)':<34} {1e3 * (time.perf_counter() - start):6.0f} ms")
    timed("mask toggle", [lambda v=v: setattr(w.show_mask, "value", v) for v in [False, True] * 4])
    start = time.perf_counter()
    w.show_resampled.value = True
    print(f"{'resampled (first time, computes)':<34} {1e3 * (time.perf_counter() - start):6.0f} ms")
    timed("slice slider, both views + mask", [
        lambda i=i: setattr(w.slice_slider, "value", i) for i in range(5, nz, 9)
    ])  # fmt: skip
    timed(
        "candidate dropdown", [lambda c=c: setattr(w.candidate, "value", c) for c in [0, 1, 2] * 3]
    )
    timed("slice slider, everything on", [
        lambda i=i: setattr(w.slice_slider, "value", i) for i in range(5, nz, 9)
    ])  # fmt: skip


if __name__ == "__main__":
    main()
