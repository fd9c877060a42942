"""Memory layout of 3D models and their inputs: channels-last.

A 3D CNN on crops ``(N, 1, D, H, W)`` trains 1.3-1.5x faster when its weights and inputs are
stored channels-last (``torch.channels_last_3d``): oneDNN on the CPU and cuDNN on CUDA pick
faster convolution kernels for that layout (`benchmarks/bench_train.py` prints the ratio). The
values are the same; only the strides change, so checkpoints load either way.

Models with 2D convolutions (the 2.5D U-Net) keep their layout: channels-last-3d is for 5D
tensors only.
"""

from __future__ import annotations

import torch

FORMAT = torch.channels_last_3d


def is_volumetric(model: torch.nn.Module) -> bool:
    """True when every convolution of ``model`` is 3D (and it has some)."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    return bool(convs) and all(isinstance(m, torch.nn.Conv3d | torch.nn.ConvTranspose3d)
                               for m in convs)  # fmt: skip


def channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its 5D weights channels-last when it is volumetric (in place, returned)."""
    return model.to(memory_format=FORMAT) if is_volumetric(model) else model


def to_input(x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``x`` on ``device``; a 5D batch channels-last (what `channels_last` models run fastest on).

    Examples
    --------
    >>> x = to_input(torch.zeros(2, 1, 4, 4, 4), "cpu")
    >>> x.is_contiguous(memory_format=torch.channels_last_3d), x.shape
    (True, torch.Size([2, 1, 4, 4, 4]))
    """
    if x.dim() == 5:
        return x.to(device, non_blocking=True, memory_format=FORMAT)
    return x.to(device, non_blocking=True)
