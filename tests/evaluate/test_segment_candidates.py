"""Candidates from a segmentation: components, centres in world mm, sizes; recall per budget."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from nodulekit.data import Scan
from nodulekit.evaluate import segment_candidates as sc
from nodulekit.evaluate.segment_candidates import candidate_recall, unet_candidate_points


class ThresholdNet(torch.nn.Module):
    """Stands in for a 2.5D U-Net: nodule where the centre slice is above -300 HU."""

    dims, in_channels, levels = 2, 3, 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from nodulekit.preprocess.window import normalize_hu

        cut = float(normalize_hu(np.array([-300], np.int16))[0])
        return 50 * (x[:, 1:2] - cut)


def test_components_become_candidates_at_their_centre_with_their_size(monkeypatch):
    monkeypatch.setattr(sc, "_lungs_grown", lambda scan, grow_mm: np.ones(scan.shape, bool))
    array = np.full((12, 20, 20), -900, np.int16)
    array[4:8, 4:8, 10:14] = 40  # 64 voxels
    array[10, 17, 2] = 40  # one voxel: under min_diameter_mm
    scan = Scan(array, origin=(-10.0, 5.0, 100.0), spacing=(0.5, 0.5, 2.0))
    table = unet_candidate_points(scan, ThresholdNet(), min_diameter_mm=1.5)
    assert len(table) == 1
    row = table.iloc[0]
    # centre voxel (z 5.5, y 5.5, x 11.5) -> world x -10 + 11.5*0.5, y 5 + 5.5*0.5, z 100 + 5.5*2
    assert (row.coordX, row.coordY, row.coordZ) == pytest.approx((-4.25, 7.75, 111.0), abs=1e-3)
    assert row.n_voxels == 64 and row.volume_mm3 == pytest.approx(64 * 0.5)
    assert row.diameter_mm == pytest.approx((6 * 32 / math.pi) ** (1 / 3))
    assert row.seg_score == pytest.approx(1.0, abs=1e-4)


def test_recall_per_budget_by_hand():
    annotations = pd.DataFrame(
        {"seriesuid": ["a", "a", "b"], "coordX": [0.0, 50.0, 0.0], "coordY": [0.0] * 3,
         "coordZ": [0.0] * 3, "diameter_mm": [10.0, 4.0, 6.0]}
    )  # fmt: skip
    marks = pd.DataFrame(
        {"seriesuid": ["a", "a", "a", "b"], "coordX": [49.0, 4.0, 0.0, 3.5],
         "coordY": [0.0] * 4, "coordZ": [0.0] * 4}
    )  # fmt: skip
    table = candidate_recall({"m": marks}, annotations, ["a", "b"], budgets=[1, 2, 3])
    # k=1: a's first hits the 4 mm nodule (1 mm away), b's misses (3.5 > 3): 1 of 3
    # k=2: a's second hits the 10 mm one (4 < 5): 2 of 3; k=3: nothing new
    assert table.recall.tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert table.candidates_per_scan.tolist() == pytest.approx([1.0, 1.5, 2.0])


def test_unet_candidates_need_a_segmenter_on_the_command_line(tmp_path):
    from nodulekit.cli import app

    result = CliRunner().invoke(
        app,
        ["detect", str(tmp_path), "--checkpoint", str(tmp_path / "c.pt"), "--out",
         str(tmp_path / "p.csv"), "--candidates", "unet"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "unet with --segmenter" in result.output


def test_detect_with_unet_candidates_finds_the_synthetic_nodules(tmp_path, monkeypatch):
    import nodulekit.train.segment as segment
    from nodulekit.data import Luna16, make_synthetic_luna16
    from nodulekit.evaluate.detect import detect_scan
    from nodulekit.models import build_model

    root = make_synthetic_luna16(tmp_path / "d", n_scans=1, size="tiny", seed=2, progress=False)
    luna = Luna16(root, warn_missing=False)
    uid = luna.scans.seriesuid[0]
    labels, _ = segment.nodule_labels(luna, uid)
    # a perfect segmenter: the exact masks (the lung mask, components and scoring are real)
    monkeypatch.setattr(segment, "predict_volume", lambda *a, **k: (labels > 0).astype("f4"))
    classifier = build_model("cnn", channels=[4, 8]).eval()
    config = {"crop_size_mm": 32.0, "crop_shape": [12, 12, 12]}
    marks = detect_scan(
        luna.load(uid), (classifier, config), candidates="unet", segmenter=(ThresholdNet(), {}),
        device="cpu",
    )  # fmt: skip
    assert {"volume_mm3", "seg_score", "diameter_mm"} <= set(marks.columns)
    assert marks.probability.between(0, 1).all() and len(marks) <= labels.max()
    xyz = marks[["coordX", "coordY", "coordZ"]].to_numpy()
    for nodule in luna.annotations_for(uid).itertuples():
        distance = np.linalg.norm(xyz - [nodule.coordX, nodule.coordY, nodule.coordZ], axis=1)
        assert (distance < nodule.diameter_mm / 2).any()
    with pytest.raises(ValueError, match="needs a segmenter"):
        detect_scan(luna.load(uid), (classifier, config), candidates="unet")
