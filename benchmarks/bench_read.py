"""Reading a 512 x 512 x 300 scan: peak memory and time of `read_scan` vs `numpy.fromfile`.

Targets (issue 2): peak memory at most 2.5x the int16 voxel bytes; time within 2x of
``numpy.fromfile`` on the same ``.raw``. Each reader runs in a fresh process so that peak RSS
is its own. Prints the ratios measured in this run.

    python benchmarks/bench_read.py [--shape 300 512 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
import numpy as np
import SimpleITK  # (loaded before measuring: we time reading, not imports)
from nodulekit.data import read_scan

def status_kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

mode, mhd, raw, nbytes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
before = status_kib("VmRSS")
t0 = time.perf_counter()
if mode == "read_scan":
    array = read_scan(mhd).array
elif mode == "sitk":
    array = SimpleITK.GetArrayFromImage(SimpleITK.ReadImage(mhd))
else:
    array = np.fromfile(raw, dtype="<i2")
seconds = time.perf_counter() - t0
peak = status_kib("VmHWM")  # high-water mark of this process image (reset by exec)
print(json.dumps({"seconds": seconds, "peak_extra_bytes": (peak - before) * 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", type=int, nargs=3, default=(300, 512, 512), metavar=("Z", "Y", "X")
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import numpy as np

    from nodulekit.data import Scan, write_scan

    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        array = rng.integers(-1024, 2000, size=shape, dtype=np.int16)
        mhd = write_scan(Scan(array, (-170, -170, -340), (0.7, 0.7, 1.25)), Path(tmp) / "b.mhd")
        raw = mhd.with_suffix(".raw")
        nbytes = array.nbytes
        del array
        results: dict[str, list[dict]] = {"read_scan": [], "fromfile": [], "sitk": []}
        for _ in range(args.repeat):
            for mode in results:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, mode, str(mhd), str(raw), str(nbytes)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                results[mode].append(json.loads(out.stdout))
    best = {m: min(r["seconds"] for r in rs) for m, rs in results.items()}
    peak = {m: max(r["peak_extra_bytes"] for r in rs) for m, rs in results.items()}
    print(f"scan {shape[2]} x {shape[1]} x {shape[0]} int16 = {nbytes / 2**20:.0f} MiB")
    for mode in results:
        print(
            f"  {mode:<9} best {best[mode]:.3f} s   peak extra memory {peak[mode] / 2**20:.0f} MiB"
            f" ({peak[mode] / nbytes:.2f}x voxel bytes)"
        )
    time_ratio = best["read_scan"] / best["fromfile"]
    mem_ratio = peak["read_scan"] / nbytes
    print(f"time ratio read_scan / fromfile: {time_ratio:.2f} (target <= 2)")
    print(f"peak memory / voxel bytes:       {mem_ratio:.2f} (target <= 2.5)")
    print(
        f"(plain sitk.ReadImage + GetArrayFromImage: {best['sitk'] / best['fromfile']:.2f}x time, "
        f"{peak['sitk'] / nbytes:.2f}x memory)"
    )


if __name__ == "__main__":
    main()
