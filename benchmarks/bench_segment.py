"""Segmentation seconds per full-size scan on the CPU, and peak memory.

Run: ``python benchmarks/bench_segment.py [--segmenter RUN/best.pt] [--scan PATH] [--threads N]``.
Without ``--scan`` it uses the real sample scan (``NODULEKIT_SAMPLE_DIR``, 512 x 512 x 133) if
present, else a generated full-size synthetic scan. Without ``--segmenter`` it uses an untrained
default U-Net (``build_model("unet")``: the same arithmetic as a trained one). Stages, each
measured in this one run: the lung mask (grown), the U-Net over the lungs' box (slice by slice,
in batches), connected components. Prints wall and process CPU seconds per stage, the slices
per second of the U-Net, and the peak resident memory of the process above what it held once
the scan was read. On CUDA (when present) the U-Net stage is measured there as well.
"""

from __future__ import annotations

import argparse
import resource
import time

from _scans import benchmark_scan


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _timed(times: dict, name: str, fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    times[name] = (time.perf_counter() - wall, time.process_time() - cpu)
    return out


def main() -> None:
    import torch
    from scipy import ndimage

    from nodulekit.evaluate.segment_candidates import _lungs_grown, lung_box
    from nodulekit.evaluate.segmentation import load_segmenter
    from nodulekit.models import build_model
    from nodulekit.train.segment import predict_volume

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmenter")
    parser.add_argument("--scan")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scan = benchmark_scan(args.scan)
    model = (
        load_segmenter(args.segmenter, device="cpu")[0]
        if args.segmenter
        else build_model("unet").eval()
    )
    baseline = _peak_mib()
    times: dict[str, tuple[float, float]] = {}
    lungs = _timed(times, "lung mask", _lungs_grown, scan, 5.0)
    box = lung_box(lungs)
    z_range = (box[0].start, box[0].stop)
    probability = _timed(
        times, "U-Net", predict_volume, model, scan, z_range=z_range, box_yx=box[1:],
        batch_size=args.batch_size, device="cpu",
    )  # fmt: skip
    _timed(times, "components", lambda: ndimage.label((probability * lungs) >= 0.5))
    peak = _peak_mib()
    slices = z_range[1] - z_range[0]
    print(
        f"scan {scan.shape} voxels (z, y, x), spacing {tuple(round(s, 3) for s in scan.spacing)} "
        f"mm; lungs' box {slices} x {box[1].stop - box[1].start} x {box[2].stop - box[2].start}; "
        f"torch threads {torch.get_num_threads()}"
    )
    total_cpu = sum(t[1] for t in times.values())
    for name, (w, c) in times.items():
        print(f"{name:<11} wall {w:7.2f} s   cpu {c:7.2f} s   ({c / total_cpu:.0%} of cpu)")
    total_wall = sum(t[0] for t in times.values())
    print(f"{'total':<11} wall {total_wall:7.2f} s   cpu {total_cpu:7.2f} s")
    print(f"U-Net: {slices / times['U-Net'][0]:.1f} slices/s (wall) on the CPU")
    print(f"peak resident memory {peak:.0f} MiB, {peak - baseline:.0f} MiB above the scan read")
    if torch.cuda.is_available():
        model = model.cuda()
        predict_volume(model, scan, z_range=z_range, box_yx=box[1:], device="cuda")  # warm-up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        wall = time.perf_counter()
        predict_volume(model, scan, z_range=z_range, box_yx=box[1:], device="cuda")
        torch.cuda.synchronize()
        seconds = time.perf_counter() - wall
        print(
            f"U-Net on {torch.cuda.get_device_name()}: {seconds:.2f} s "
            f"(x{times['U-Net'][0] / seconds:.0f} the CPU), peak GPU memory "
            f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
        )


if __name__ == "__main__":
    main()
