"""Honest test figures: the operating point comes from validation; stopped runs score nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nodulekit.train.callbacks import StopAfter
from nodulekit.train.data import CandidateDataset, split_by_series
from nodulekit.train.loop import fit
from nodulekit.train.metrics import binary_metrics, choose_thresholds, recall_by_size
from nodulekit.train.task import gather_predictions
from tests.train.test_loop import _config


def _three_splits(cache):
    splits = split_by_series(cache.index, val_subsets=(8,), test_subsets=(9,))
    return [CandidateDataset(cache, splits[name]) for name in ("train", "val", "test")]


def _probabilities(model, dataset):
    logits, labels = gather_predictions(model, dataset, device=torch.device("cpu"), batch_size=16)
    return labels, torch.sigmoid(torch.from_numpy(logits).double()).numpy()


def test_the_test_split_is_scored_at_the_validation_threshold(fake_cache, tmp_path):
    train, val, test = _three_splits(fake_cache)
    result = fit(_config(tmp_path, epochs=2), train, val, test_dataset=test)
    saved = json.loads((tmp_path / "run" / "test_metrics.json").read_text(encoding="utf-8"))
    assert saved["threshold_source"] == "validation"
    assert json.dumps(saved) == json.dumps(result.test_metrics)
    # the threshold is the one validation chose with the best weights, not the test's own
    val_labels, val_p = _probabilities(result.model, val)
    chosen = choose_thresholds(val_labels, val_p)
    best_row = result.metrics.set_index("epoch").loc[result.best_epoch]
    assert saved["threshold"] == chosen["threshold"] == best_row["val_threshold"]
    assert saved["threshold_p85"] == chosen["threshold_p85"]
    labels, p = _probabilities(result.model, test)
    # the test split's own best threshold differs and flags other candidates, so the figures
    # below tell which of the two was used
    own = choose_thresholds(labels, p)["threshold"]
    assert own != chosen["threshold"] and ((p >= own) != (p >= chosen["threshold"])).any()
    said = p >= chosen["threshold"]
    recall = (said & (labels == 1)).sum() / (labels == 1).sum()
    precision = (said & (labels == 1)).sum() / said.sum()
    assert saved["recall_best"] == pytest.approx(recall)
    assert saved["precision_best"] == pytest.approx(precision)
    assert saved["recall"] == pytest.approx(((p >= 0.5) & (labels == 1)).sum() / labels.sum())


def test_test_metrics_report_recall_per_size_band(fake_cache, tmp_path):
    train, val, test = _three_splits(fake_cache)
    result = fit(_config(tmp_path, epochs=1), train, val, test_dataset=test)
    m = result.test_metrics
    sizes = test.diameters_mm
    positives = test.labels == 1
    assert m["positives_lt6mm"] == int((sizes[positives] < 6).sum())
    assert m["positives_6to10mm"] == int((sizes[positives] >= 6).sum())  # fake nodules: 4-8 mm
    assert m["positives_gt10mm"] == 0 and np.isnan(m["recall_gt10mm"])
    _, p = _probabilities(result.model, test)
    small = positives & (sizes < 6)
    assert m["recall_lt6mm"] == pytest.approx((p[small] >= m["threshold"]).mean())


def test_a_stopped_run_does_not_score_the_test_split(fake_cache, tmp_path):
    train, val, test = _three_splits(fake_cache)
    result = fit(
        _config(tmp_path, epochs=3), train, val, test_dataset=test, callbacks=[StopAfter(1)]
    )
    assert result.stop_reason == "stopped"
    assert result.test_metrics == {}
    assert not (tmp_path / "run" / "test_metrics.json").exists()


def test_ctrl_c_does_not_score_the_test_split_and_frees_the_folder(fake_cache, tmp_path):
    class CtrlC:
        def on_batch_end(self, step, loss):
            if step == 8:
                raise KeyboardInterrupt

    train, val, test = _three_splits(fake_cache)
    with pytest.raises(KeyboardInterrupt):
        fit(_config(tmp_path, epochs=3), train, val, test_dataset=test, callbacks=[CtrlC()])
    assert not (tmp_path / "run" / "test_metrics.json").exists()
    resumed = fit(
        _config(tmp_path, epochs=3, resume=str(tmp_path / "run" / "last.pt")),
        train,
        val,
        test_dataset=test,
    )
    assert resumed.stop_reason == "completed" and resumed.test_metrics["threshold_source"]


def test_early_stopping_still_scores_the_test_split(fake_cache, tmp_path):
    train, _, test = _three_splits(fake_cache)
    negatives = np.flatnonzero(fake_cache.index["class"].to_numpy() == 0)[:8]
    val = CandidateDataset(fake_cache, negatives)  # AUC NaN: never improves
    result = fit(_config(tmp_path, epochs=5, patience=1), train, val, test_dataset=test)
    assert result.stop_reason == "early_stopping"
    assert len(result.metrics) == 2 and result.test_metrics["threshold_source"] == "validation"


def test_metrics_with_given_thresholds_use_them_at_hand_computed_points():
    labels = np.array([0, 0, 1, 1, 1])
    p = np.array([0.2, 0.7, 0.3, 0.8, 0.9])
    m = binary_metrics(labels, p, thresholds={"threshold": 0.75, "threshold_p85": 0.25})
    assert (m["threshold"], m["recall_best"], m["precision_best"]) == (0.75, 2 / 3, 1.0)
    assert m["f1_best"] == pytest.approx(0.8)
    assert (m["recall_at_p85"], m["precision_at_p85"]) == (1.0, 0.75)
    assert (m["recall"], m["precision"]) == (2 / 3, 2 / 3)  # at 0.5, as on validation
    own = binary_metrics(labels, p)  # validation: chooses its own
    assert own["threshold"] == 0.3 and own["f1_best"] == pytest.approx(6 / 7)  # R 1, P .75


def test_recall_by_size_bands_are_half_open():
    r = recall_by_size(
        np.array([1, 1, 1, 1]), np.array([0.9, 0.1, 0.9, 0.9]), np.array([5.9, 6, 10, 10.1]), 0.5
    )
    # [low, high) as in LUNA16 reports: 6.0 is 6-10, 10.0 is >=10
    assert (r["positives_lt6mm"], r["positives_6to10mm"], r["positives_gt10mm"]) == (1, 1, 2)
    assert r["recall_6to10mm"] == 0.0 and r["recall_gt10mm"] == 1.0
