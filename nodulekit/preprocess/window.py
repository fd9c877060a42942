"""HU windows (level/width) for display, and the HU normalisation that models see.

Two different things, kept apart on purpose:

- a *display window* (`apply_window`) maps ``[level - width/2, level + width/2]`` HU to
  ``[0, 1]`` for looking at a slice; presets are in `WINDOWS`;
- the *model input convention* (`normalize_hu`) clips to ``[min_hu, max_hu]`` =
  ``[-1000, 400]`` HU by default and scales linearly to ``[0, 1]`` float32: air is 0, water
  (0 HU) is about 0.714, and anything denser than 400 HU (bone, contrast, metal) is 1.
"""

from __future__ import annotations

import numpy as np

#: Named display windows as ``(level_hu, width_hu)``.
WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "soft_tissue": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "nodule": (-300.0, 1200.0),
    "full": (-24.0, 2000.0),
}

#: The default model input range in HU (see `normalize_hu`).
MODEL_MIN_HU = -1000.0
MODEL_MAX_HU = 400.0


def window_bounds(
    *,
    level_hu: float | None = None,
    width_hu: float | None = None,
    preset: str | None = None,
) -> tuple[float, float]:
    """The ``(low_hu, high_hu)`` bounds of a window given by a preset or by level and width.

    Give either ``preset`` (a key of `WINDOWS`) or both ``level_hu`` and ``width_hu``; a
    ``level_hu`` or ``width_hu`` given with a preset overrides the preset's value.

    Examples
    --------
    >>> window_bounds(preset="lung")
    (-1350.0, 150.0)
    >>> window_bounds(level_hu=40, width_hu=400)
    (-160.0, 240.0)
    """
    if preset is not None:
        if preset not in WINDOWS:
            raise ValueError(
                f"preset must be one of {sorted(WINDOWS)}, not {preset!r}; or give level_hu "
                "and width_hu"
            )
        preset_level, preset_width = WINDOWS[preset]
        level_hu = preset_level if level_hu is None else level_hu
        width_hu = preset_width if width_hu is None else width_hu
    if level_hu is None or width_hu is None:
        raise ValueError(
            "give a window as preset=<name> (one of "
            f"{sorted(WINDOWS)}) or as both level_hu and width_hu; got level_hu={level_hu!r}, "
            f"width_hu={width_hu!r}"
        )
    level, width = float(level_hu), float(width_hu)
    if not np.isfinite(level) or not np.isfinite(width) or width <= 0:
        raise ValueError(
            f"width_hu must be a positive finite number and level_hu finite, not "
            f"level_hu={level_hu!r}, width_hu={width_hu!r}"
        )
    return (level - width / 2.0, level + width / 2.0)


def apply_window(
    array_hu: np.ndarray,
    *,
    level_hu: float | None = None,
    width_hu: float | None = None,
    preset: str | None = None,
) -> np.ndarray:
    """Map HU to display intensities in ``[0, 1]`` (float32) through a window.

    Values below ``level - width/2`` become 0, above ``level + width/2`` become 1, linear
    in between. Any array shape.

    Examples
    --------
    >>> apply_window(np.array([-1000, 40, 240, 1000]), preset="mediastinum").tolist()
    [0.0, 0.5, 1.0, 1.0]
    """
    low, high = window_bounds(level_hu=level_hu, width_hu=width_hu, preset=preset)
    out = (np.asarray(array_hu, dtype=np.float32) - np.float32(low)) / np.float32(high - low)
    return np.clip(out, 0.0, 1.0, out=out)


def normalize_hu(
    array: np.ndarray,
    *,
    min_hu: float = MODEL_MIN_HU,
    max_hu: float = MODEL_MAX_HU,
) -> np.ndarray:
    """Clip HU to ``[min_hu, max_hu]`` and scale linearly to ``[0, 1]`` float32.

    This is the model input convention of nodulekit: crops are stored in HU and normalised
    with the defaults ``min_hu=-1000``, ``max_hu=400`` just before they reach a network, so
    air is 0.0, water 0.714 and bone 1.0.

    Examples
    --------
    >>> normalize_hu(np.array([-2000, -1000, 0, 400, 3000])).round(3).tolist()
    [0.0, 0.0, 0.714, 1.0, 1.0]
    """
    lo, hi = float(min_hu), float(max_hu)
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        raise ValueError(f"max_hu must be greater than min_hu, not min_hu={lo}, max_hu={hi}")
    out = (np.asarray(array, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)
