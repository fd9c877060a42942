"""BalancedSampler: the ratio, epochs, and disjoint shards per rank."""

from __future__ import annotations

import numpy as np
import pytest

from nodulekit.train.sampler import BalancedSampler

LABELS = np.array([1] * 10 + [0] * 990)  # about LUNA16's imbalance


def test_positive_fraction_is_kept():
    sampler = BalancedSampler(LABELS, positive_fraction=0.25, num_samples=400, seed=0)
    drawn = np.array(list(sampler))
    assert len(drawn) == len(sampler) == 400
    assert (LABELS[drawn] == 1).sum() == 100


def test_same_epoch_same_draw_other_epoch_other_draw():
    a = BalancedSampler(LABELS, num_samples=64, seed=3)
    b = BalancedSampler(LABELS, num_samples=64, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


def test_negatives_rotate_through_the_pool_over_epochs():
    sampler = BalancedSampler(LABELS, num_samples=200, seed=0)
    seen = set()
    for epoch in range(10):
        sampler.set_epoch(epoch)
        seen |= {i for i in sampler if LABELS[i] == 0}
    assert len(seen) == 990  # 10 epochs x 100 negatives cover all 990


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_draw_disjoint_candidates_and_split_the_epoch(world_size):
    shards = []
    for rank in range(world_size):
        sampler = BalancedSampler(LABELS, num_samples=300, seed=1, rank=rank, world_size=world_size)
        sampler.set_epoch(5)
        shards.append(set(sampler))
        assert len(sampler) == -(-300 // world_size)
    for i in range(world_size):
        for j in range(i + 1, world_size):
            assert not shards[i] & shards[j]
    assert all(any(LABELS[k] == 1 for k in shard) for shard in shards)


def test_too_few_positives_for_the_ranks_is_an_error():
    with pytest.raises(ValueError, match="needs at least world_size=2 positive"):
        BalancedSampler([1, 0, 0, 0], rank=0, world_size=2)


def test_bad_fraction_and_rank():
    with pytest.raises(ValueError, match=r"positive_fraction must be in \(0, 1\)"):
        BalancedSampler(LABELS, positive_fraction=1.0)
    with pytest.raises(ValueError, match=r"rank must be in 0\.\.world_size-1"):
        BalancedSampler(LABELS, rank=2, world_size=2)
