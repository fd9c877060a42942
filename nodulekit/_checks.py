"""One validator for the numbers every layer takes (below every layer, like ``errors``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from nodulekit.errors import GeometryError

__all__ = ["positive_int_triple", "positive_triple"]


def positive_triple(
    value: float | Sequence[float],
    name: str,
    *,
    axes: str = "x, y, z",
    unit: str = "mm",
    error: type[Exception] = GeometryError,
) -> tuple[float, float, float]:
    """Return ``value`` as 3 finite, strictly positive floats; one number is used for all three.

    Examples
    --------
    >>> positive_triple(2, "spacing_mm")
    (2.0, 2.0, 2.0)
    >>> positive_triple((1, 0, 1), "size_mm")
    Traceback (most recent call last):
    ...
    nodulekit.errors.GeometryError: size_mm must be one or 3 finite positive numbers (x, y, z) in mm, not (1, 0, 1)
    """
    try:
        numbers = [float(value)] * 3 if _is_scalar(value) else [float(v) for v in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 3 or not all(math.isfinite(v) and v > 0 for v in numbers):
        raise error(
            f"{name} must be one or 3 finite positive numbers ({axes}) in {unit}, not {value!r}"
        )
    return (numbers[0], numbers[1], numbers[2])


def positive_int_triple(
    value: int | Sequence[int],
    name: str,
    *,
    axes: str = "z, y, x",
    error: type[Exception] = GeometryError,
) -> tuple[int, int, int]:
    """Return ``value`` as 3 positive integers; one integer is used for all three.

    Examples
    --------
    >>> positive_int_triple(24, "shape_zyx")
    (24, 24, 24)
    """
    items = [value] * 3 if _is_scalar(value) else list(value)  # type: ignore[arg-type]
    if len(items) != 3 or not all(_is_positive_int(v) for v in items):
        raise error(f"{name} must be one or 3 positive integers ({axes}), not {value!r}")
    return (int(items[0]), int(items[1]), int(items[2]))


def _is_scalar(value: object) -> bool:
    return not isinstance(value, (str, bytes)) and not hasattr(value, "__len__")


def _is_positive_int(v: object) -> bool:
    if isinstance(v, bool):
        return False
    try:
        return float(v) == int(v) and int(v) > 0  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False
