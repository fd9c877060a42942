"""The learning-rate schedule: one-cycle, or a linear warm-up then a cosine to zero.

Both are PyTorch's own schedulers, stepped once per optimiser step: ``OneCycleLR``, or
``SequentialLR(LinearLR, CosineAnnealingLR)``. The warm-up goes from ``lr / warmup`` to
``lr`` over ``warmup`` steps (step ``s`` has ``lr * (s + 1) / warmup``), then the cosine
falls from ``lr`` to zero over the remaining steps.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nodulekit.train.config import TrainConfig


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    """Steps of the warm-up: ``warmup_fraction`` of all steps, at least one."""
    return max(1, int(config.warmup_fraction * total_steps))


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int) -> Any:
    """The scheduler of ``config.schedule`` over ``total_steps`` optimiser steps."""
    warmup = warmup_steps(config, total_steps)
    if config.schedule == "onecycle" and total_steps >= 4:
        warmup = min(max(2, warmup), total_steps - 2)  # OneCycleLR needs two steps per phase
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=warmup / total_steps
        )
    ramp = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1
    )
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, total_steps - warmup), eta_min=0.0
    )
    return torch.optim.lr_scheduler.SequentialLR(
        optimizer, schedulers=[ramp, cosine], milestones=[warmup]
    )


def warmup_cosine_factor(step: int, warmup: int, total_steps: int) -> float:
    """The closed form of the warm-up + cosine schedule: the factor of ``lr`` at ``step``.

    Examples
    --------
    >>> [round(warmup_cosine_factor(s, 2, 6), 3) for s in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def fast_forward(scheduler: Any, steps: int) -> None:
    """Step a fresh ``scheduler`` ``steps`` times (a run resumed on a re-planned schedule)."""
    import warnings

    with warnings.catch_warnings():  # "optimizer.step() before lr_scheduler.step()": on purpose
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            scheduler.step()
