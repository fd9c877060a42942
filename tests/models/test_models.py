"""The classifiers: output shapes, the Grad-CAM layer, the registry, and that one learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nodulekit.models import available_models, build_model
from nodulekit.models.cnn import NoduleCNN
from nodulekit.models.resnet import NoduleResNet

SMALL = {
    "cnn": {"channels": (4, 8)},
    "resnet": {"channels": (4, 8, 16), "layers": (1, 1, 1)},
    "resnet18": {"channels": (4, 4, 8, 8)},
}


def test_registry_names_and_default_is_the_small_cnn():
    assert available_models() == ["cnn", "resnet", "resnet18", "unet", "unet3d"]
    assert isinstance(build_model(), NoduleCNN)
    assert isinstance(build_model("resnet"), NoduleResNet)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"model name must be one of \['cnn', 'resnet'"):
        build_model("vgg")


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("size", [8, 16, 20])
def test_one_logit_per_crop_for_any_crop_size(name, size):
    model = build_model(name, **SMALL[name]).eval()
    out = model(torch.zeros(3, 1, size, size, size))
    assert out.shape == (3,)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(SMALL))
def test_last_conv_is_the_last_conv3d(name):
    model = build_model(name, **SMALL[name])
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    # the ResNet's 1x1 shortcut convs come after conv2 in module order; skip them
    convs = [c for c in convs if c.kernel_size == (3, 3, 3)]
    assert model.last_conv is convs[-1]
    assert not hasattr(model, "target_layer")  # one name for the Grad-CAM layer
    seen = []
    handle = model.last_conv.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model.eval()(torch.zeros(1, 1, 16, 16, 16))
    handle.remove()
    assert seen and seen[0][1] == model.last_conv.out_channels


def test_bad_channels_are_refused():
    with pytest.raises(ValueError, match="channels must be a non-empty sequence"):
        NoduleCNN(channels=())
    with pytest.raises(ValueError, match="same length"):
        NoduleResNet(channels=(4, 8), layers=(1,))


def _spheres_and_tubes(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), axis=-1) - size / 2 + 0.5
    xs, ys = [], []
    for k in range(n):
        label = k % 2
        c = rng.uniform(-1, 1, 3)
        if label:
            inside = np.linalg.norm(grid - c, axis=-1) <= rng.uniform(1.5, 2.5)
        else:
            axis = rng.integers(3)
            other = [a for a in range(3) if a != axis]
            inside = np.linalg.norm(grid[..., other] - c[other], axis=-1) <= 1.2
        vol = 0.1 * rng.random((size,) * 3) + 0.6 * inside
        xs.append(vol.astype(np.float32))
        ys.append(label)
    return torch.from_numpy(np.stack(xs))[:, None], torch.tensor(ys, dtype=torch.float32)


@pytest.mark.parametrize(
    ("name", "options", "steps"),
    [
        ("cnn", {"channels": (4, 8)}, 30),
        # BatchNorm's running statistics need more steps to settle in the ResNet
        pytest.param("resnet", {"channels": (4, 8), "layers": (1, 1)}, 80, marks=pytest.mark.slow),
    ],
)
def test_learns_spheres_vs_tubes_on_8_cubed_crops(name, options, steps):
    torch.manual_seed(0)
    x, y = _spheres_and_tubes(32, 8, seed=0)
    x_test, y_test = _spheres_and_tubes(64, 8, seed=1)
    model = build_model(name, **options)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(steps):
        model.train()
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = ((model(x_test) > 0).float() == y_test).float().mean().item()
    assert accuracy >= 0.9


def test_the_old_name_of_old_runs_still_builds_the_cnn_but_is_not_listed():
    from nodulekit.models import canonical_model_name

    assert isinstance(build_model("default", channels=(4,)), NoduleCNN)
    assert canonical_model_name("default") == "cnn"
    assert "default" not in available_models()
