"""Candidate recall per nodule size band: counted and labelled as candidates, old runs read."""

from __future__ import annotations

import numpy as np

from nodulekit.train.metrics import recall_by_size
from nodulekit.train.summary import result_lines, size_band_recalls


def test_recall_by_size_counts_positive_candidates_not_nodules():
    # one 4 mm nodule with three candidates (two found), one 12 mm nodule with one (found),
    # one negative: 4 positive candidates of 2 nodules
    labels = np.array([1, 1, 1, 1, 0])
    probabilities = np.array([0.9, 0.6, 0.2, 0.8, 0.7])
    diameters = np.array([4.0, 4.0, 4.0, 12.0, np.nan])
    r = recall_by_size(labels, probabilities, diameters, threshold=0.5)
    assert (r["positives_lt6mm"], r["positives_6to10mm"], r["positives_gt10mm"]) == (3, 0, 1)
    assert r["recall_lt6mm"] == 2 / 3 and r["recall_gt10mm"] == 1.0
    assert np.isnan(r["recall_6to10mm"])
    assert not any(key.startswith("nodules_") for key in r)  # they were never nodules


def test_size_band_recalls_say_candidates_for_new_and_old_runs():
    new = {"recall_lt6mm": 2 / 3, "positives_lt6mm": 3, "recall_gt10mm": 1.0,
           "positives_gt10mm": 1}  # fmt: skip
    assert size_band_recalls(new) == {
        "< 6 mm": "0.667 of 3 candidates",
        ">= 10 mm": "1.000 of 1 candidate",
    }
    old = {"recall_lt6mm": 0.25, "nodules_lt6mm": 4}  # test_metrics.json of an older run
    assert size_band_recalls(old) == {"< 6 mm": "0.250 of 4 candidates"}
    assert size_band_recalls({"recall_lt6mm": 0.5}) == {"< 6 mm": "0.500"}


def test_the_train_summary_line_names_candidates(tmp_path):
    from types import SimpleNamespace

    metrics = {"auc": 0.9, "ap": 0.5, "recall_lt6mm": 0.25, "positives_lt6mm": 4}
    result = SimpleNamespace(run_dir=tmp_path, best_epoch=0, best_val_auc=0.9,
                             test_metrics=metrics)  # fmt: skip
    lines = result_lines(result)
    assert lines[-1] == "  candidate recall by nodule size: < 6 mm 0.250 of 4 candidates"


def test_the_operating_point_line_says_per_candidate():
    from nodulekit.train.summary import operating_point

    metrics = {"threshold": 0.9, "threshold_source": "validation", "recall_best": 0.5,
               "precision_best": 0.25, "f1_best": 1 / 3}  # fmt: skip
    assert operating_point(metrics) == (
        "at threshold 0.900 chosen on validation: recall 0.500, precision 0.250, F1 0.333 "
        "(per candidate)"
    )
