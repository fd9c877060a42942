"""Datasets, samplers, augmentation, the training loop, checkpoints, distributed launch.

Names load on first use (torch is imported only then):

>>> from nodulekit.train import TrainConfig, train              # doctest: +SKIP
>>> result = train(TrainConfig(data="synthetic", out="runs/x"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TrainConfig": "nodulekit.train.config",
    "train": "nodulekit.train.pipeline",
    "fit": "nodulekit.train.loop",
    "TrainResult": "nodulekit.train.loop",
    "resolve_device": "nodulekit.train.loop",
    "CandidateDataset": "nodulekit.train.data",
    "split_by_series": "nodulekit.train.data",
    "choose_splits": "nodulekit.train.data",
    "luna16_folds": "nodulekit.train.data",
    "BalancedSampler": "nodulekit.train.sampler",
    "Augment": "nodulekit.train.augment",
    "Callback": "nodulekit.train.callbacks",
    "StopAfter": "nodulekit.train.callbacks",
    "History": "nodulekit.train.callbacks",
    "predict_logits": "nodulekit.train.loop",
    "open_or_build_cache": "nodulekit.train.pipeline",
    "load_checkpoint": "nodulekit.train.checkpoint",
    "save_checkpoint": "nodulekit.train.checkpoint",
    "sha256_of": "nodulekit.train.checkpoint",
    "binary_metrics": "nodulekit.train.metrics",
    "choose_thresholds": "nodulekit.train.metrics",
    "recall_by_size": "nodulekit.train.metrics",
    "nodule_diameters": "nodulekit.train.data",
    "BinaryClassification": "nodulekit.train.task",
    "LoopState": "nodulekit.train.state",
    "Trainer": "nodulekit.train.loop",
    "claim_run_dir": "nodulekit.train.run_dir",
    "checksum_path": "nodulekit.train.checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nodulekit.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
