"""The checks of notebook 03's hands-on exercises (a dataset's item, a model's forward, one
training step) say right for a right function, give a hint for each usual mistake, and never
print the code."""

from __future__ import annotations

import importlib.util
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.notebooks.runner import NOTEBOOKS


@pytest.fixture(scope="module")
def setup():
    spec = importlib.util.spec_from_file_location("_course_setup_03", NOTEBOOKS / "_setup.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
        return binary_cross_entropy(torch.sigmoid(model(x)), y.float()).item()

    def unwritten(model, optimizer, x, y): ...

    cases = [(right, "right", ""), (no_zero_grad, "hint", "zero_grad"),
             (no_step, "hint", "optimizer.step()"), (sigmoid_twice, "hint", "with_logits"),
             (loss_after_step, "hint", "before the step"), (unwritten, "unanswered", "")]  # fmt: skip
    for function, expected, words in cases:
        setup.check_training_step(function)
        out = capsys.readouterr().out
        assert verdict_of(out) == expected, (function.__name__, out)
        assert words in out, (function.__name__, out)
