"""A compact U-Net for nodule segmentation, in 2.5D (the CPU default) and in 3D (for a GPU).

2.5D: the input is a stack of neighbouring axial slices as channels, ``(N, S, H, W)`` with ``S``
odd (5 by default), and the output is one logit map for the **centre** slice, ``(N, 1, H, W)``.
Five slices at LUNA16's typical 1-2.5 mm spacing see 5-12 mm of z context at a 2D network's cost.

3D: the input is a patch ``(N, 1, D, H, W)``, the output a logit volume of the same size.

Both are the classic encoder-decoder of Ronneberger et al. (2015): blocks of
``conv3-norm-ReLU`` twice, max-pool down, transposed-conv up, skip connections by
concatenation, a 1x1 convolution to one logit per voxel (nodule = 1; train with Dice plus
binary cross-entropy, `torch.sigmoid` gives the probability). Spatial sizes must be divisible by
``2 ** (len(channels) - 1)``; the error says so. Inputs are normalised to ``[0, 1]`` by
`nodulekit.preprocess.normalize_hu`, like the classifiers'.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _block(dims: int, in_channels: int, out_channels: int) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    return nn.Sequential(
        conv(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        norm(out_channels),
        nn.ReLU(inplace=True),
        conv(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
        norm(out_channels),
        nn.ReLU(inplace=True),
    )


class NoduleUNet(nn.Module):
    """U-Net giving one nodule logit per voxel (3D) or per pixel of the centre slice (2.5D).

    Parameters
    ----------
    dims : {2, 3}
        2 for the 2.5D network (slices as channels), 3 for the 3D one.
    in_channels : int, optional
        Input channels: the number of slices for 2.5D (odd; default 5), 1 for 3D.
    channels : sequence of int
        Widths of the encoder levels, top to bottom.

    Examples
    --------
    >>> net = NoduleUNet(dims=2, channels=(4, 8, 16))
    >>> net(torch.zeros(2, 5, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
    >>> NoduleUNet(dims=3, channels=(4, 8))(torch.zeros(1, 1, 8, 16, 16)).shape
    torch.Size([1, 1, 8, 16, 16])
    """

    def __init__(
        self,
        dims: int = 2,
        in_channels: int | None = None,
        *,
        channels: Sequence[int] = (16, 32, 64, 128),
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 (2.5D, slices as channels) or 3, not {dims!r}")
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(f"channels must be 2 or more positive ints, not {channels}")
        in_channels = (5 if dims == 2 else 1) if in_channels is None else int(in_channels)
        if dims == 2 and in_channels % 2 == 0:
            raise ValueError(
                f"a 2.5D U-Net predicts the centre slice of an odd stack; in_channels must be "
                f"odd (e.g. 3 or 5), not {in_channels}"
            )
        self.dims = dims
        self.in_channels = in_channels
        self.levels = len(channels)
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width in channels:
            self.encoders.append(_block(dims, previous, width))
            previous = width
        self.pool = pool(kernel_size=2)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(channels[:-1]):
            self.ups.append(up(previous, width, kernel_size=2, stride=2))
            self.decoders.append(_block(dims, 2 * width, width))
            previous = width
        self.head = conv(previous, 1, kernel_size=1)

    @property
    def last_conv(self) -> nn.Module:
        """The last 3x3 convolution of the decoder (the layer Grad-CAM would look at)."""
        return self.decoders[-1][3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)`` (2.5D) or ``(N, 1, D, H, W)`` (3D)."""
        expected = self.dims + 2
        if x.ndim != expected or x.shape[1] != self.in_channels:
            layout = "(N, slices, H, W)" if self.dims == 2 else "(N, 1, D, H, W)"
            raise ValueError(
                f"NoduleUNet(dims={self.dims}) takes {layout} with {self.in_channels} channels, "
                f"not shape {tuple(x.shape)}"
            )
        factor = 2 ** (self.levels - 1)
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(
                f"spatial size {tuple(x.shape[2:])} must be divisible by {factor} "
                f"(2 ** {self.levels - 1} poolings); pad or crop the patch"
            )
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips[:-1]), strict=True):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return self.head(x)
