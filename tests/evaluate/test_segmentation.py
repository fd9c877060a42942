"""Per-nodule segmentation metrics against hand-counted masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nodulekit.evaluate.segmentation import (
    dice_iou,
    equivalent_diameter_mm,
    nodule_segmentation_metrics,
    summarise_segmentation,
)


def test_per_nodule_dice_in_its_own_box():
    labels = np.zeros((10, 20, 20), np.uint8)
    labels[2:4, 2:4, 2:4] = 1  # 8 voxels
    labels[6:8, 14:16, 14:16] = 2  # 8 voxels, far away
    prob = np.zeros(labels.shape, np.float32)
    prob[2:4, 2:4, 2:5] = 0.9  # 12 voxels: 8 right, 4 too many -> Dice 16/20
    prob[6:8, 14:16, 14:16] = 0.4  # under the threshold: missed
    table = nodule_segmentation_metrics(prob, labels, (1, 1, 1), seriesuid="s", margin_mm=1)
    assert table.label.tolist() == [1, 2]
    assert table.dice.tolist() == pytest.approx([16 / 20, 0.0])
    assert table.iou.tolist() == pytest.approx([8 / 12, 0.0])
    assert table.diameter_mm.iloc[0] == pytest.approx(equivalent_diameter_mm(8, (1, 1, 1)))
    assert table.diameter_error_mm.iloc[0] == pytest.approx(
        equivalent_diameter_mm(12, (1, 1, 1)) - equivalent_diameter_mm(8, (1, 1, 1))
    )
    # a false positive far from both nodules is outside every box: no effect
    prob[9, 10, 10] = 1
    again = nodule_segmentation_metrics(prob, labels, (1, 1, 1), seriesuid="s", margin_mm=1)
    assert again.dice.tolist() == pytest.approx(table.dice.tolist())


def test_grid_mismatch_and_empty_masks():
    assert dice_iou(np.zeros((2, 2)), np.zeros((2, 2))) == (1.0, 1.0)
    with pytest.raises(ValueError, match="not on one grid"):
        nodule_segmentation_metrics(np.zeros((2, 2, 2)), np.zeros((2, 2, 3), np.uint8), (1, 1, 1))


def test_summary_intervals_resample_series():
    table = pd.DataFrame(
        {
            "seriesuid": ["a", "a", "b"],
            "dice": [1.0, 1.0, 0.0],
            "iou": [1.0, 1.0, 0.0],
            "diameter_error_mm": [0.0, 0.0, -3.0],
        }
    )
    summary = summarise_segmentation(table, n_resamples=2000, seed=0).set_index("metric")
    assert summary.loc["dice", "value"] == pytest.approx(2 / 3)
    # drawing {b, b} gives 0, drawing {a, a} gives 1: the interval spans both ends
    assert summary.loc["dice", "low"] == 0.0 and summary.loc["dice", "high"] == 1.0
    assert summary.loc["abs_diameter_error_mm", "value"] == pytest.approx(1.0)
    assert summary.attrs["n_series"] == 2


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from nodulekit.data.synthetic import make_synthetic_luna16

    return make_synthetic_luna16(
        tmp_path_factory.mktemp("evalseg") / "data", n_scans=3, size="tiny", seed=4, progress=False
    )


def _checkpoint(path, model, name, **config):
    from nodulekit.train.checkpoint import save_checkpoint
    from nodulekit.train.config import TrainConfig

    task = "segment" if name.startswith("unet") else "classify"
    values = TrainConfig(model=name, task=task, **config).to_dict()
    return save_checkpoint(path, model=model, epoch=0, config=values)


def test_a_unet_that_marks_everything_scores_its_hand_computed_dice(tiny_root, tmp_path):
    import torch

    from nodulekit.data import Luna16
    from nodulekit.evaluate.segmentation import evaluate_segmentation
    from nodulekit.models import build_model
    from nodulekit.train.segment import nodule_labels

    net = build_model("unet", channels=(4, 8))
    with torch.no_grad():  # every logit +20: the whole box is called nodule
        net.head.weight.zero_()
        net.head.bias.fill_(20.0)
    options = {"channels": [4, 8]}
    ckpt = _checkpoint(tmp_path / "seg.pt", net, "unet", model_options=options)
    per_nodule, summary = evaluate_segmentation(ckpt, tiny_root, [2], device="cpu", margin_mm=2)
    luna = Luna16(tiny_root, warn_missing=False)
    uid = luna.scans.loc[luna.scans.subset == 2, "seriesuid"].iloc[0]
    labels, source = nodule_labels(luna, uid)
    assert source == "mask" and len(per_nodule) == labels.max()
    spacing = np.asarray(luna.load(uid).spacing[::-1])
    grow = np.ceil(2 / spacing).astype(int)
    expected = []
    for k in range(1, labels.max() + 1):
        voxels = np.argwhere(labels == k)
        lo, hi = np.maximum(voxels.min(0) - grow, 0), voxels.max(0) + grow + 1
        box = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        truth, called = int((box == k).sum()), int(((box == 0) | (box == k)).sum())
        expected.append(2 * truth / (truth + called))
    assert per_nodule.dice.tolist() == pytest.approx(expected)
    assert summary.set_index("metric").loc["dice", "value"] == pytest.approx(np.mean(expected))


def test_a_classifier_checkpoint_is_not_a_segmenter(tmp_path):
    from nodulekit.errors import CheckpointError
    from nodulekit.evaluate.segmentation import load_segmenter
    from nodulekit.models import build_model

    ckpt = _checkpoint(tmp_path / "cls.pt", build_model("cnn"), "cnn")
    with pytest.raises(CheckpointError, match=r"holds model 'cnn', a classifier.*--task segment"):
        load_segmenter(ckpt, device="cpu")
