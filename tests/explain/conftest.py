"""A tiny classifier trained inside the tests on spheres (nodules) versus tubes (vessels).

The crops are 16^3 voxels in HU, normalised like the training data set; every nodule's centre
and radius (voxels) are known, so agreement with the annotation has a right answer.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from nodulekit.models import build_model
from nodulekit.preprocess import normalize_hu

SIZE = 16


def spheres_and_tubes(n: int, seed: int, size: int = SIZE) -> SimpleNamespace:
    """``x`` (n, 1, size^3) normalised crops, ``y`` labels, ``center_zyx``/``radius_vox`` truth."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), axis=-1).astype(float)
    xs, ys, centers, radii = [], [], [], []
    for k in range(n):
        label = k % 2
        center = rng.uniform(4.0, size - 5.0, 3)
        volume = rng.normal(-850, 30, (size,) * 3)
        if label:
            radius = rng.uniform(2.0, 3.0)
            inside = np.linalg.norm(grid - center, axis=-1) <= radius
        else:
            radius = 0.0
            axis = rng.integers(3)
            other = [a for a in range(3) if a != axis]
            inside = np.linalg.norm(grid[..., other] - center[other], axis=-1) <= 1.5
        volume[inside] = rng.normal(40, 20, int(inside.sum()))
        xs.append(normalize_hu(volume))
        ys.append(label)
        centers.append(center)
        radii.append(radius)
    return SimpleNamespace(
        x=torch.from_numpy(np.stack(xs))[:, None],
        y=torch.tensor(ys, dtype=torch.float32),
        center_zyx=np.array(centers),
        radius_vox=np.array(radii),
    )


def train_tiny(data: SimpleNamespace, *, steps: int = 40, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("cnn", channels=(4, 8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(data.x), data.y).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="session")
def toy() -> SimpleNamespace:
    """A trained tiny CNN (``model``), its training set and a held-out ``test`` set."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train = spheres_and_tubes(32, seed=0)
        model = train_tiny(train)
    finally:
        torch.set_num_threads(before)
    return SimpleNamespace(model=model, train=train, test=spheres_and_tubes(16, seed=1))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
