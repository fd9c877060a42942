"""The exercise checks in notebooks/_setup.py say right for the right answer, a hint otherwise,
and never print the answer."""

from __future__ import annotations

import importlib.util
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nodulekit.data import Scan
from tests.notebooks.runner import NOTEBOOKS


@pytest.fixture(scope="module")
def setup():
    spec = importlib.util.spec_from_file_location("_course_setup", NOTEBOOKS / "_setup.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def verdict(capsys) -> str:
    out = capsys.readouterr().out
    return "right" if out.startswith("✔") else "hint" if out.startswith("✘") else "unanswered"


@pytest.fixture
def luna():
    # 2 of 3 nodules are >= 10 mm; 2 of 8 candidates are nodules
    return SimpleNamespace(
        scans=pd.DataFrame({"seriesuid": ["a", "b", "c"]}),
        annotations=pd.DataFrame({"seriesuid": ["a", "a", "zz"], "diameter_mm": [4, 10, 12.5]}),
        candidates=pd.DataFrame({"class": [1, 0, 0, 0, 1, 0, 0, 0]}),
    )


@pytest.fixture
def scan():
    # origin (10, 20, 30) mm, spacing (0.5, 0.5, 2) mm (x, y, z); x axis flipped
    direction = (-1, 0, 0, 0, 1, 0, 0, 0, 1)
    return Scan(np.zeros((4, 5, 6), np.int16), origin=(10, 20, 30), spacing=(0.5, 0.5, 2),
                direction=direction)  # fmt: skip


def test_data_checks(setup, luna, capsys):
    cases = [
        (setup.check_large_nodules, 2, "right"),
        (setup.check_large_nodules, 1, "hint"),
        (setup.check_positive_fraction, 0.25, "right"),
        (setup.check_positive_fraction, 25, "hint"),
        (setup.check_positive_fraction, ..., "unanswered"),
    ]
    for check, answer, expected in cases:
        check(luna, answer)
        assert verdict(capsys) == expected, (check.__name__, answer)


def test_voxel_index_check(setup, scan, capsys):
    # world (8.9, 21.0, 34.0): x index (10 - 8.9) / 0.5 = 2.2 (x flipped), y 2.0, z 2.0
    point = (8.9, 21.0, 34.0)
    for answer, expected in [((2, 2, 2), "right"), ((2, 2, 2.2), "right"),
                             ((2, 2, 3), "hint"), ((1, 2, 2), "hint"), (None, "unanswered")]:  # fmt: skip
        setup.check_voxel_index(scan, point, answer)
        assert verdict(capsys) == expected, answer
    setup.check_voxel_index(scan, (11.1, 21.0, 34.0), (2, 2, 2))  # the direction's sign ignored
    assert verdict(capsys) == "hint"


def test_slice_step_check(setup, scan, capsys):
    setup.check_slice_step_mm(scan, 2.0)
    assert verdict(capsys) == "right"
    setup.check_slice_step_mm(scan, 0.5)
    assert verdict(capsys) == "hint"


def test_window_check(setup, capsys):
    for level, width, expected in [(-550, 700, "right"), (-600, 1500, "hint"),
                                   (40, 400, "hint"), (-500, 300, "hint")]:  # fmt: skip
        setup.check_ground_glass_window(level, width)
        assert verdict(capsys) == expected, (level, width)


def test_imbalance_and_accuracy_checks(setup, capsys):
    index = pd.DataFrame({"class": [1] * 2 + [0] * 18})
    setup.check_negatives_per_positive(index, 9)
    assert verdict(capsys) == "right"
    setup.check_negatives_per_positive(index, 0.1)
    assert verdict(capsys) == "hint"
    setup.check_always_no_accuracy(index["class"], 0.9)
    assert verdict(capsys) == "right"
    setup.check_always_no_accuracy(index["class"], 0.1)
    assert verdict(capsys) == "hint"
    setup.check_why_accuracy_misleads("C ")
    assert verdict(capsys) == "right"
    setup.check_why_accuracy_misleads("a")
    assert verdict(capsys) == "hint"


def test_a_hint_never_prints_the_answer(setup, luna, capsys):
    setup.check_large_nodules(luna, 7)
    assert "2" not in capsys.readouterr().out


# -- part two: 04 evaluation, 05 explanations -----------------------------------------------
def test_sensitivity_at_1fp_check(setup, capsys):
    points = pd.DataFrame(
        {"fp_per_scan": [0.125, 0.25, 0.5, 1, 2, 4, 8], "sensitivity": [0, .1, .2, .6, .7, .8, .9]}
    )  # fmt: skip
    froc = SimpleNamespace(operating_points=points)
    for answer, expected in [(0.6, "right"), (0.61, "right"), (0.7, "hint"), (60, "hint"),
                             (..., "unanswered")]:  # fmt: skip
        setup.check_sensitivity_at_1fp(froc, answer)
        out = capsys.readouterr().out
        assert ("✔" in out) == (expected == "right") and ("…" in out) == (expected == "unanswered")
        assert "0.6" not in out.replace("0.61", ""), "the check printed the answer"


def test_weakest_size_band_check(setup, capsys):
    bands = pd.DataFrame({"group": ["<6 mm", "6-10 mm", "10-20 mm"], "recall": [0.4, 0.2, 0.9]})
    for answer, expected in [("6-10 mm", "right"), ("6-10mm", "right"), ("<6 mm", "hint"),
                             ("small", "hint"), (None, "unanswered")]:  # fmt: skip
        setup.check_weakest_size_band(bands, answer)
        assert verdict(capsys) == expected, answer


def test_multiple_choice_checks(setup, capsys):
    for check, right in [(setup.check_threshold_source, "b"),
                         (setup.check_randomisation_meaning, "a")]:  # fmt: skip
        for answer in "abcd":
            check(answer)
            assert verdict(capsys) == ("right" if answer == right else "hint"), (check, answer)
        check(...)
        assert verdict(capsys) == "unanswered"


def test_least_sensitive_method_check(setup, capsys):
    card = pd.DataFrame({"method": ["gradcam", "saliency", "guided_gradcam"],
                         "sanity_correlation": [0.1, 0.3, 0.8]})  # fmt: skip
    for answer, expected in [("guided_gradcam", "right"), (" Guided_GradCAM", "right"),
                             ("gradcam", "hint"), ("lime", "hint"), (..., "unanswered")]:  # fmt: skip
        setup.check_least_sensitive_method(card, answer)
        assert verdict(capsys) == expected, answer


def test_pointing_game_check(setup, capsys):
    agreement = pd.DataFrame({"is_nodule": [True, True, True, False],
                              "hit": [1.0, 0.0, 1.0, np.nan]})  # fmt: skip
    for answer, expected in [(2 / 3, "right"), (0.667, "right"), (0.5, "hint"), (67, "hint")]:
        setup.check_pointing_game(agreement, answer)
        assert verdict(capsys) == expected, answer


def test_part_two_checks_never_print_the_expected_value(setup, capsys):
    bands = pd.DataFrame({"group": ["<6 mm", "6-10 mm"], "recall": [0.123, 0.456]})
    card = pd.DataFrame({"method": ["gradcam", "saliency"], "sanity_correlation": [0.1, 0.789]})
    agreement = pd.DataFrame({"is_nodule": [True] * 8, "hit": [1.0] * 3 + [0.0] * 5})  # 0.375
    points = pd.DataFrame({"fp_per_scan": [0.5, 1.0, 2.0], "sensitivity": [0.1, 0.345, 0.9]})
    for call, secret in [
        (lambda: setup.check_weakest_size_band(bands, "6-10 mm"), "<6 mm"),
        (lambda: setup.check_least_sensitive_method(card, "gradcam"), "0.789"),
        (lambda: setup.check_pointing_game(agreement, 0.9), "0.375"),
        (lambda: setup.check_sensitivity_at_1fp(SimpleNamespace(operating_points=points), 0.9),
         "0.345"),
    ]:  # fmt: skip
        call()
        out = capsys.readouterr().out
        assert out.startswith("✘") and secret not in out, out
