"""A 3D ResNet (ResNet-10 by default, ResNet-18 with ``layers=(2, 2, 2, 2)``) for crops.

Same interface as `nodulekit.models.cnn.NoduleCNN`: input ``(N, 1, D, H, W)`` normalised to
``[0, 1]``, output one logit per crop, ``model.last_conv`` is the last ``Conv3d`` of the last
residual block. The stem keeps full resolution (small crops need every voxel); each later
stage halves the size with a strided convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class BasicBlock3d(nn.Module):
    """Two 3x3x3 convolutions with a shortcut (a 1x1x1 strided conv when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class NoduleResNet(nn.Module):
    """A 3D ResNet giving one nodule-vs-not logit per crop.

    Parameters
    ----------
    in_channels : int
        Channels of the input crops (1 for CT).
    channels : sequence of int
        Width of each stage; the first stage keeps the stem's resolution, later ones halve it.
    layers : sequence of int
        Residual blocks per stage: ``(1, 1, 1, 1)`` is ResNet-10, ``(2, 2, 2, 2)`` ResNet-18.

    Examples
    --------
    >>> model = NoduleResNet(channels=(4, 8), layers=(1, 1))
    >>> model(torch.zeros(2, 1, 8, 8, 8)).shape
    torch.Size([2])
    """

    def __init__(
        self,
        in_channels: int = 1,
        *,
        channels: Sequence[int] = (16, 32, 64, 128),
        layers: Sequence[int] = (1, 1, 1, 1),
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        layers = tuple(int(n) for n in layers)
        if not channels or len(channels) != len(layers) or min(channels) < 1 or min(layers) < 1:
            raise ValueError(
                "channels and layers must be non-empty sequences of positive ints of the same "
                f"length, not channels={channels}, layers={layers}"
            )
        self.input_norm = nn.BatchNorm3d(in_channels)
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, channels[0], 3, padding=1, bias=False),
            nn.BatchNorm3d(channels[0]),
            nn.ReLU(inplace=True),
        )
        stages = []
        previous = channels[0]
        for i, (width, count) in enumerate(zip(channels, layers, strict=True)):
            blocks = [BasicBlock3d(previous, width, stride=1 if i == 0 else 2)]
            blocks += [BasicBlock3d(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(previous, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    @property
    def last_conv(self) -> nn.Conv3d:
        """The last ``Conv3d`` of the last residual block (the layer Grad-CAM looks at)."""
        return self.stages[-1][-1].conv2

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps after the last stage, ``(N, C, d, h, w)``."""
        return self.stages(self.stem(self.input_norm(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N,)`` for crops ``(N, 1, D, H, W)``."""
        return self.head(self.pool(self.features(x)).flatten(1)).squeeze(1)
