"""The LUNA16 FROC pinned against hand-computed cases and the script's loop method."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodulekit.errors import TableError
from nodulekit.evaluate._froc import froc
from nodulekit.evaluate.predictions import read_predictions

A, B, C = "1.2.840.1", "1.2.840.2", "1.2.840.3"  # C: a scan with no marks and no nodules


def _table(rows, last):
    return pd.DataFrame(rows, columns=["seriesuid", "coordX", "coordY", "coordZ", last])


ANNOTATIONS = _table(
    [
        (A, 0.0, 0.0, 0.0, 10.0),  # N1: two marks on it
        (A, 100.0, 0.0, 0.0, 6.0),  # N2: a mark exactly on its radius only -> missed
        (B, 0.0, 0.0, 0.0, 8.0),  # N3: found with probability 0.3 (tied with a FP)
    ],
    "diameter_mm",
)
EXCLUDED = _table([(A, 50.0, 0.0, 0.0, -1.0)], "diameter_mm")  # -1: counts as 10 mm
MARKS = _table(
    [
        (A, 1.0, 0.0, 0.0, 0.9),  # N1: the mark that counts
        (A, 0.0, 2.0, 0.0, 0.5),  # N1 again: ignored
        (A, 54.9, 0.0, 0.0, 0.8),  # inside the excluded finding (4.9 < 5): ignored
        (A, 100.0, 3.0, 0.0, 0.7),  # exactly on N2's radius (3 mm): not a hit -> FP
        (A, 200.0, 0.0, 0.0, 0.3),  # FP, tied with N3's mark
        (B, 0.0, 0.0, 4.0, 0.6),  # exactly on N3's radius -> FP
        (B, 0.0, 1.0, 0.0, 0.3),  # N3's mark
        (B, 300.0, 0.0, 0.0, 0.3),  # FP, tied
    ],
    "probability",
)


def test_hand_computed_froc_and_cpm():
    result = froc(MARKS, ANNOTATIONS, EXCLUDED, [A, B, C], n_resamples=0)
    # FROC samples: nodules 0.9, 0.3 (N2 missed); FPs 0.7, 0.6, 0.3, 0.3 on 3 scans.
    # Curve (FP/scan, sensitivity): (0,0) (0,1/3) [0.7 dropped as collinear] (2/3,1/3) (4/3,2/3):
    # the tie at 0.3 adds a nodule and two FPs in one step, so at 1 FP/scan the sensitivity is
    # halfway, 1/2.
    expected = [1 / 3, 1 / 3, 1 / 3, 1 / 2, 2 / 3, 2 / 3, 2 / 3]
    np.testing.assert_allclose(result.operating_points["sensitivity"], expected)
    assert result.cpm == pytest.approx(0.5)
    assert result.counts == {
        "scans": 3,
        "nodules": 3,
        "marks": 8,
        "tp": 2,
        "fn": 1,
        "fp": 4,
        "ignored_excluded": 1,
        "ignored_double": 1,
    }
    assert result.marks["outcome"].tolist() == [
        "tp", "double", "excluded", "fp", "fp", "fp", "tp", "fp",
    ]  # fmt: skip
    assert result.nodules["detected"].tolist() == [True, False, True]
    assert result.nodules["probability"].iloc[[0, 2]].tolist() == [0.9, 0.3]
    assert "CPM 0.500" in result.summary()


def test_scans_without_marks_count_in_the_divisor():
    two = froc(MARKS, ANNOTATIONS, EXCLUDED, [A, B], n_resamples=0)
    three = froc(MARKS, ANNOTATIONS, EXCLUDED, [A, B, C], n_resamples=0)
    assert two.fp_per_scan.max() == pytest.approx(4 / 2)
    assert three.fp_per_scan.max() == pytest.approx(4 / 3)


def test_marks_on_scans_not_evaluated_are_left_out():
    only_b = froc(MARKS, ANNOTATIONS, EXCLUDED, [B], n_resamples=0)
    assert only_b.counts["marks"] == 3 and only_b.counts["nodules"] == 1


def test_nearest_point_reading_of_the_leaderboard_calculator():
    # getCPM picks the first curve point of smallest distance, starting from max(fps) = 4/3:
    # at 4 and 8 FP/scan no point is nearer than 4/3, so it keeps 0 there; at 1 FP/scan 4/3 is
    # nearer than 2/3 by one rounding step of floating point, as in the calculator
    result = froc(MARKS, ANNOTATIONS, EXCLUDED, [A, B, C], n_resamples=0, method="nearest")
    np.testing.assert_allclose(
        result.operating_points["sensitivity"], [0, 0, 1 / 3, 2 / 3, 2 / 3, 0, 0]
    )


def test_max_marks_per_scan_keeps_the_most_probable():
    capped = froc(MARKS, ANNOTATIONS, EXCLUDED, [A, B, C], n_resamples=0, max_marks_per_scan=2)
    # A keeps 0.9 and 0.8 (above its third-highest 0.7); B keeps 0.6 (0.3 ties are dropped)
    assert capped.counts["marks"] == 3
    assert capped.counts["tp"] == 1


def _bench():
    path = Path(__file__).parents[2] / "benchmarks" / "bench_froc.py"
    spec = importlib.util.spec_from_file_location("bench_froc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_scripts_loop_method_on_random_submissions(seed):
    bench = _bench()
    marks, ann, exc, uids = bench.luna_scale_data(60, 6000, 80, 90, seed=seed)
    fps, sens, cpm = bench.script_froc(marks, ann, exc, uids)
    result = froc(marks, ann, exc, uids, n_resamples=0)
    np.testing.assert_allclose(result.fp_per_scan, fps)
    np.testing.assert_allclose(result.sensitivity, sens)
    assert result.cpm == pytest.approx(cpm, abs=1e-12)


def test_bootstrap_band_is_seeded_and_brackets_the_curve():
    bench = _bench()
    marks, ann, exc, uids = bench.luna_scale_data(80, 8000, 120, 100, seed=4)
    a = froc(marks, ann, exc, uids, n_resamples=200, seed=1)
    b = froc(marks, ann, exc, uids, n_resamples=200, seed=1)
    assert a.cpm_ci == b.cpm_ci
    assert a.cpm_ci[0] < a.cpm < a.cpm_ci[1]
    points = a.operating_points
    assert (points["ci_low"] <= points["sensitivity"] + 1e-9).all()
    assert (points["sensitivity"] <= points["ci_high"] + 1e-9).all()
    assert list(a.band.columns) == ["fp_per_scan", "mean", "low", "high"]


def test_one_resample_of_every_scan_once_is_the_point_estimate():
    from nodulekit.evaluate import _froc as froc_module

    bench = _bench()
    marks, ann, exc, uids = bench.luna_scale_data(30, 3000, 40, 30, seed=5)
    result = froc(marks, ann, exc, uids, n_resamples=0)
    original = froc_module.series_weights
    try:
        froc_module.series_weights = lambda n, r, seed=None: np.ones((r, n), np.int32)
        again = froc(marks, ann, exc, uids, n_resamples=2)
    finally:
        froc_module.series_weights = original
    np.testing.assert_allclose(
        again.operating_points["ci_low"], result.operating_points["sensitivity"]
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seriesuid,coordX,coordY,probability\n1.2.840.1,1,2,0.5\n", r"missing column\(s\) \['coordZ'\]"),
        ("seriesuid,coordX,coordY,coordZ,probability\n1.2.840.1,1,2,3,0.5\n1.2.840.1,1,abc,3,0.5\n",
         "column coordY must hold numbers; line 3 has 'abc'"),
        ("seriesuid,coordX,coordY,coordZ,probability\n1.2.840.1,1,2,3,\n",
         "column probability must hold numbers; line 2 has no number"),
        ("seriesuid,coordX,coordY,coordZ,probability\n1.2.840.1,1,2,3,0.5\n9.9.9,1,2,3,0.5\n",
         "seriesuid.*9.9.9 on line 3"),
    ],
)  # fmt: skip
def test_bad_predictions_name_file_line_and_column(tmp_path, text, message):
    path = tmp_path / "submission.csv"
    path.write_text(text)
    with pytest.raises(TableError, match=message) as info:
        read_predictions(path, known_uids=[A, B, C])
    assert str(path) in str(info.value)


def test_froc_per_size_band_ignores_the_other_bands_nodules():
    from nodulekit.evaluate._froc import froc_by_group
    from nodulekit.evaluate.metrics import size_band

    table = froc_by_group(
        MARKS, ANNOTATIONS, EXCLUDED, [A, B, C], size_band(ANNOTATIONS["diameter_mm"])
    )
    rows = table.set_index("group")
    # 6-10 mm: N2 (6 mm, missed) and N3 (8 mm, found at 0.3); N1's marks (10 mm) are ignored
    assert rows.loc["6-10 mm", "nodules"] == 2 and rows.loc["6-10 mm", "found"] == 1
    assert rows.loc["10-20 mm", "nodules"] == 1 and rows.loc["10-20 mm", "cpm"] == 1.0


def test_froc_per_band_skips_bands_without_nodules_in_the_scans_evaluated():
    from nodulekit.evaluate._froc import froc_by_group
    from nodulekit.evaluate.metrics import size_band

    table = froc_by_group(
        MARKS, ANNOTATIONS, EXCLUDED, [B, C], size_band(ANNOTATIONS["diameter_mm"])
    )
    assert table["group"].tolist() == ["6-10 mm"]


def test_bootstrap_of_three_scans_one_without_nodules_gives_a_finite_interval():
    # 3 scans, C without nodules: 1 resample in 27 draws C three times and holds no nodule.
    # Such a resample has no sensitivity; it is redrawn (conditional series bootstrap), so the
    # interval stays finite and every one of the 200 replicates counts.
    marks = _table(
        [
            (A, 0.0, 0.0, 0.0, 0.9),  # N1 found
            (A, 100.0, 0.0, 0.0, 0.4),  # N2 found
            (A, 200.0, 0.0, 0.0, 0.6),  # FP
            (B, 0.0, 0.0, 0.0, 0.3),  # N3 found
            (B, 300.0, 0.0, 0.0, 0.7),  # FP
            (C, 0.0, 0.0, 0.0, 0.8),  # FP on the nodule-free scan
            (C, 50.0, 0.0, 0.0, 0.2),  # FP
        ],
        "probability",
    )
    result = froc(marks, ANNOTATIONS, None, [A, B, C], n_resamples=200, seed=0)
    points = result.operating_points
    assert np.isfinite(result.cpm) and np.isfinite(result.cpm_ci).all()
    assert result.cpm_ci[0] <= result.cpm <= result.cpm_ci[1]
    assert np.isfinite(points[["ci_low", "ci_high"]].to_numpy()).all()
    assert (points["ci_low"] <= points["sensitivity"] + 1e-9).all()
    assert (points["sensitivity"] <= points["ci_high"] + 1e-9).all()
    assert np.isfinite(result.band[["mean", "low", "high"]].to_numpy()).all()
    boot = result.bootstrap
    assert boot["resamples"] == 200 and boot["drawn"] == 200 + boot["without_nodules"]
    assert boot["without_nodules"] > 0  # seed 0 draws some: the case this test is about
    assert f"{boot['without_nodules']} resamples without a nodule redrawn" in result.summary()
    again = froc(marks, ANNOTATIONS, None, [A, B, C], n_resamples=200, seed=0)
    assert again.cpm_ci == result.cpm_ci  # still seeded
