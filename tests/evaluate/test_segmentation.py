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
