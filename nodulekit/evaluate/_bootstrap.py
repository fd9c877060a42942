"""Bootstrap over series: resampling weights and percentile intervals (vectorised).

A bootstrap replicate draws ``S`` series with replacement from the ``S`` series evaluated; a
series drawn twice counts twice. Each replicate is a row of integer weights, one per series, so
that every statistic is a weighted sum computed for all replicates at once.
"""

from __future__ import annotations

import numpy as np


def series_weights(n_series: int, n_resamples: int = 1000, *, seed: int | None = 0) -> np.ndarray:
    """``(n_resamples, n_series)`` int32 counts: how often each series is drawn per replicate
    (``n_resamples=0``: none, so every interval built on them is NaN: no bootstrap).

    Examples
    --------
    >>> w = series_weights(5, 3, seed=0)
    >>> w.shape, w.sum(axis=1).tolist()
    ((3, 5), [5, 5, 5])
    """
    if n_resamples < 0:
        raise ValueError(f"n_resamples must be 0 (no bootstrap) or more, not {n_resamples}")
    if n_series < 1:
        raise ValueError("the bootstrap needs at least one series; none was given")
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_series, size=(n_resamples, n_series))
    offsets = (np.arange(n_resamples) * n_series)[:, None]
    counts = np.bincount((drawn + offsets).ravel(), minlength=n_resamples * n_series)
    return counts.reshape(n_resamples, n_series).astype(np.int32)


def percentile_interval(
    values: np.ndarray, confidence: float = 0.95, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper percentile bounds of bootstrap ``values`` (NaN replicates ignored)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    tail = (1 - confidence) / 2 * 100
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
            low = np.nanpercentile(values, tail, axis=axis)
            high = np.nanpercentile(values, 100 - tail, axis=axis)
    return low, high
