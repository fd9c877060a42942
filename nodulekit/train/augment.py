"""Augmentation of HU crops on the fly: flips, 90-degree in-plane rotations, small shifts,
scale, HU noise.

Seeded and reproducible: the transform applied to cache row ``index`` in epoch ``epoch`` depends
only on ``(seed, epoch, index)``, whichever DataLoader worker computes it. Evaluation uses no
augmentation (`CandidateDataset(..., augment=None)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# At import, not on first use: a DataLoader worker forked from a process that imported this
# module has ndimage already, instead of spending ~1 s importing it before its first batch of
# every epoch (benchmarks/bench_train.py measures the first batch both ways).
from scipy import ndimage

AIR_HU = -1000.0


@dataclass(frozen=True)
class Augment:
    """Random but reproducible transforms of a ``(D, H, W)`` HU crop.

    Parameters
    ----------
    seed : int
        Base seed.
    flips : bool
        Flip each of the z, y, x axes with probability 1/2.
    rot90 : bool
        Rotate by a random multiple of 90 degrees in the (y, x) plane (needs H == W).
    shift_vox : float
        Largest shift along each axis, in voxels (uniform in ``[-shift_vox, shift_vox]``).
    scale : (float, float)
        Range of the isotropic zoom factor; ``(1, 1)`` disables it.
    noise_hu : float
        Standard deviation of Gaussian noise added in HU (0 disables it).

    Examples
    --------
    >>> crop = np.zeros((8, 8, 8), np.float32)
    >>> aug = Augment(seed=1)
    >>> np.array_equal(aug(crop, index=3, epoch=2), aug(crop, index=3, epoch=2))
    True
    """

    seed: int = 0
    flips: bool = True
    rot90: bool = True
    shift_vox: float = 2.0
    scale: tuple[float, float] = (0.9, 1.1)
    noise_hu: float = 20.0

    def __post_init__(self) -> None:
        low, high = (float(v) for v in self.scale)
        if not 0 < low <= high:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, not {self.scale}")
        if self.shift_vox < 0 or self.noise_hu < 0:
            raise ValueError(
                f"shift_vox and noise_hu must be >= 0, not {self.shift_vox}, {self.noise_hu}"
            )

    def rng(self, *, index: int, epoch: int) -> np.random.Generator:
        """The generator for one (epoch, index) pair."""
        return np.random.default_rng([int(self.seed), int(epoch), int(index)])

    def __call__(self, array_hu: np.ndarray, *, index: int = 0, epoch: int = 0) -> np.ndarray:
        """Augment one crop; returns a new float32 array of the same shape."""
        rng = self.rng(index=index, epoch=epoch)
        out = np.asarray(array_hu, dtype=np.float32)
        if out.ndim != 3:
            raise ValueError(f"Augment expects a (D, H, W) crop, not shape {out.shape}")
        if self.flips:
            axes = tuple(int(a) for a in np.flatnonzero(rng.random(3) < 0.5))
            if axes:
                out = np.flip(out, axis=axes)
        if self.rot90 and out.shape[1] == out.shape[2]:
            out = np.rot90(out, k=int(rng.integers(4)), axes=(1, 2))
        zoom = float(rng.uniform(*self.scale))
        shift = rng.uniform(-self.shift_vox, self.shift_vox, size=3) if self.shift_vox else None
        if zoom != 1.0 or shift is not None:
            # output voxel o samples input at centre + (o - centre) / zoom - shift
            centre = (np.asarray(out.shape, dtype=float) - 1.0) / 2.0
            offset = centre - centre / zoom - (shift if shift is not None else 0.0)
            out = ndimage.affine_transform(
                np.ascontiguousarray(out),
                np.full(3, 1.0 / zoom),
                offset=offset,
                order=1,
                mode="constant",
                cval=AIR_HU,
                prefilter=False,
            )
        else:
            out = np.array(out, dtype=np.float32)
        if self.noise_hu > 0:
            out += rng.normal(0.0, self.noise_hu, size=out.shape).astype(np.float32)
        return np.ascontiguousarray(out, dtype=np.float32)
