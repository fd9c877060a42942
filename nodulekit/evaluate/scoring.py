"""Score candidates with a trained checkpoint: the checkpoint's model, its crop geometry.

A checkpoint records the config it was trained with; crops for scoring must be cut exactly as
they were for training (same edge in mm, same voxel shape), so a request for another geometry is
refused rather than silently scored on crops the model never saw.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from nodulekit.errors import CheckpointError


def load_model(
    checkpoint: str | os.PathLike, *, device: str = "auto", payload: dict | None = None
) -> tuple[Any, dict]:
    """`nodulekit.train.checkpoint.load_model` (imported on call: this module stays torch-free
    until something is scored)."""
    from nodulekit.train.checkpoint import load_model as load

    return load(checkpoint, device=device, payload=payload)


def crop_geometry(
    config: dict,
    *,
    checkpoint: str | os.PathLike = "checkpoint",
    size_mm: float | None = None,
    shape_zyx: Sequence[int] | None = None,
) -> tuple[float, tuple[int, int, int]]:
    """The crop edge (mm) and shape the checkpoint was trained on; refuse a different request.

    Examples
    --------
    >>> crop_geometry({"crop_size_mm": 32.0, "crop_shape": [24, 24, 24]}, size_mm=40)
    Traceback (most recent call last):
    ...
    nodulekit.errors.CheckpointError: checkpoint was trained on crops of 32 mm in 24x24x24 voxels; evaluation asked for 40 mm in 24x24x24 voxels...
    """
    trained_mm = float(config.get("crop_size_mm", 32.0))
    trained_shape = tuple(int(v) for v in config.get("crop_shape", (24, 24, 24)))
    asked_mm = trained_mm if size_mm is None else float(size_mm)
    asked_shape = trained_shape if shape_zyx is None else tuple(int(v) for v in shape_zyx)
    if asked_mm != trained_mm or asked_shape != trained_shape:
        raise CheckpointError(
            f"{checkpoint} was trained on crops of {trained_mm:g} mm in "
            f"{'x'.join(map(str, trained_shape))} voxels; evaluation asked for {asked_mm:g} mm "
            f"in {'x'.join(map(str, asked_shape))} voxels. A model scores only crops cut like "
            "its training crops: drop the crop options or use a checkpoint trained on them"
        )
    return trained_mm, trained_shape  # type: ignore[return-value]


def score_crops(
    model: Any, crops_hu: np.ndarray, *, batch_size: int = 128, device: str = "auto"
) -> np.ndarray:
    """Nodule probabilities of int16/float HU crops ``(N, D, H, W)``, in batches (AMP on CUDA)."""
    import torch

    from nodulekit.preprocess.window import normalize_hu
    from nodulekit.train.layout import to_input
    from nodulekit.train.loop import amp_dtype, resolve_device

    dev = resolve_device(device)
    amp = amp_dtype(dev)
    model = model.to(dev).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(crops_hu), batch_size):
            batch = normalize_hu(np.asarray(crops_hu[start : start + batch_size], np.float32))
            x = to_input(torch.from_numpy(np.ascontiguousarray(batch))[:, None], dev)
            with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = model(x)
            out.append(torch.sigmoid(logits.float()).cpu().numpy().reshape(-1))
    return np.concatenate(out) if out else np.empty(0, np.float32)


def score_cache(
    model: Any,
    cache: Any,
    rows: np.ndarray,
    *,
    batch_size: int = 128,
    device: str = "auto",
) -> np.ndarray:
    """Probabilities of the cache rows ``rows`` through `nodulekit.train.predict_logits`."""
    import torch
    from torch.utils.data import DataLoader

    from nodulekit.train.data import CandidateDataset
    from nodulekit.train.loop import amp_dtype, predict_logits, resolve_device

    dev = resolve_device(device)
    loader = DataLoader(CandidateDataset(cache, rows), batch_size=batch_size, shuffle=False)
    with torch.inference_mode():
        logits, _ = predict_logits(model.to(dev), loader, dev, amp_dtype(dev))
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
