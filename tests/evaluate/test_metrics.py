import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from nodulekit.evaluate.metrics import (
    _weighted_ranking,
    bootstrap_metrics,
    choose_threshold,
    class_balance,
    classification_metrics,
    format_table,
    metrics_by_group,
    size_band,
)


def _toy(n_series=40, per_series=30, seed=1):
    rng = np.random.default_rng(seed)
    series = np.repeat([f"1.2.{i}" for i in range(n_series)], per_series)
    y = (rng.random(series.size) < 0.1).astype(int)
    p = np.clip(0.35 * y + rng.random(series.size) * 0.7, 0, 1).round(2)  # ties on purpose
    return y, p, series


def test_hand_computed_metrics_at_a_threshold():
    # 3 nodules, 5 non-nodules; at 0.5: TP 2, FN 1, FP 1, TN 4
    y = [1, 1, 1, 0, 0, 0, 0, 0]
    p = [0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.4, 0.05]
    m = classification_metrics(y, p, threshold=0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 4)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(4 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))


def test_vectorised_ranking_matches_scikit_learn_with_ties_and_weights():
    y, p, _ = _toy()
    w = np.random.default_rng(0).integers(0, 3, size=(3, y.size))
    w[0] = 1
    auc, ap = _weighted_ranking(y, p, w)
    for k in range(3):
        assert auc[k] == pytest.approx(roc_auc_score(y, p, sample_weight=w[k]))
        assert ap[k] == pytest.approx(average_precision_score(y, p, sample_weight=w[k]))


def test_bootstrap_resamples_series_not_candidates():
    y, p, s = _toy()
    table = bootstrap_metrics(y, p, s, threshold=0.5, n_resamples=300, seed=3)
    # copying every candidate five times inside its series changes nothing: the unit is a series
    copied = bootstrap_metrics(
        np.repeat(y, 5), np.repeat(p, 5), np.repeat(s, 5), threshold=0.5, n_resamples=300, seed=3
    )
    np.testing.assert_allclose(table.to_numpy(), copied.to_numpy())
    assert (table["ci_low"] <= table["value"] + 1e-12).all()
    assert (table["value"] <= table["ci_high"] + 1e-12).all()
    assert table.loc["recall", "ci_high"] > table.loc["recall", "ci_low"]


def test_bootstrap_is_seeded():
    y, p, s = _toy()
    a = bootstrap_metrics(y, p, s, n_resamples=100, seed=7)
    b = bootstrap_metrics(y, p, s, n_resamples=100, seed=7)
    c = bootstrap_metrics(y, p, s, n_resamples=100, seed=8)
    assert a.equals(b)
    assert not a.equals(c)
    assert a.attrs["n_resamples"] == 100


def test_paper_table_prints_the_class_balance():
    y = np.r_[np.ones(4, int), np.zeros(2000, int)]
    p = np.r_[np.full(4, 0.9), np.linspace(0, 0.6, 2000)]
    s = np.arange(y.size) % 10
    text = format_table(bootstrap_metrics(y, p, s, n_resamples=50))
    assert "class balance 1:500" in text
    assert text.startswith("2004 candidates in 10 series: 4 positive (on a nodule), 2000 negative")
    assert "accuracy" in text and "%" in text
    assert class_balance(3, 4) == "1:1.3"


def test_choose_threshold_targets():
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.2, 0.3, 0.85, 0.4, 0.6, 0.8, 0.9]
    assert choose_threshold(y, p, target_recall=0.75) == 0.6
    assert choose_threshold(y, p, target_precision=0.75) == 0.4  # precision 4/5, recall 1
    assert choose_threshold(y, p, target_precision=1.0) == 0.9
    with pytest.raises(ValueError, match="not both"):
        choose_threshold(y, p, target_recall=0.5, target_precision=0.5)


def test_training_and_evaluation_agree_on_size_band_edges():
    from nodulekit.train.metrics import recall_by_size

    edges = np.array([5.99, 6.0, 9.99, 10.0, 19.99, 20.0])
    bands = size_band(edges).tolist()
    assert bands == ["<6 mm", "6-10 mm", "6-10 mm", "10-20 mm", "10-20 mm", ">=20 mm"]
    r = recall_by_size(np.ones(6, int), np.ones(6), edges, 0.5)
    counts = (r["positives_lt6mm"], r["positives_6to10mm"], r["positives_gt10mm"])
    assert counts == (bands.count("<6 mm"), bands.count("6-10 mm"), 3)  # 10.0 is not 6-10


def test_size_bands_and_per_band_metrics():
    assert size_band([5.9, 6, 9.99, 10, 20, 20.1, -1]).tolist() == [
        "<6 mm",
        "6-10 mm",
        "6-10 mm",
        "10-20 mm",
        ">=20 mm",  # half-open [low, high): 20.0 opens the last band
        ">=20 mm",
        "",
    ]
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.8, 0.1, 0.3, 0.5, 0.4])
    groups = size_band([4.0, 4.5, 25.0, np.nan, np.nan, np.nan, np.nan])
    table = metrics_by_group(y, p, np.arange(7), groups, n_resamples=20)
    assert table["group"].tolist() == ["<6 mm", ">=20 mm"]
    small = table.set_index("group").loc["<6 mm"]
    assert small["positive_candidates"] == 2 and small["recall"] == 0.5
    assert "nodules" not in table  # positive candidates: LUNA16 has several per nodule
    assert small["auc"] == pytest.approx(
        roc_auc_score([1, 1, 0, 0, 0, 0], [0.9, 0.2, 0.1, 0.3, 0.5, 0.4])
    )


def test_the_evaluate_package_exports_detection():
    import nodulekit.evaluate as evaluate
    from nodulekit.evaluate._froc import froc_by_group
    from nodulekit.evaluate.detect_all import detect_dataset

    for name in ("detect_scan", "candidate_points", "detect_dataset", "froc_by_group"):
        assert name in evaluate.__all__ and name in dir(evaluate)
    assert sorted(evaluate.__all__) == sorted(evaluate._LAZY)
    assert evaluate.detect_dataset is detect_dataset
    assert evaluate.froc_by_group is froc_by_group


def test_bootstrap_says_how_many_resamples_held_no_positive():
    # three series, "c" without a positive candidate: a resample of only "c" has no recall;
    # it is drawn with P = (1/3)^3 = 1/27, about 7 of 200 (0 or 25+ is vanishingly unlikely)
    y = np.array([1, 0, 1, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.4, 0.6, 0.7, 0.1])
    s = np.array(["a", "a", "b", "b", "c", "c"])
    table = bootstrap_metrics(y, p, s, threshold=0.5, n_resamples=200, seed=0)
    n = table.attrs["resamples_without_positives"]
    assert 0 < n < 25
    assert np.isfinite(table.loc["recall", ["ci_low", "ci_high"]].to_numpy(float)).all()
    assert f"{n} without a positive candidate, left out of recall" in format_table(table)


def test_no_resamples_gives_the_values_without_intervals():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.2, 0.4, 0.6])
    table = bootstrap_metrics(y, p, ["a", "a", "b", "b"], threshold=0.5, n_resamples=0)
    assert table.loc["recall", "value"] == 0.5 and table.loc["precision", "value"] == 0.5
    assert table[["ci_low", "ci_high"]].isna().all().all()
    assert table.attrs["n_resamples"] == 0
