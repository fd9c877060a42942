"""Nodule diameters drawn from LUNA16's own distribution (a shipped summary, no data read).

``LUNA16_DIAMETER_QUANTILES_MM`` are the 0, 5, 10, ..., 100 % quantiles of ``diameter_mm``
over the 1186 nodules of LUNA16's ``annotations.csv`` (888 scans, 601 of them with a nodule),
computed once with ``numpy.quantile(annotations["diameter_mm"], numpy.linspace(0, 1, 21))``
(linear interpolation) and rounded to 0.001 mm. Its median is 6.43 mm; 42 % of the nodules
are under 6 mm, 34 % at 6-10, 20 % at 10-20 and 4 % over 20 mm.

Diameters are drawn by inverse transform sampling of the piecewise-linear CDF through these
quantiles (uniform within each 5 % band), so a large sample of synthetic diameters has a
Kolmogorov-Smirnov distance to LUNA16's table of about 0.01-0.02 plus the sampling error.
"""

from __future__ import annotations

import numpy as np

LUNA16_DIAMETER_QUANTILES_MM = np.array(
    [
        3.253, 4.087, 4.396, 4.665, 4.896, 5.107, 5.315, 5.626, 5.896, 6.169, 6.434,
        6.868, 7.296, 7.922, 8.721, 9.696, 11.066, 12.855, 15.483, 18.952, 32.270,
    ]
)  # fmt: skip
LUNA16_DIAMETER_LEVELS = np.linspace(0.0, 1.0, len(LUNA16_DIAMETER_QUANTILES_MM))
LUNA16_NODULE_FREE_FRACTION = 287 / 888  # scans of LUNA16 without an annotations.csv row


def diameter_cdf(diameter_mm: np.ndarray | float) -> np.ndarray:
    """Share of LUNA16 nodules smaller than ``diameter_mm`` (the shipped summary's CDF)."""
    return np.interp(diameter_mm, LUNA16_DIAMETER_QUANTILES_MM, LUNA16_DIAMETER_LEVELS)


def sample_diameters(rng: np.random.Generator, n: int, *, max_mm: float = np.inf) -> np.ndarray:
    """``n`` nodule diameters (mm) from LUNA16's distribution, truncated at ``max_mm``.

    Truncation keeps the shape below ``max_mm`` (the draw is from the conditional
    distribution), so a small phantom that cannot hold a 30 mm nodule still gets LUNA16's
    mix of small and mid-sized ones.
    """
    top = float(diameter_cdf(max_mm)) if np.isfinite(max_mm) else 1.0
    if top <= 0.0:
        raise ValueError(
            f"max_mm={max_mm} is below LUNA16's smallest nodule "
            f"({LUNA16_DIAMETER_QUANTILES_MM[0]} mm)"
        )
    u = rng.uniform(0.0, top, n)
    return np.interp(u, LUNA16_DIAMETER_LEVELS, LUNA16_DIAMETER_QUANTILES_MM)
