"""How fast the scan browser feels: slice redraw, scan switch from the cache, first load.

Run: ``python benchmarks/bench_browser.py`` (``NODULEKIT_SAMPLE_DIR`` set: the real 512 x 512 x
133 sample scan is used for the redraw figures; otherwise a generated 512 x 512 x 300 volume).
The load figures always use generated 512 x 512 x 300 scans written to a temporary LUNA16 root.
Prints medians in milliseconds, and ratios measured in this one run.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nodulekit.data import read_scan, write_scan
from nodulekit.data.scan import Scan
from nodulekit.viz import plane_png
from nodulekit.widgets import ScanBrowser

SAMPLE_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"


def phantom(shape_zyx=(300, 512, 512), *, seed: int = 0) -> Scan:
    """A chest-like volume: a soft-tissue body, two air lungs, noise; 0.7 x 0.7 x 1.0 mm."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape_zyx
    y, x = np.mgrid[0:ny, 0:nx]
    body = ((y - ny / 2) / (0.4 * ny)) ** 2 + ((x - nx / 2) / (0.45 * nx)) ** 2 < 1
    lungs = (
        ((y - ny / 2) / (0.25 * ny)) ** 2 + ((np.abs(x - nx / 2) - 0.2 * nx) / (0.12 * nx)) ** 2
    ) < 1
    plane = np.where(body, 40, -1000).astype(np.int16)
    plane[lungs] = -850
    array = np.repeat(plane[None], nz, axis=0)
    array += rng.integers(-30, 30, size=array.shape, dtype=np.int16)
    return Scan(
        array, origin=(-180.0, -180.0, -300.0), spacing=(0.7, 0.7, 1.0), seriesuid="phantom"
    )


def timed(fn, repeat: int) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def redraw_figures(scan: Scan, nodules: pd.DataFrame) -> dict[str, float]:
    centre = tuple(s // 2 for s in scan.shape)
    out = {}
    for plane, axis in (("axial", 0), ("coronal", 1), ("sagittal", 2)):
        counter = iter(range(10**6))

        def one(plane=plane, axis=axis, counter=counter):
            index = list(centre)
            index[axis] = (centre[axis] + next(counter)) % scan.shape[axis]  # a new slice each time
            plane_png(scan, plane, index[axis], window="lung", nodules=nodules,
                      crosshair_zyx=tuple(index))  # fmt: skip

        out[f"redraw {plane} slice (render + circles + crosshair + PNG)"] = timed(one, 30)
    return out


def widget_figures(browser: ScanBrowser) -> dict[str, float]:
    out = {}
    step = iter(range(10**6))
    out["widget: move the axial slider (3 planes redrawn)"] = timed(
        lambda: setattr(browser.z_slider, "value", 5 + next(step) % 50), 20
    )
    presets = iter(["mediastinum", "bone", "lung"] * 10)
    out["widget: change the window preset"] = timed(
        lambda: setattr(browser.window_preset, "value", next(presets)), 9
    )
    return out


def main() -> int:
    sample = os.environ.get("NODULEKIT_SAMPLE_DIR")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "luna"
        uids = ["1.2.3.1", "1.2.3.2"]
        for i, uid in enumerate(uids):
            write_scan(phantom(seed=i), root / "subset0" / f"{uid}.mhd")
        nodules = pd.DataFrame(
            {"seriesuid": uids, "coordX": [-40.0] * 2, "coordY": [0.0] * 2,
             "coordZ": [-150.0] * 2, "diameter_mm": [12.0] * 2}
        )  # fmt: skip
        nodules.to_csv(root / "annotations.csv", index=False)

        if sample:
            mhd = Path(sample) / "luna16-mini" / "subset0" / f"{SAMPLE_UID}.mhd"
            scan = read_scan(mhd)
            table = pd.read_csv(Path(sample) / "luna16-mini" / "annotations.csv")
            scan_nodules = table.loc[table["seriesuid"] == SAMPLE_UID]
            label = f"real sample {scan.shape}"
        else:
            scan, scan_nodules, label = (
                read_scan(root / "subset0" / f"{uids[0]}.mhd"),
                nodules[:1],
                "",
            )
            label = f"generated {scan.shape}"
        print(f"redraw figures on the {label} scan; CPU threads: {os.cpu_count()}")
        figures.update(redraw_figures(scan, scan_nodules))

        path = root / "subset0" / f"{uids[1]}.mhd"
        figures["read_scan alone, 512x512x300 (.mhd)"] = timed(lambda: read_scan(path), 3)
        browser = ScanBrowser(root, autoload=False)
        start = time.perf_counter()
        browser.select_series(uids[0]).result()
        figures["widget: first load of a 512x512x300 scan, shown"] = (
            time.perf_counter() - start
        ) * 1000
        browser.select_series(uids[1]).result()
        figures["widget: switch to a cached scan, shown"] = (
            timed(
                lambda: (
                    browser.select_series(uids[0]).result(),
                    browser.select_series(uids[1]).result(),
                ),
                3,
            )
            / 2
        )
        figures.update(widget_figures(browser))
        browser.close()

    width = max(map(len, figures))
    for name, ms in figures.items():
        print(f"{name:<{width}}  {ms:8.1f} ms")
    read = figures["read_scan alone, 512x512x300 (.mhd)"]
    first = figures["widget: first load of a 512x512x300 scan, shown"]
    cached = figures["widget: switch to a cached scan, shown"]
    print(
        f"first load / read_scan alone: {first / read:.2f}x; cached switch / read_scan: {cached / read:.3f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
