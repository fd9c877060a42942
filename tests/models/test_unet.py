"""The U-Net: shapes, input checks, and that it can learn a mask."""

from __future__ import annotations

import pytest
import torch

from nodulekit.models.unet import NoduleUNet


def test_shapes_2d_and_3d():
    net = NoduleUNet(dims=2, channels=(4, 8, 16))
    assert net(torch.zeros(3, 5, 16, 24)).shape == (3, 1, 16, 24)
    net3 = NoduleUNet(dims=3, channels=(4, 8))
    assert net3(torch.zeros(2, 1, 4, 8, 8)).shape == (2, 1, 4, 8, 8)


def test_bad_inputs_name_the_expected_layout():
    net = NoduleUNet(dims=2, channels=(4, 8, 16))
    with pytest.raises(
        ValueError, match=r"\(N, slices, H, W\) with 5 channels, not shape \(1, 3, 16, 16\)"
    ):
        net(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.zeros(1, 5, 18, 16))
    with pytest.raises(ValueError, match="odd"):
        NoduleUNet(dims=2, in_channels=4)
    with pytest.raises(ValueError, match="dims must be 2"):
        NoduleUNet(dims=1)


def test_learns_a_disc():
    # a bright disc on the centre slice is the target: 60 steps reach Dice > 0.9
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    x = torch.zeros(8, 3, 16, 16)
    y = torch.zeros(8, 1, 16, 16)
    for i in range(8):
        cy, cx, r = 4 + i % 8, 5 + (i * 3) % 7, 2 + i % 3
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).float()
        x[i] = disc * 0.8 + 0.1
        y[i, 0] = disc
    from nodulekit.train.segment import dice_bce_loss, soft_dice

    net = NoduleUNet(dims=2, in_channels=3, channels=(8, 16))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = dice_bce_loss(net(x), y)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        hard = (net(x) > 0).float() * 40 - 20  # logits of a hard mask
    assert soft_dice(hard, y).item() > 0.9
