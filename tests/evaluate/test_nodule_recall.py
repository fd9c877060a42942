"""Nodules found and false positives per scan at one threshold, against hand-computed cases."""

import numpy as np
import pytest

from nodulekit.evaluate._froc import froc
from nodulekit.evaluate._nodule_recall import nodule_recall
from tests.evaluate.test_froc import ANNOTATIONS, EXCLUDED, MARKS, A, B, C


def test_nodule_recall_and_false_positives_at_a_threshold():
    result = froc(MARKS, ANNOTATIONS, EXCLUDED, [A, B, C], n_resamples=0)
    # N1 (10 mm) best mark 0.9, N2 (6 mm) missed, N3 (8 mm) best mark 0.3; false positives
    # 0.7, 0.6, 0.3, 0.3; the mark 0.8 on the excluded finding and the second mark 0.5 on N1
    # are not false positives.
    at = nodule_recall(result, 0.5, source="validation")
    assert (at.found, at.nodules, at.false_positives, at.scans) == (1, 3, 2, 3)
    assert at.fp_per_scan == pytest.approx(2 / 3)
    bands = at.table.set_index("band")
    assert bands.index.tolist() == ["< 6 mm", "6-10 mm", ">= 10 mm", "all"]
    assert bands["nodules"].tolist() == [0, 2, 1, 3]  # 6.0 mm is in 6-10 mm
    assert bands["found"].tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(bands["recall"], [np.nan, 0, 1, 1 / 3])
    assert bands.loc["all", "false_positives"] == 2
    assert at.summary() == (
        "at the validation threshold 0.500: 1/3 nodules found "
        "(6-10 mm 0/2, >= 10 mm 1/1), 0.67 false positives per scan (2 on 3 scans)"
    )
    low = nodule_recall(result, 0.3, source="given")
    assert (low.found, low.false_positives) == (2, 4)  # ties at the threshold count
    assert low.fp_per_scan == pytest.approx(4 / 3)
    assert low.summary().startswith("at threshold 0.300 (given): 2/3 nodules found")
    assert low.to_dict()["bands"][1] == {"band": "6-10 mm", "nodules": 2, "found": 1,
                                         "recall": 0.5}  # fmt: skip
