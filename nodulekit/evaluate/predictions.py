"""LUNA16 submission files: ``seriesuid,coordX,coordY,coordZ,probability``, read and checked.

Any system's predictions can be scored by nodulekit; the file is checked row by row so that a
bad row is named (file, CSV line, column) instead of silently shifting the FROC.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from nodulekit._files import atomic_write
from nodulekit.data.tables import PREDICTION_COLUMNS, check_known_uids, check_table
from nodulekit.errors import TableError


def check_predictions(
    table: pd.DataFrame,
    *,
    source: str = "predictions",
    known_uids: Iterable[str] | None = None,
    keep: Iterable[str] = (),
) -> pd.DataFrame:
    """Check a predictions table: LUNA16 columns, numbers everywhere, known series UIDs.

    Returns the five columns (float64 coordinates and probability), and the ``keep`` columns
    the table has (as numbers, NaN where not one: e.g. ``diameter_mm``). Raises `TableError` naming
    ``source``, the CSV line and the column of the first bad value.

    Examples
    --------
    >>> t = pd.DataFrame({"seriesuid": ["1.2"], "coordX": [1.0], "coordY": [2.0],
    ...                   "coordZ": [3.0], "probability": [float("nan")]})
    >>> check_predictions(t, source="p.csv")
    Traceback (most recent call last):
    ...
    nodulekit.errors.TableError: p.csv: column probability must hold numbers; line 2 has no number (empty or NaN)...
    """
    out = check_table(table, PREDICTION_COLUMNS, source=source)
    if known_uids is not None:
        check_known_uids(out, known_uids, source=source)
    for extra in keep:
        if extra in table and len(table) == len(out):
            out[extra] = pd.to_numeric(table[extra], errors="coerce").to_numpy()
    return out


def read_predictions(
    path: str | os.PathLike, *, known_uids: Iterable[str] | None = None, keep: Iterable[str] = ()
) -> pd.DataFrame:
    """Read and check a LUNA16 submission CSV (see `check_predictions`)."""
    path = Path(path)
    if not path.is_file():
        raise TableError(
            f"{path}: no such predictions file; it needs the header "
            f"{','.join(PREDICTION_COLUMNS)} (a LUNA16 submission)"
        )
    try:
        table = pd.read_csv(path, dtype={"seriesuid": str}, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise TableError(f"{path}: not a readable CSV table ({e})") from e
    return check_predictions(table, source=str(path), known_uids=known_uids, keep=keep)


def write_predictions(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the five LUNA16 columns (only those: no patient data rides along) atomically."""
    checked = check_predictions(table, source="predictions to write")
    with atomic_write(path, "w", permissions=None) as handle:
        checked.to_csv(handle, index=False, float_format="%.6f")
    return Path(path)
