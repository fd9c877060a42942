"""Augment: reproducible per (seed, epoch, index), shape-preserving, off for evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from nodulekit.train.augment import Augment
from nodulekit.train.data import CandidateDataset


@pytest.fixture
def crop() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(-700, 200, (12, 16, 16)).astype(np.float32)


def test_same_seed_epoch_index_same_result(crop):
    a = Augment(seed=1)(crop, index=4, epoch=2)
    b = Augment(seed=1)(crop, index=4, epoch=2)
    np.testing.assert_array_equal(a, b)
    assert a.shape == crop.shape and a.dtype == np.float32


@pytest.mark.parametrize("change", [{"index": 5}, {"epoch": 3}])
def test_other_epoch_or_index_other_result(crop, change):
    base = {"index": 4, "epoch": 2}
    a = Augment(seed=1)(crop, **base)
    b = Augment(seed=1)(crop, **{**base, **change})
    assert not np.array_equal(a, b)


def test_flips_and_rotations_alone_permute_voxels(crop):
    aug = Augment(seed=0, shift_vox=0, scale=(1, 1), noise_hu=0)
    out = aug(crop, index=1, epoch=0)
    np.testing.assert_array_equal(np.sort(out.ravel()), np.sort(crop.ravel()))


def test_everything_off_is_the_identity(crop):
    aug = Augment(flips=False, rot90=False, shift_vox=0, scale=(1, 1), noise_hu=0)
    np.testing.assert_array_equal(aug(crop, index=0, epoch=0), crop)


def test_shift_pads_with_air():
    crop = np.zeros((8, 8, 8), np.float32)
    aug = Augment(flips=False, rot90=False, shift_vox=3, scale=(1, 1), noise_hu=0)
    out = aug(crop, index=0, epoch=0)
    assert out.min() < -100  # air came in from outside


def test_input_not_modified(crop):
    before = crop.copy()
    Augment(seed=2)(crop, index=0, epoch=0)
    np.testing.assert_array_equal(crop, before)


def test_no_augmentation_for_evaluation(fake_cache):
    ds = CandidateDataset(fake_cache, [0, 1])
    ds.set_epoch(7)
    a, _, _ = ds[0]
    b, _, _ = CandidateDataset(fake_cache, [0, 1])[0]
    assert ds.augment is None
    assert (a == b).all()


def test_bad_options():
    with pytest.raises(ValueError, match="scale must be"):
        Augment(scale=(1.2, 0.9))
    with pytest.raises(ValueError, match="shift_vox and noise_hu must be >= 0"):
        Augment(noise_hu=-1)
