"""Resuming a run from its ``last.pt``: checked before anything is written.

A checkpoint resumes a run with the same model (name and options: otherwise its weights do
not fit, and the error names the options that differ). Training *more* epochs, or with another
number of steps per epoch, works: the learning-rate schedule is planned again over the new
length and continues at the step the checkpoint reached (a one-cycle schedule that had
finished rises again: a warm restart). Fewer epochs than the checkpoint has done is refused.
"""

from __future__ import annotations

from typing import Any

import torch

from nodulekit.errors import CheckpointError
from nodulekit.models import canonical_model_name
from nodulekit.train.checkpoint import load_checkpoint
from nodulekit.train.config import TrainConfig

#: options that shape the learning-rate schedule
SCHEDULE_OPTIONS = (
    "epochs",
    "samples_per_epoch",
    "batch_size",
    "schedule",
    "warmup_fraction",
    "lr",
)


def _model_differences(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    differences = []
    model = canonical_model_name(str(saved.get("model", "cnn")))
    if model != config.model:
        differences.append(f"model: {model!r} in the checkpoint, {config.model!r} here")
    options = dict(saved.get("model_options", {}))
    for key in sorted(set(options) | set(config.model_options)):
        old, new = options.get(key, "unset"), config.model_options.get(key, "unset")
        if old != new:
            differences.append(f"model_options.{key}: {old} in the checkpoint, {new} here")
    return differences


def load_resume_checkpoint(
    config: TrainConfig, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """The checkpoint ``config.resume``, refused when it cannot continue this run."""
    checkpoint = load_checkpoint(config.resume, map_location=device)
    saved = checkpoint["config"]
    differences = _model_differences(saved, config)
    if differences:
        old = canonical_model_name(str(saved.get("model", "cnn")))
        head = (
            f"holds model {old!r}, not {config.model!r}"
            if old != config.model
            else "holds a model with other options"
        )
        raise CheckpointError(
            f"checkpoint {config.resume} {head} ({'; '.join(differences)}); resume with the "
            "checkpoint's --model and --model-options, or start a new run without --resume"
        )
    done = int(checkpoint["epoch"]) + 1
    if done > config.epochs:
        raise CheckpointError(
            f"checkpoint {config.resume} has already trained {done} epochs and --epochs is "
            f"{config.epochs}; give --epochs {done} or more to continue it"
        )
    return checkpoint


def schedule_changed(
    checkpoint: dict[str, Any], config: TrainConfig, scheduler: Any, step: int
) -> bool:
    """Whether the checkpoint's schedule differs from the one ``config`` plans.

    ``step`` is where this run resumes; another number of processes or of steps per epoch
    moves it away from the step the checkpoint's scheduler reached.
    """
    saved = checkpoint["config"]
    if any(saved.get(name) != getattr(config, name) for name in SCHEDULE_OPTIONS):
        return True
    state = checkpoint.get("scheduler") or {}
    if state.get("last_epoch") != step:
        return True
    is_sequential = isinstance(scheduler, torch.optim.lr_scheduler.SequentialLR)
    return is_sequential != ("_schedulers" in state)  # saved by the hand-written warm-up
