"""Sanity checks, agreement with the annotation and faithfulness, against known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nodulekit.explain import (
    Attribution,
    attribute,
    deletion_curve,
    nodule_agreement,
    randomisation_blocks,
    sanity_check,
    summarise_agreement,
    trust_status,
    trust_table,
)
from nodulekit.explain.sanity import STATUS_FAILED, STATUS_PASSED, STATUS_UNCHECKED


class SquareEnergy(nn.Module):
    """logit = sum((w * x)^2): its saliency is 2 w^2 |x|, the same ranking for every w."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv(x) ** 2).flatten(1).sum(1)


def test_blocks_are_randomised_from_the_head_down(toy):
    assert [name for name, _ in randomisation_blocks(toy.model)] == [
        "head",
        "blocks.1",
        "blocks.0",
        "input_norm",
    ]


def test_gradcam_of_the_trained_model_passes_and_leaves_the_model_untouched(toy):
    before = {k: v.clone() for k, v in toy.model.state_dict().items()}
    report = sanity_check(toy.model, toy.test.x[:8], "gradcam")
    assert report.passed and report.status == STATUS_PASSED
    assert "depends on what the model learned" in report.status
    table = report.table
    assert table["randomised"].tolist()[1:] == ["head", "blocks.1", "blocks.0", "input_norm"]
    assert table["spearman_mean"].iloc[0] == 1.0
    assert report.final_correlation == table["spearman_mean"].iloc[-1] < report.threshold
    for key, value in toy.model.state_dict().items():
        torch.testing.assert_close(value, before[key])
    assert all(p.grad is None for p in toy.model.parameters())


def test_a_map_that_survives_randomisation_is_flagged():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 8, 8, 8)
    report = sanity_check(SquareEnergy(), x, "saliency")
    assert report.final_correlation == pytest.approx(1.0)
    assert not report.passed and report.status == STATUS_FAILED
    assert "hardly changes when the model is scrambled" in report.status
    row = trust_table([report]).iloc[0]
    assert row["method"] == "saliency" and not row["passed"]


def test_the_threshold_decides_the_verdict(toy):
    report = sanity_check(toy.model, toy.test.x[:4], "saliency", threshold=-1.0)
    assert not report.passed
    assert trust_status(None) == STATUS_UNCHECKED


def test_pointing_game_and_share_inside_on_hand_made_maps():
    maps = np.zeros((3, 9, 9, 9), np.float32)
    maps[0, 4, 4, 4] = 1.0  # hottest voxel at the centre: hit, all positive mass inside
    maps[1, 0, 0, 0] = 3.0  # hottest in a corner: miss; a quarter of the mass inside
    maps[1, 4, 4, 5] = 1.0
    maps[2] = 1.0  # not a nodule
    attribution = Attribution(maps, "saliency", False, np.zeros(3, np.float32))
    table = nodule_agreement(attribution, [3.0, 3.0, np.nan], voxel_mm=1.0)
    assert table["hit"].tolist()[:2] == [1.0, 0.0] and np.isnan(table["hit"].iloc[2])
    assert table["positive_share_inside"].tolist()[:2] == [1.0, 0.25]
    assert table["chance"].iloc[0] == pytest.approx(19 / 729)  # voxels within 1.5 of the centre
    assert table["is_nodule"].tolist() == [True, True, False]
    summary = summarise_agreement(table, method="saliency").iloc[0]
    assert summary["pointing_game"] == 0.5 and summary["n_nodules"] == 2
    # the tolerance turns the corner into a hit: it is sqrt(3 * 4^2) = 6.9 mm from the centre
    far = nodule_agreement(attribution, [3.0, 3.0, np.nan], voxel_mm=1.0, tolerance_mm=5.5)
    assert far["hit"].iloc[1] == 1.0


def test_nodule_agreement_needs_a_voxel_size():
    attribution = Attribution(np.zeros((1, 4, 4, 4), np.float32), "saliency", False, np.zeros(1))
    with pytest.raises(ValueError, match="voxel_mm"):
        nodule_agreement(attribution, [3.0])


def test_integrated_gradients_point_at_the_spheres_better_than_chance(toy):
    nodules = np.flatnonzero(toy.test.y.numpy() == 1)
    attribution = attribute(toy.model, toy.test.x[nodules], "integrated_gradients", n_steps=16)
    table = nodule_agreement(
        attribution,
        2 * toy.test.radius_vox[nodules],
        centers_zyx_vox=toy.test.center_zyx[nodules],
        voxel_mm=1.0,
    )
    summary = summarise_agreement(table).iloc[0]
    assert summary["pointing_game"] >= 0.75
    assert summary["positive_share_inside"] > 3 * summary["chance"]


def test_deletion_of_the_most_attributed_voxels_beats_a_random_order(toy):
    nodules = np.flatnonzero(toy.test.y.numpy() == 1)[:4]
    x = toy.test.x[nodules]
    attribution = attribute(toy.model, x, "integrated_gradients", n_steps=16)
    result = deletion_curve(toy.model, x, attribution, steps=10)
    assert result.auc_gap > 0.05 and result.auc_attribution < result.auc_random
    curve = result.curve
    assert set(curve["order"]) == {"attribution", "random"}
    assert len(curve) == 2 * 11 and len(result.per_crop) == 4
    with torch.no_grad():
        start = torch.sigmoid(toy.model(x)).mean().item()
        end = torch.sigmoid(toy.model(torch.zeros_like(x))).mean().item()
    first = curve[curve["fraction_deleted"] == 0.0]["probability_mean"]
    last = curve[curve["fraction_deleted"] == 1.0]["probability_mean"]
    np.testing.assert_allclose(first, start, rtol=1e-5)  # nothing deleted: the model's answer
    np.testing.assert_allclose(last, end, rtol=1e-5)  # all deleted: an all-air crop
    assert isinstance(result.summary(), pd.DataFrame)


def test_deletion_refuses_maps_of_other_crops(toy):
    attribution = attribute(toy.model, toy.test.x[:2], "saliency")
    with pytest.raises(ValueError, match=r"maps have shape \(2, 16, 16, 16\)"):
        deletion_curve(toy.model, toy.test.x[:3], attribution)


def test_data_randomisation_compares_with_a_model_trained_on_shuffled_labels(toy):
    from nodulekit.explain import data_randomisation_check
    from tests.explain.conftest import train_tiny

    seen = []

    def train(x, y):
        seen.append(y.clone())
        return train_tiny(SimpleNamespace(x=x, y=y), steps=8)

    table = data_randomisation_check(
        train, toy.train.x[:16], toy.train.y[:16], toy.test.x[:4], "saliency", threshold=0.99
    )
    assert len(seen) == 2 and sorted(seen[0].tolist()) == sorted(seen[1].tolist())
    assert not torch.equal(seen[0], seen[1])  # the second model saw shuffled labels
    row = table.iloc[0]
    assert row["method"] == "saliency" and row["n_crops"] == 4
    assert -1 <= row["spearman_mean"] <= 1
    assert row["passed"] == (row["spearman_mean"] < 0.99)
    assert "shuffled labels" in row["status"]


def test_the_scorecard_compares_methods_on_the_same_nodules(toy):
    from nodulekit.explain import method_scorecard

    nodules = np.flatnonzero(toy.test.y.numpy() == 1)[:4]
    table, details = method_scorecard(
        toy.model,
        toy.test.x[nodules],
        2 * toy.test.radius_vox[nodules],
        methods=("gradcam", "integrated_gradients"),
        voxel_mm=1.0,
        centers_zyx_vox=toy.test.center_zyx[nodules],
        method_options={"integrated_gradients": {"n_steps": 8}},
        deletion_steps=5,
    )
    assert table["method"].tolist() == ["gradcam", "integrated_gradients"]
    ig = table.set_index("method").loc["integrated_gradients"]
    assert ig["pointing_game"] >= 0.75 and ig["auc_gap"] > 0
    assert ig["sanity_passed"] == details["integrated_gradients"]["sanity"].passed
    assert ig["auc_attribution"] == details["integrated_gradients"]["deletion"].auc_attribution
    assert table["status"].str.len().min() > 40
