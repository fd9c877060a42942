"""The small, fast 3D CNN: the classic teaching network for candidate classification.

Input: a batch of crops ``(N, 1, D, H, W)`` already normalised to ``[0, 1]`` by
`nodulekit.preprocess.normalize_hu` (the dataset does that). A ``BatchNorm3d`` on the input
re-centres it, then a few blocks of ``conv - BN - ReLU - conv - BN - ReLU - maxpool`` halve the
size while doubling the channels, a global average pool makes the result independent of the
crop size, and a linear head gives **one logit** per crop: nodule (1) vs not (0). Train it with
``BCEWithLogitsLoss``; ``torch.sigmoid(logit)`` is the nodule probability.

Grad-CAM needs the last convolution: it is ``model.last_conv``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """``conv3-BN-ReLU`` twice, then a 2x max pool (``ceil_mode`` so odd sizes never vanish)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=2, ceil_mode=True),
        )


class NoduleCNN(nn.Module):
    """A 3D CNN giving one nodule-vs-not logit per crop.

    Parameters
    ----------
    in_channels : int
        Channels of the input crops (1 for CT).
    channels : sequence of int
        Output channels of each conv-conv-pool block; 3 or 4 blocks suit 16^3 to 64^3 crops.
    dropout : float
        Dropout before the linear head (0 disables it and keeps training fully seeded).

    Examples
    --------
    >>> model = NoduleCNN(channels=(4, 8, 16))
    >>> model(torch.zeros(2, 1, 16, 16, 16)).shape
    torch.Size([2])
    """

    def __init__(
        self,
        in_channels: int = 1,
        *,
        channels: Sequence[int] = (8, 16, 32, 64),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(
                f"channels must be a non-empty sequence of positive ints, not {channels}"
            )
        self.input_norm = nn.BatchNorm3d(in_channels)
        blocks = []
        previous = in_channels
        for width in channels:
            blocks.append(ConvBlock(previous, width))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(previous, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    @property
    def last_conv(self) -> nn.Conv3d:
        """The last ``Conv3d`` (the layer Grad-CAM looks at)."""
        return self.blocks[-1][3]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps after the last block, ``(N, C, d, h, w)``."""
        return self.blocks(self.input_norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N,)`` for crops ``(N, 1, D, H, W)``."""
        pooled = self.pool(self.features(x)).flatten(1)
        return self.head(self.dropout(pooled)).squeeze(1)
