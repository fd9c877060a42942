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


def _run(check, *args, capsys) -> tuple[str, str]:
    check(*args)
    out = capsys.readouterr().out
    return verdict_of(out), out


def verdict_of(out: str) -> str:
    return "right" if out.startswith("✔") else "hint" if out.startswith("✘") else "unanswered"


def test_data_checks(setup, luna, capsys):
    cases = [
        (setup.check_large_nodules, 2, "right"),
        (setup.check_large_nodules, 2.0, "right"),
        (setup.check_large_nodules, np.int64(2), "right"),
        (setup.check_large_nodules, 1, "hint"),
        (setup.check_large_nodules, 2.7, "hint"),  # not cut to 2
        (setup.check_large_nodules, True, "hint"),
        (setup.check_large_nodules, "2", "hint"),
        (setup.check_positive_fraction, 0.25, "right"),
        (setup.check_positive_fraction, 0.2504, "right"),
        (setup.check_positive_fraction, 25, "hint"),  # a percentage
        (setup.check_positive_fraction, 2 / 6, "hint"),  # positives / negatives
        (setup.check_positive_fraction, ..., "unanswered"),
    ]
    for check, answer, expected in cases:
        assert _run(check, luna, answer, capsys=capsys)[0] == expected, (check.__name__, answer)


def test_positive_fraction_tolerance_is_relative(setup, capsys):
    # the real candidates_V2: 1557 of 754975 (0.2 %); a fixed 0.005 would accept 0
    rare = SimpleNamespace(candidates=pd.DataFrame({"class": [1] * 2 + [0] * 998}))
    for answer, expected in [(0.002, "right"), (0.00201, "right"), (0.0, "hint"),
                             (0.004, "hint"), (0.001, "hint")]:  # fmt: skip
        assert _run(setup.check_positive_fraction, rare, answer, capsys=capsys)[0] == expected


def test_voxel_index_check_needs_rounding_and_direction(setup, scan, capsys):
    # world (8.65, 21, 34): x index (10 - 8.65) / 0.5 = 2.7 (x flipped), y 2, z 2 -> (2, 2, 3)
    point = (8.65, 21.0, 34.0)
    cases = [
        ((2, 2, 3), "right"),
        (np.array([2.0, 2.0, 3.0]), "right"),
        ([2, 2, 2.7], "hint"),  # not whole voxels
        ((2, 2, 2), "hint"),  # decimals cut off
        ((2, 2, -3), "hint"),  # direction ignored
        ((3, 2, 2), "hint"),  # (x, y, z) order
        ((2, 2), "hint"),
        ("2, 2, 3", "hint"),
        (None, "unanswered"),
    ]
    for answer, expected in cases:
        got, out = _run(setup.check_voxel_index, scan, point, answer, capsys=capsys)
        assert got == expected, answer
        if got == "hint":
            assert "(2, 2, 3)" not in out and "2, 3" not in out
    _, out = _run(setup.check_voxel_index, scan, point, (2, 2, 2), capsys=capsys)
    assert "round to the nearest voxel" in out
    _, out = _run(setup.check_voxel_index, scan, point, (2, 2, -3), capsys=capsys)
    assert "direction" in out


def test_voxel_index_exercise_flips_axes_and_needs_rounding(setup):
    from nodulekit.data import Scan

    rng = np.random.default_rng(0)
    plain = Scan(rng.integers(-1000, 100, (6, 7, 8)).astype(np.int16), origin=(10, 20, 30),
                 spacing=(0.5, 0.5, 2))  # fmt: skip
    for point in [(11.1, 21.1, 32.2), (11.4, 22.3, 37.9), (12.2, 21.9, 33.1)]:
        flipped = setup.voxel_index_exercise(plain, point)
        assert flipped.orientation != "LPS"
        assert np.sum(np.diag(flipped.direction_matrix) < 0) == 2  # two axes flipped
        voxel = flipped.world_to_voxel(point)
        assert np.any(np.rint(voxel) != np.floor(voxel)), point  # truncating is wrong
        naive = np.rint(((np.asarray(point) - flipped.origin) / flipped.spacing)[::-1])
        assert not np.array_equal(naive, np.rint(voxel))  # ignoring the direction is wrong
        # same patient: the voxel at the rounded index is the one the plain scan has there
        index = tuple(int(i) for i in np.rint(voxel))
        assert flipped.array[index] == plain.array[tuple(plain.world_to_index(point))]


def test_slice_step_check(setup, scan, capsys):
    for answer, expected in [(2.0, "right"), (2, "right"), (0.5, "hint"), (2.01, "hint"),
                             ("2", "hint"), (..., "unanswered")]:  # fmt: skip
        assert _run(setup.check_slice_step_mm, scan, answer, capsys=capsys)[0] == expected


def test_window_check_accepts_what_the_question_asks(setup, capsys):
    cases = [
        (-550, 700, "right"),  # -900..-200
        (-500, 1000, "right"),  # -1000..0: keeps solid tissue grey too
        (-525, 1400, "right"),  # -1225..175: a little narrower than the lung window
        (-600, 1500, "hint"),  # the lung window itself: no more contrast
        (-600, 1600, "hint"),
        (-525, 500, "hint"),  # -775..-275 holds ground glass, but the lung is pure black
        (-500, 300, "hint"),  # -650..-350 cuts ground glass off
        (40, 400, "hint"),  # the mediastinum window
        (-550, 0, "hint"),
        (-550, -700, "hint"),
        ("-550", 700, "hint"),
        (..., 700, "unanswered"),
    ]
    for level, width, expected in cases:
        got, out = _run(setup.check_ground_glass_window, level, width, capsys=capsys)
        assert got == expected, (level, width)
    _, out = _run(setup.check_ground_glass_window, -525, 500, capsys=capsys)
    assert "pure black" in out


def test_negatives_per_positive_check(setup, capsys):
    index = pd.DataFrame({"class": [1] * 2 + [0] * 18})
    for answer, expected in [(9, "right"), (9.1, "right"), (9.5, "hint"), (0.1, "hint"),
                             (18, "hint"), (20, "hint")]:  # fmt: skip
        assert _run(setup.check_negatives_per_positive, index, answer, capsys=capsys)[0] == (
            expected
        ), answer


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


def test_a_hint_never_prints_the_answer(setup, luna, scan, capsys):
    setup.check_large_nodules(luna, 7)
    assert "2" not in capsys.readouterr().out
    for wrong in (0.5, 0.1, 30.0):
        setup.check_positive_fraction(luna, wrong)
        assert "0.25" not in capsys.readouterr().out
        setup.check_slice_step_mm(scan, wrong)
        assert "2.0" not in capsys.readouterr().out


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


# -- 06: detection and report --------------------------------------------------------------
def test_mark_hit_check(setup, capsys):
    # distance² 17 mm² against a radius² of 16 mm²: outside; a 9 mm nodule: inside
    for diameter, answer, expected in [(8.0, False, "right"), (8.0, True, "hint"),
                                       (9.0, True, "right"), (9.0, np.False_, "hint"),
                                       (8.0, "no", "hint"), (8.0, ..., "unanswered")]:  # fmt: skip
        setup.check_mark_hit((10, 20, 30), diameter, (13, 22, 32), answer)
        assert verdict(capsys) == expected, (diameter, answer)


def test_never_claims_check(setup, capsys):
    for answer, expected in [("c", "right"), (" C ", "right"), ("a", "hint"), ("d", "hint"),
                             (None, "unanswered")]:  # fmt: skip
        setup.check_never_claims(answer)
        out = capsys.readouterr().out
        assert ("right" if out.startswith("✔") else "hint" if out.startswith("✘")
                else "unanswered") == expected, answer  # fmt: skip
        assert "normal" not in out, out  # the hint never quotes the answer


def test_marks_against_annotations_uses_the_radius(setup):
    annotations = pd.DataFrame({"coordX": [0.0, 50.0], "coordY": [0.0, 0.0],
                                "coordZ": [0.0, 0.0], "diameter_mm": [10.0, 6.0]})  # fmt: skip
    marks = pd.DataFrame({"coordX": [4.0, 1.0, 54.0], "coordY": [0.0, 0.0, 0.0],
                          "coordZ": [0.0, 0.0, 0.0], "probability": [0.9, 0.2, 0.7]})  # fmt: skip
    table = setup.marks_against_annotations(annotations, marks)
    assert table["hit"].tolist() == [True, False]  # 4 mm < 5 mm radius; 4 mm > 3 mm radius
    assert table["nearest_mark_mm"].tolist() == [1.0, 4.0]
    assert table["hit_probability"].iloc[0] == 0.9 and np.isnan(table["hit_probability"].iloc[1])
    empty = setup.marks_against_annotations(annotations, marks.iloc[:0])
    assert not empty["hit"].any() and empty["nearest_mark_mm"].isna().all()
