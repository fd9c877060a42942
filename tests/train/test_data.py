"""CandidateDataset over a crop cache, and splits by series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nodulekit.train.data import CandidateDataset, luna16_folds, split_by_series


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


def test_luna16_ten_folds_cover_every_series_once_for_validation(fake_cache):
    index = fake_cache.index
    seen = []
    for fold in range(10):
        split = luna16_folds(index, fold)
        val_series = set(index["seriesuid"].iloc[split["val"]])
        assert not val_series & set(index["seriesuid"].iloc[split["train"]])
        seen += sorted(val_series)
    assert sorted(seen) == sorted(index["seriesuid"].unique())


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
