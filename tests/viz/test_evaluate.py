"""Evaluation figures: what a reader sees (curves, bands, the 7 FROC points, gallery rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nodulekit.evaluate._froc import froc
from nodulekit.evaluate.gallery import error_table
from nodulekit.evaluate.metrics import calibration_table, curve_bands
from nodulekit.preprocess.crop import Crop
from nodulekit.viz.evaluate import (
    calibration_figure,
    error_gallery_figure,
    froc_figure,
    roc_pr_figure,
)

ANN = pd.DataFrame(
    {"seriesuid": ["a", "a", "b"], "coordX": [0.0, 50.0, 0.0], "coordY": [0.0] * 3,
     "coordZ": [0.0] * 3, "diameter_mm": [10.0, 25.0, 6.0]}
)  # fmt: skip
MARKS = pd.DataFrame(
    {"seriesuid": ["a", "a", "b", "b"], "coordX": [1.0, 100.0, 0.5, 40.0], "coordY": [0.0] * 4,
     "coordZ": [0.0] * 4, "probability": [0.9, 0.95, 0.4, 0.2]}
)  # fmt: skip


def test_froc_figure_marks_the_seven_points_with_their_values():
    result = froc(MARKS, ANN, None, ["a", "b"], n_resamples=30)
    fig = froc_figure(result)
    ax = fig.axes[0]
    points = next(line for line in ax.get_lines() if line.get_label() == "LUNA16 points")
    np.testing.assert_allclose(points.get_xdata(), [0.125, 0.25, 0.5, 1, 2, 4, 8])
    assert ax.get_xscale() == "log"
    assert f"CPM {result.cpm:.3f}" in ax.get_legend().get_texts()[0].get_text()
    assert len(ax.texts) == 7


def test_roc_pr_and_calibration_figures():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    p = np.clip(0.4 * y + 0.6 * rng.random(400), 0, 1)
    bands = curve_bands(y, p, np.arange(400) % 20, n_resamples=50)
    fig = roc_pr_figure(bands, auc=0.9, ap=0.7, prevalence=0.2)
    roc_ax, pr_ax = fig.axes
    # candidate-level curves say so: a nodule has several candidates
    assert "candidates" in roc_ax.get_title() and "candidates" in pr_ax.get_title()
    assert "AUC 0.900" in [t.get_text() for t in roc_ax.get_legend().get_texts()][1]
    assert len(roc_ax.collections) == 1  # the band
    assert (bands["roc"]["low"] <= bands["roc"]["tpr"] + 1e-9).all()
    table = calibration_table(y, p, n_bins=5)
    assert table["count"].sum() == 400
    fig = calibration_figure(table)
    assert "Brier" in fig.axes[0].get_legend().get_texts()[1].get_text()
    assert fig.axes[0].get_ylabel() == "observed share of positive candidates"


def test_froc_figure_marks_the_operating_point_of_the_threshold():
    from nodulekit.evaluate._nodule_recall import nodule_recall

    result = froc(MARKS, ANN, None, ["a", "b"], n_resamples=0)
    # at 0.5: the 10 mm nodule found (0.9), the 0.95 mark a false positive: 1/3, 0.5 FP/scan
    fig = froc_figure(result, at=nodule_recall(result, 0.5, source="validation"))
    ax = fig.axes[0]
    star = next(line for line in ax.get_lines() if "threshold" in line.get_label())
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (0.5, pytest.approx(1 / 3))
    assert star.get_label() == "validation threshold 0.500: 1/3 nodules, 0.50 FP/scan"


def test_error_table_and_gallery_rows_agree():
    result = froc(MARKS, ANN, None, ["a", "b"], n_resamples=0)
    table = error_table(result, n_false_positives=5)
    assert table["kind"].tolist() == ["false positive", "false positive", "missed nodule"]
    fp = table.iloc[0]  # the most probable false positive, 50 mm from the missed 25 mm nodule
    assert fp["probability"] == 0.95 and fp["nearest_mm"] == pytest.approx(50.0)
    missed = table.iloc[2]
    assert missed["diameter_mm"] == 25.0 and missed["nearest_mm"] == pytest.approx(50.0)
    crops = [
        Crop(
            np.full((8, 8, 8), -800, np.float32),
            (0, 0, 0),
            (1, 1, 1),
            (1, 0, 0, 0, 1, 0, 0, 0, 1),
            (0, 0, 0),
        )
        for _ in range(len(table))
    ]
    fig = error_gallery_figure(table, crops)
    assert len(fig.axes) == 4 * len(table)
    assert "missed nodule" in fig.axes[8].texts[0].get_text()
    with pytest.raises(ValueError, match="one crop per row"):
        error_gallery_figure(table, crops[:1])
