"""Datasets, samplers, augmentation, the training loop, checkpoints, distributed launch.

Names load on first use (torch is imported only then):

>>> from nodulekit.train import TrainConfig, train              # doctest: +SKIP
>>> result = train(TrainConfig(data="synthetic", out="runs/x"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nodulekit._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - what editors and type checkers see
    from nodulekit.train.augment import (
        Augment,
    )
    from nodulekit.train.callbacks import (
        Callback,
        History,
        StopAfter,
    )
    from nodulekit.train.checkpoint import (
        checksum_path,
        load_checkpoint,
        save_checkpoint,
        sha256_of,
    )
    from nodulekit.train.config import (
        TrainConfig,
    )
    from nodulekit.train.data import (
        CandidateDataset,
        choose_splits,
        nodule_diameters,
        split_by_series,
        subsets_with_nodules,
    )
    from nodulekit.train.loop import (
        Trainer,
        TrainResult,
        fit,
        predict_logits,
        resolve_device,
    )
    from nodulekit.train.metrics import (
        binary_metrics,
        choose_thresholds,
        recall_by_size,
    )
    from nodulekit.train.pipeline import (
        open_or_build_cache,
        train,
    )
    from nodulekit.train.run_dir import (
        claim_run_dir,
    )
    from nodulekit.train.sampler import (
        BalancedSampler,
    )
    from nodulekit.train.state import (
        LoopState,
    )
    from nodulekit.train.task import (
        BinaryClassification,
    )

_LAZY = {
    "TrainConfig": "nodulekit.train.config",
    "train": "nodulekit.train.pipeline",
    "fit": "nodulekit.train.loop",
    "TrainResult": "nodulekit.train.loop",
    "resolve_device": "nodulekit.train.loop",
    "CandidateDataset": "nodulekit.train.data",
    "split_by_series": "nodulekit.train.data",
    "choose_splits": "nodulekit.train.data",
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
    "subsets_with_nodules": "nodulekit.train.data",
}

__all__ = [
    "Augment",
    "BalancedSampler",
    "BinaryClassification",
    "Callback",
    "CandidateDataset",
    "History",
    "LoopState",
    "StopAfter",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "binary_metrics",
    "checksum_path",
    "choose_splits",
    "choose_thresholds",
    "claim_run_dir",
    "fit",
    "load_checkpoint",
    "nodule_diameters",
    "open_or_build_cache",
    "predict_logits",
    "recall_by_size",
    "resolve_device",
    "save_checkpoint",
    "sha256_of",
    "split_by_series",
    "subsets_with_nodules",
    "train",
]  # the names of _LAZY (a test checks)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
