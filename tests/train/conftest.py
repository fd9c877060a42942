"""A fake crop cache: spheres (nodules, class 1) vs tubes (vessels, class 0) in HU."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch


def make_fake_cache(
    n_series: int = 10, per_series: int = 12, size: int = 16, seed: int = 0
) -> SimpleNamespace:
    """An object with a crop cache's attributes: ``index``, ``crops`` (int16 HU), ``params``.

    Each series lies in subset ``series % 10``; a third of its candidates are spheres.
    """
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), axis=-1).astype(float)
    rows, crops = [], []
    for s in range(n_series):
        for k in range(per_series):
            label = int(k % 3 == 0)
            centre = size / 2 - 0.5 + rng.uniform(-1.5, 1.5, 3)
            volume = rng.normal(-800, 40, (size,) * 3)
            if label:
                radius = rng.uniform(2.0, 4.0)
                inside = np.linalg.norm(grid - centre, axis=-1) <= radius
            else:  # a tube along a random axis
                axis = rng.integers(3)
                other = [a for a in range(3) if a != axis]
                inside = np.linalg.norm(grid[..., other] - centre[other], axis=-1) <= 1.8
            volume[inside] = rng.normal(40, 30, int(inside.sum()))
            crops.append(np.rint(volume).astype(np.int16))
            rows.append(
                {
                    "seriesuid": f"1.2.3.{s}",
                    "coordX": float(k),
                    "coordY": float(s),
                    "coordZ": -float(k),
                    "class": label,
                    "diameter_mm": 2 * radius if label else np.nan,
                    "subset": s % 10,
                    "outside": False,
                }
            )
    return SimpleNamespace(
        index=pd.DataFrame(rows),
        crops=np.stack(crops),
        params={"size_mm": float(size), "shape_zyx": (size,) * 3, "fingerprint": "fake"},
    )


@pytest.fixture(scope="session")
def fake_cache() -> SimpleNamespace:
    return make_fake_cache()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread: tiny tensors run faster so on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
