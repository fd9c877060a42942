"""Channels-last: 3D models and their crops, the same numbers in a faster layout."""

import torch

from nodulekit.models import build_model
from nodulekit.train.layout import channels_last, is_volumetric, to_input


def test_a_3d_classifier_gets_channels_last_weights_and_gives_the_same_logits():
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    x = torch.randn(3, 1, 24, 24, 24)
    with torch.no_grad():
        before = model(x)
        fast = channels_last(model)
        after = fast(to_input(x, "cpu"))
    conv = [m for m in fast.modules() if isinstance(m, torch.nn.Conv3d)][-1]  # in_channels > 1
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_a_2d_model_and_4d_batches_keep_their_layout():
    model = build_model("unet")  # the 2.5D U-Net: 2D convolutions
    assert not is_volumetric(model)
    channels_last(model)  # must not raise (channels_last_3d is for 5D tensors only)
    conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert conv.weight.is_contiguous()
    assert to_input(torch.zeros(2, 3, 8, 8), "cpu").is_contiguous()


def test_fit_trains_channels_last_and_the_checkpoint_loads_so(fake_cache, tmp_path):
    from nodulekit.train.checkpoint import load_checkpoint, load_model
    from nodulekit.train.config import TrainConfig
    from nodulekit.train.data import CandidateDataset, split_by_series
    from nodulekit.train.loop import fit

    splits = split_by_series(fake_cache.index, val_subsets=(8, 9), test_subsets=())
    config = TrainConfig(out=str(tmp_path / "run"), model_options={"channels": (4, 8, 16)},
                         epochs=1, batch_size=16, samples_per_epoch=32, patience=0,
                         device="cpu")  # fmt: skip
    fit(config, CandidateDataset(fake_cache, splits["train"]),
        CandidateDataset(fake_cache, splits["val"]))  # fmt: skip
    saved = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    weight = [v for v in saved.values() if v.dim() == 5][-1]  # in_channels > 1
    assert weight.is_contiguous(memory_format=torch.channels_last_3d)  # as it was trained
    model, _ = load_model(tmp_path / "run" / "last.pt", device="cpu")
    conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
