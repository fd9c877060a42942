"""Detection seconds per full-size scan on the CPU: candidate generation and scoring apart.

Run: ``python benchmarks/bench_detect.py [--checkpoint RUN/best.pt] [--scan PATH]``. Without
``--scan`` it uses the real sample scan (``NODULEKIT_SAMPLE_DIR``, 512 x 512 x 133) if present,
else a generated full-size synthetic scan. Without ``--checkpoint`` it scores with an untrained
default CNN (the same arithmetic as a trained one). Prints process CPU seconds and wall seconds
of each stage, measured in this one run, and the share of each stage.
"""

from __future__ import annotations

import argparse
import time

from _scans import benchmark_scan


def _model(checkpoint: str | None):
    from nodulekit.evaluate.scoring import load_model
    from nodulekit.models import build_model

    if checkpoint:
        return load_model(checkpoint, device="cpu")
    config = {"crop_size_mm": 32.0, "crop_shape": [24, 24, 24]}
    return build_model("default").eval(), config


def main() -> None:
    from nodulekit.evaluate.detect import candidate_points, score_points
    from nodulekit.evaluate.scoring import crop_geometry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--scan")
    parser.add_argument("--max-candidates", type=int, default=200)
    args = parser.parse_args()
    scan = benchmark_scan(args.scan)
    model, config = _model(args.checkpoint)
    size_mm, shape = crop_geometry(config)
    times = {}
    wall, cpu = time.perf_counter(), time.process_time()
    points = candidate_points(scan, max_candidates=args.max_candidates)
    times["candidates"] = (time.perf_counter() - wall, time.process_time() - cpu)
    wall, cpu = time.perf_counter(), time.process_time()
    score_points(scan, points, model, size_mm=size_mm, shape_zyx=shape, device="cpu")
    times["scoring"] = (time.perf_counter() - wall, time.process_time() - cpu)
    total_cpu = sum(t[1] for t in times.values())
    print(f"scan {scan.shape} voxels, spacing {tuple(round(s, 3) for s in scan.spacing)} mm; "
          f"{len(points)} candidates")  # fmt: skip
    for name, (w, c) in times.items():
        print(f"{name:<11} wall {w:7.2f} s   cpu {c:7.2f} s   ({c / total_cpu:.0%} of cpu)")
    print(f"{'total':<11} wall {sum(t[0] for t in times.values()):7.2f} s   cpu {total_cpu:7.2f} s")


if __name__ == "__main__":
    main()
