"""Fixtures shared by the detection tests: a tiny synthetic set and untrained checkpoints."""

import pytest


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """Two tiny synthetic LUNA16-format scans (one set per test module)."""
    from nodulekit.data import make_synthetic_luna16

    return make_synthetic_luna16(
        tmp_path_factory.mktemp("tiny") / "data", n_scans=2, size="tiny", progress=False
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two untrained small-CNN checkpoints (seeds 0 and 1) on 12^3 crops of 32 mm."""
    import torch

    from nodulekit.models import build_model
    from nodulekit.train.checkpoint import save_checkpoint

    config = {"model": "cnn", "model_options": {"channels": [4, 8]}, "crop_size_mm": 32.0,
              "crop_shape": [12, 12, 12]}  # fmt: skip
    folder = tmp_path_factory.mktemp("ckpt")
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model("cnn", channels=[4, 8])
        out.append(save_checkpoint(folder / f"best{seed}.pt", model=model, epoch=0, config=config))
    return out


@pytest.fixture(scope="module")
def checkpoint(checkpoints):
    """One untrained checkpoint (seed 0)."""
    return checkpoints[0]
