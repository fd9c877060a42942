"""A sampler that balances nodules and non-nodules, sharded across ranks like
``DistributedSampler``.

Real LUNA16 has about one nodule per 500 candidates, so drawing uniformly gives batches
without a single nodule. `BalancedSampler` draws a fixed number of samples per epoch with a
chosen fraction of positives (positives repeat, negatives rotate through the whole pool over
epochs). With ``world_size > 1`` the candidate pools are first split between ranks, so the
ranks see *disjoint* candidates; each epoch is reseeded by `BalancedSampler.set_epoch`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def _draw(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` items of ``pool``: whole shuffled passes, then a shuffled partial pass."""
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    passes = -(-count // pool.size)
    return np.concatenate([rng.permutation(pool) for _ in range(passes)])[:count]


class BalancedSampler(Sampler[int]):
    """Epoch-seeded draw of positives and negatives at a fixed ratio, one shard per rank.

    Parameters
    ----------
    labels : sequence of int
        Label of each dataset item (1 positive, 0 negative).
    positive_fraction : float
        Share of positives in each epoch, in ``(0, 1)``; 0.5 balances the classes.
    num_samples : int, optional
        Samples per epoch summed over all ranks; default ``len(labels)``.
    seed : int
        Seed; the draw for epoch ``e`` depends only on ``(seed, e, rank, world_size)``.
    rank, world_size : int
        This process's shard, as in ``DistributedSampler``.

    Examples
    --------
    >>> sampler = BalancedSampler([0] * 8 + [1] * 2, num_samples=10, seed=0)
    >>> len(sampler), sum(i >= 8 for i in sampler)
    (10, 5)
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        *,
        positive_fraction: float = 0.5,
        num_samples: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        labels = np.asarray(labels).astype(np.int64).ravel()
        if not 0.0 < float(positive_fraction) < 1.0:
            raise ValueError(f"positive_fraction must be in (0, 1), not {positive_fraction}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"rank must be in 0..world_size-1, not rank={rank}, world_size={world_size}"
            )
        positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
        if positives.size < world_size or negatives.size < world_size:
            raise ValueError(
                f"BalancedSampler needs at least world_size={world_size} positive and negative "
                f"labels, got {positives.size} positives and {negatives.size} negatives; "
                "check the split (does the training subset hold any nodules?)"
            )
        if num_samples is None:
            num_samples = int(labels.size)
        if num_samples < world_size:
            raise ValueError(f"num_samples must be at least world_size, not {num_samples}")
        self.positive_fraction = float(positive_fraction)
        self.num_samples = int(num_samples)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0
        # split the pools between ranks once, with a seed shared by all ranks
        shared = np.random.default_rng([self.seed, 0x5A4D])
        self._positives = shared.permutation(positives)[rank::world_size]
        self._negatives = shared.permutation(negatives)[rank::world_size]

    def set_epoch(self, epoch: int) -> None:
        """Reseed for ``epoch`` (call before each epoch, as with ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-self.num_samples // self.world_size)

    def __iter__(self) -> Iterator[int]:
        n = len(self)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        n_pos = round(n * self.positive_fraction)
        n_pos = min(max(n_pos, 1), n - 1) if n > 1 else n_pos
        # negatives rotate through the pool across epochs instead of repeating the same few
        order = np.random.default_rng([self.seed, self.rank, 0x4E]).permutation(self._negatives)
        start = (self.epoch * (n - n_pos)) % order.size
        negatives = np.roll(order, -start)
        negatives = np.resize(negatives, n - n_pos)
        picked = np.concatenate([_draw(self._positives, n_pos, rng), negatives])
        return iter(rng.permutation(picked).tolist())
