"""What explanations cost on a CPU: seconds per candidate per method, Grad-CAM against one
forward pass, and the explorer's redraw per control.

Run: ``python benchmarks/bench_explain.py [n_candidates]`` (default 8). Uses the default
classifier (`build_model("cnn")`, untrained: the cost does not depend on the weights) on
24^3 crops (32 mm, what training uses), in batches of all candidates, one torch thread per
default of this machine. Prints medians and the ratios measured in this one run.
"""

from __future__ import annotations

import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from nodulekit.explain import attribute, available_methods
from nodulekit.models import build_model
from nodulekit.widgets import ExplainExplorer

OPTIONS: dict[str, dict] = {}  # every method at its default settings


def timed(fn, repeat: int) -> float:
    """Median wall time of ``fn()`` in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def crops(n: int, size: int = 24, seed: int = 0) -> np.ndarray:
    """Lung-like HU crops with a soft-tissue ball in the middle."""
    rng = np.random.default_rng(seed)
    grid = np.indices((size,) * 3).transpose(1, 2, 3, 0) - (size - 1) / 2
    ball = np.linalg.norm(grid, axis=-1) <= 4
    out = rng.normal(-850, 40, (n, size, size, size))
    out[:, ball] = 40
    return out.astype(np.int16)


def main(n: int = 8) -> None:
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    hu = crops(n)
    x = torch.from_numpy(np.clip((hu + 1000) / 1400, 0, 1).astype(np.float32))[:, None]
    attribute(model, x[:1], "saliency")  # warm up
    with torch.no_grad():
        forward = timed(lambda: model(x), 5) / n
    rows = []
    for method in available_methods():
        repeat = 1 if method in ("occlusion", "integrated_gradients") else 3
        seconds = timed(lambda m=method: attribute(model, x, m, **OPTIONS.get(m, {})), repeat) / n
        rows.append({"method": method, "s_per_candidate": seconds, "x_forward": seconds / forward})
    table = pd.DataFrame(rows)
    print(f"CPU, {torch.get_num_threads()} torch threads, default CNN, {n} crops of 24^3")
    print(f"one forward pass: {forward * 1e3:.2f} ms per candidate")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    gradcam = table.set_index("method").loc["gradcam", "x_forward"]
    print(f"Grad-CAM / forward pass: {gradcam:.2f}x (goal <= 4x)")

    cache = SimpleNamespace(
        index=pd.DataFrame(
            {
                "seriesuid": "1.2.3",
                "coordX": np.arange(n, dtype=float),
                "coordY": 0.0,
                "coordZ": 0.0,
                "class": 0,
            }
        ),
        crops=hu,
    )
    widget = ExplainExplorer.from_cache(model, cache, method="gradcam")
    widget.method.value = "saliency"  # both maps cached from here on
    widget.method.value = "gradcam"
    controls = {
        "slice slider": (widget.slice_z, [5, 12, 18]),
        "opacity": (widget.opacity, [0.2, 0.7, 0.9]),
        "method (cached)": (widget.method, ["saliency", "gradcam", "saliency"]),
    }
    print("explorer redraw per control (map cached), median ms:")
    for name, (control, values) in controls.items():
        times = []
        for value in values * 3:
            control.value = value
            times.append(widget.redraw_seconds)
        print(f"  {name:18s} {statistics.median(times) * 1e3:6.1f}")
    start = time.perf_counter()
    widget.candidates.value = 3
    print(f"  new candidate (computes one Grad-CAM map): {(time.perf_counter() - start) * 1e3:.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
