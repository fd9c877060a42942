"""CandidateDataset over a crop cache, and splits by series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nodulekit.train.data import CandidateDataset, split_by_series


def test_sample_is_normalised_crop_label_and_meta(fake_cache):
    ds = CandidateDataset(fake_cache, [5, 3])
    x, y, meta = ds[1]
    assert x.shape == (1, 16, 16, 16) and x.dtype == torch.float32
    expected = np.clip((fake_cache.crops[3].astype(np.float32) + 1000) / 1400, 0, 1)
    np.testing.assert_allclose(x[0].numpy(), expected, rtol=0, atol=1e-6)
    assert y == int(fake_cache.index["class"].iloc[3]) == 1
    assert meta == {"seriesuid": "1.2.3.0", "center_xyz_mm": (3.0, 0.0, -3.0), "index": 3}
    assert len(ds) == 2
    assert ds.labels.tolist() == [0, 1]


def test_all_rows_by_default_and_bad_rows_refused(fake_cache):
    assert len(CandidateDataset(fake_cache)) == len(fake_cache.index)
    with pytest.raises(ValueError, match=r"indices must be rows 0\.\.119"):
        CandidateDataset(fake_cache, [0, 120])


def test_batches_through_a_dataloader(fake_cache):
    loader = torch.utils.data.DataLoader(CandidateDataset(fake_cache), batch_size=4)
    x, y, meta = next(iter(loader))
    assert x.shape == (4, 1, 16, 16, 16)
    assert y.tolist() == [1, 0, 0, 1]
    assert list(meta["seriesuid"]) == ["1.2.3.0"] * 4


def test_augment_is_called_with_row_and_epoch(fake_cache):
    calls = []

    def spy(array, *, index, epoch):
        calls.append((index, epoch))
        return array

    ds = CandidateDataset(fake_cache, [7], augment=spy)
    ds.set_epoch(4)
    ds[0]
    assert calls == [(7, 4)]


def test_no_series_is_in_two_splits(fake_cache):
    index = fake_cache.index
    splits = split_by_series(index, val_subsets=(8,), test_subsets=(9,))
    series = {name: set(index["seriesuid"].iloc[rows]) for name, rows in splits.items()}
    assert series["val"] == {"1.2.3.8"} and series["test"] == {"1.2.3.9"}
    assert not series["train"] & series["val"]
    assert not series["train"] & series["test"]
    assert not series["val"] & series["test"]
    assert sum(len(r) for r in splits.values()) == len(index)


def test_a_series_in_two_subsets_is_refused():
    index = pd.DataFrame({"seriesuid": ["a", "a"], "subset": [0, 8]})
    with pytest.raises(ValueError, match="series a appears in more than one subset"):
        split_by_series(index)


def test_overlapping_val_and_test_subsets_are_refused(fake_cache):
    with pytest.raises(ValueError, match=r"share subsets \[8\]"):
        split_by_series(fake_cache.index, val_subsets=(8,), test_subsets=(8, 9))


def test_choose_splits_takes_the_last_subsets_on_disk_unless_told():
    from nodulekit.errors import NodulekitError
    from nodulekit.train import choose_splits

    assert choose_splits(range(10)) == ((8,), (9,))
    assert choose_splits([0, 1, 2, 3]) == ((2,), (3,))
    assert choose_splits([0, 1]) == ((1,), ())
    assert choose_splits([5], (5,), ()) == ((5,), ())
    assert choose_splits([0, 1, 2], None, ()) == ((1,), ())
    with pytest.raises(
        NodulekitError, match=r"only subsets \[0\] are on disk: download two or more"
    ):
        choose_splits([0])


def test_default_splits_are_the_last_subsets_that_hold_nodules():
    from nodulekit.train import choose_splits

    every = range(10)
    assert choose_splits(every, nodule_subsets=every) == ((8,), (9,))  # full LUNA16
    # subsets 7 and 9 hold no nodule: validation 6, test 8 (7 and 9 train)
    assert choose_splits(every, nodule_subsets=[0, 1, 2, 3, 4, 5, 6, 8]) == ((6,), (8,))
    # two subsets with nodules: the last validates, the other trains, no test split
    assert choose_splits(every, nodule_subsets=[2, 5]) == ((5,), ())
    assert choose_splits(every, (3,), (4,), nodule_subsets=[3, 4, 5]) == ((3,), (4,))  # as told
    assert choose_splits([0, 1, 2], None, (), nodule_subsets=[0, 1, 2]) == ((1,), ())


def test_a_validation_split_without_a_nodule_is_refused_naming_the_fix():
    from nodulekit.errors import NodulekitError
    from nodulekit.train import choose_splits

    with pytest.raises(NodulekitError) as caught:
        choose_splits(range(10), (9,), (), nodule_subsets=[0, 1, 2, 8])
    message = str(caught.value)
    assert "validation subsets [9] hold no nodule (no candidate of class 1)" in message
    assert "--val-subsets among the subsets that hold nodules: [0, 1, 2, 8]" in message
    with pytest.raises(NodulekitError, match=r"only subsets \[4\] of \[0, 1, 2, 3, 4\] hold"):
        choose_splits(range(5), nodule_subsets=[4])  # training or validation would have none
    with pytest.raises(NodulekitError, match=r"no subset of \[0, 1, 2\] holds a nodule"):
        choose_splits(range(3), nodule_subsets=[])


def test_subsets_with_nodules_from_a_cache_index_or_candidates_and_scans():
    from nodulekit.train.data import subsets_with_nodules

    index = pd.DataFrame({"seriesuid": list("abcd"), "subset": [0, 1, 1, 3], "class": [1, 0, 1, 0]})
    assert subsets_with_nodules(index) == (0, 1)
    candidates = index.drop(columns="subset")
    scans = pd.DataFrame({"seriesuid": list("abc"), "subset": [4, 5, 6]})  # d is not on disk
    assert subsets_with_nodules(candidates, scans) == (4, 6)
