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


# -- 03: hands-on deep learning (dataset, forward, training step) ----------------------------
@pytest.fixture
def crop_cache():
    rng = np.random.default_rng(0)
    index = pd.DataFrame({"seriesuid": ["a"] * 5, "coordX": 0.0, "coordY": 0.0, "coordZ": 0.0,
                          "class": [0, 1, 0, 0, 1], "subset": 0})  # fmt: skip
    return SimpleNamespace(
        index=index, crops=rng.integers(-1100, 600, (5, 8, 8, 8)).astype(np.int16)
    )


def _get_item_right(cache, row, augment=None):
    import torch

    from nodulekit.preprocess import normalize_hu

    hu = cache.crops[row].astype(np.float32)
    if augment is not None:
        hu = augment(hu, index=row, epoch=0)
    return torch.from_numpy(normalize_hu(hu))[None], int(cache.index["class"].iloc[row])


def _get_item_normalise_then_augment(cache, row, augment=None):
    import torch

    from nodulekit.preprocess import normalize_hu

    x = normalize_hu(cache.crops[row].astype(np.float32))
    x = augment(x, index=row, epoch=0) if augment is not None else x
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None], int(
        cache.index["class"].iloc[row]
    )


def test_get_item_check(setup, crop_cache, capsys):
    import torch

    def no_channel(cache, row, augment=None):
        x, y = _get_item_right(cache, row, augment)
        return x[0], y

    def raw_hu(cache, row, augment=None):
        return torch.from_numpy(cache.crops[row].astype(np.float32))[None], int(
            cache.index["class"].iloc[row]
        )

    def wrong_label(cache, row, augment=None):
        return _get_item_right(cache, row, augment)[0], 0

    def no_augment(cache, row, augment=None):
        return _get_item_right(cache, row, None)

    def unwritten(cache, row, augment=None): ...

    cases = [(_get_item_right, "right", ""), (no_channel, "hint", "channel axis"),
             (raw_hu, "hint", "normalise the HU"), (wrong_label, "hint", "`class` column"),
             (no_augment, "hint", "augment the crop in HU first"),
             (_get_item_normalise_then_augment, "hint", "augment the crop in HU first"),
             (unwritten, "unanswered", "")]  # fmt: skip
    for function, expected, words in cases:
        setup.check_get_item(function, crop_cache)
        out = capsys.readouterr().out
        assert verdict_of(out) == expected, function.__name__
        assert words in out, (function.__name__, out)
        assert "normalize_hu(hu)" not in out and "augment(hu, index=row, epoch=0)\n" not in out


def verdict_of(out: str) -> str:
    return "right" if out.startswith("✔") else "hint" if out.startswith("✘") else "unanswered"


def test_forward_check(setup, capsys):
    import torch

    def right(net, x):
        return net.head(net.block2(net.block1(x)).mean(dim=(2, 3, 4))).squeeze(1)

    def keeps_axis(net, x):
        return net.head(net.block2(net.block1(x)).mean(dim=(2, 3, 4)))

    def sigmoid(net, x):
        return torch.sigmoid(right(net, x))

    def max_pool(net, x):
        return net.head(net.block2(net.block1(x)).amax(dim=(2, 3, 4))).squeeze(1)

    def flattens(net, x):
        return net.block2(net.block1(x)).flatten(1)

    def unwritten(net, x): ...

    cases = [(right, "right"), (keeps_axis, "hint"), (sigmoid, "hint"), (max_pool, "hint"),
             (flattens, "hint"), (unwritten, "unanswered")]  # fmt: skip
    for function, expected in cases:
        setup.check_forward(function)
        out = capsys.readouterr().out
        assert verdict_of(out) == expected, (function.__name__, out)
    setup.check_forward(sigmoid)
    assert "not its sigmoid" in capsys.readouterr().out


def test_training_step_check(setup, capsys):
    import torch
    from torch.nn.functional import binary_cross_entropy, binary_cross_entropy_with_logits

    def right(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = binary_cross_entropy_with_logits(model(x), y.float())
        loss.backward()
        optimizer.step()
        return loss.item()

    def no_zero_grad(model, optimizer, x, y):
        loss = binary_cross_entropy_with_logits(model(x), y.float())
        loss.backward()
        optimizer.step()
        return loss.item()

    def no_step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = binary_cross_entropy_with_logits(model(x), y.float())
        loss.backward()
        return loss.item()

    def sigmoid_twice(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = binary_cross_entropy_with_logits(torch.sigmoid(model(x)), y.float())
        loss.backward()
        optimizer.step()
        return loss.item()

    def loss_after_step(model, optimizer, x, y):
        right(model, optimizer, x, y)
        return float(binary_cross_entropy(torch.sigmoid(model(x)), y.float()))

    def unwritten(model, optimizer, x, y): ...

    cases = [(right, "right", ""), (no_zero_grad, "hint", "zero_grad"),
             (no_step, "hint", "optimizer.step()"), (sigmoid_twice, "hint", "with_logits"),
             (loss_after_step, "hint", "before the step"), (unwritten, "unanswered", "")]  # fmt: skip
    for function, expected, words in cases:
        setup.check_training_step(function)
        out = capsys.readouterr().out
        assert verdict_of(out) == expected, (function.__name__, out)
        assert words in out, (function.__name__, out)
