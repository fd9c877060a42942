"""LUNA16's CSV tables, read into pandas with their own column names and checked row by row.

=============================  =================================================
table                          columns
=============================  =================================================
``annotations.csv``            seriesuid, coordX, coordY, coordZ, diameter_mm
``annotations_excluded.csv``   seriesuid, coordX, coordY, coordZ, diameter_mm
``candidates_V2.csv``          seriesuid, coordX, coordY, coordZ, class
``seriesuids.csv``             one UID per line, no header
=============================  =================================================

Coordinates are world (x, y, z) in mm, LPS. In ``annotations_excluded.csv`` a diameter of -1
marks a non-nodule or a nodule under 3 mm.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from nodulekit.errors import TableError

COORDS = ["coordX", "coordY", "coordZ"]
ANNOTATION_COLUMNS = ["seriesuid", *COORDS, "diameter_mm"]
CANDIDATE_COLUMNS = ["seriesuid", *COORDS, "class"]
PREDICTION_COLUMNS = ["seriesuid", *COORDS, "probability"]


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TableError(f"{path}: no such table")
    try:
        return pd.read_csv(path, dtype={"seriesuid": str}, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise TableError(f"{path}: not a readable CSV table ({e})") from e


def check_table(
    table: pd.DataFrame,
    columns: Iterable[str],
    *,
    source: str = "table",
    integer_columns: Iterable[str] = (),
) -> pd.DataFrame:
    """Check that ``table`` has ``columns`` with finite numbers in every numeric column.

    Returns the table with just those columns, ``seriesuid`` as stripped text and the other
    columns as float64 (``integer_columns`` as int64). Rows are reported as CSV line numbers
    (header = line 1).

    Examples
    --------
    >>> t = pd.DataFrame({"seriesuid": ["1.2"], "coordX": [1], "coordY": [2], "coordZ": ["x"],
    ...                   "diameter_mm": [5]})
    >>> check_table(t, ANNOTATION_COLUMNS, source="a.csv")
    Traceback (most recent call last):
    ...
    nodulekit.errors.TableError: a.csv: column coordZ must hold numbers; line 2 has 'x'...
    """
    columns = list(columns)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TableError(
            f"{source}: missing column(s) {missing}; found {list(table.columns)}. "
            f"A LUNA16 table of this kind has the header: {','.join(columns)}"
        )
    out = table[columns].copy()
    uids = out["seriesuid"]
    blank = uids.isna() | (uids.astype(str).str.strip() == "")
    if blank.any():
        lines = (blank[blank].index[:5] + 2).tolist()
        raise TableError(f"{source}: empty seriesuid on line(s) {lines}; every row needs one")
    out["seriesuid"] = uids.astype(str).str.strip()
    integer_columns = set(integer_columns)
    for column in columns[1:]:
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna() | ~values.abs().lt(float("inf"))
        if bad.any():
            first = bad[bad].index[0]
            raw = table[column].loc[first]
            shown = "no number (empty or NaN)" if pd.isna(raw) else repr(str(raw))
            lines = (bad[bad].index[:5] + 2).tolist()
            raise TableError(
                f"{source}: column {column} must hold numbers; line {lines[0]} has {shown}"
                + (f" (also lines {lines[1:]})" if len(lines) > 1 else "")
                + "; fix or remove those rows"
            )
        out[column] = values.astype("int64" if column in integer_columns else "float64")
    return out.reset_index(drop=True)


def read_annotations(path: str | Path) -> pd.DataFrame:
    """Read ``annotations.csv`` or ``annotations_excluded.csv`` (checked, float coordinates)."""
    path = Path(path)
    return check_table(_read_csv(path), ANNOTATION_COLUMNS, source=str(path))


def read_candidates(path: str | Path) -> pd.DataFrame:
    """Read ``candidates_V2.csv`` / ``candidates.csv``; ``class`` must be 0 or 1."""
    path = Path(path)
    table = check_table(
        _read_csv(path), CANDIDATE_COLUMNS, source=str(path), integer_columns=["class"]
    )
    bad = ~table["class"].isin([0, 1])
    if bad.any():
        line = int(bad[bad].index[0]) + 2
        raise TableError(
            f"{path}: column class must be 0 or 1; line {line} has {table['class'][line - 2]}"
        )
    return table


def read_seriesuids(path: str | Path) -> list[str]:
    """Read ``seriesuids.csv``: one UID per line, no header (a ``seriesuid`` header is allowed)."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such table")
    lines = [line.strip().strip(",") for line in path.read_text(encoding="utf-8").splitlines()]
    uids = [line for line in lines if line and line.lower() != "seriesuid"]
    return list(dict.fromkeys(uids))


def empty_table(columns: Iterable[str]) -> pd.DataFrame:
    """A table with LUNA16 ``columns`` and no rows (the right dtypes)."""
    columns = list(columns)
    data: dict[str, pd.Series] = {}
    for c in columns:
        if c == "seriesuid":
            data[c] = pd.Series([], dtype=str)
        elif c == "class":
            data[c] = pd.Series([], dtype="int64")
        else:
            data[c] = pd.Series([], dtype="float64")
    return pd.DataFrame(data)


def check_known_uids(table: pd.DataFrame, known: Iterable[str], *, source: str) -> None:
    """Raise `TableError` if ``table`` names a series UID outside ``known``, naming close ones."""
    known = set(known)
    unknown = sorted(set(table["seriesuid"]) - known)
    if not unknown:
        return
    first = unknown[0]
    line = int(table.index[table["seriesuid"] == first][0]) + 2
    close = difflib.get_close_matches(first, sorted(known), n=2, cutoff=0.8)
    raise TableError(
        f"{source}: {len(unknown)} seriesuid(s) not in seriesuids.csv, e.g. {first} on line "
        f"{line}"
        + (f" (close: {', '.join(close)})" if close else "")
        + "; is the table from another data set? fix the UID or add the series"
    )
