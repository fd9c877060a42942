"""The LUNA16 layout on disk: ``subsetN/<seriesuid>.mhd`` + the CSV tables.

People often download one subset of ten; tables that name scans which are not on disk are
normal. `Luna16` says once how many are missing and works with what is there.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from nodulekit.data.io import read_scan
from nodulekit.data.scan import Scan
from nodulekit.data.tables import (
    ANNOTATION_COLUMNS,
    CANDIDATE_COLUMNS,
    check_known_uids,
    empty_table,
    read_annotations,
    read_candidates,
    read_seriesuids,
)
from nodulekit.errors import ScanReadError, UnknownSeriesError

SUBSET_PATTERN = re.compile(r"^subset(\d+)$")
CANDIDATE_FILES = (
    "candidates_V2.csv",
    "candidates_V2/candidates_V2.csv",
    "candidates.csv",
)
LUNG_MASK_DIR = "seg-lungs-LUNA16"


def is_luna16_root(path: str | Path) -> bool:
    """Whether ``path`` looks like a LUNA16 root: ``annotations.csv`` or a ``subsetN/`` folder."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / "annotations.csv").is_file():
        return True
    return any(p.is_dir() and SUBSET_PATTERN.match(p.name) for p in path.iterdir())


def find_luna16_root(path: str | Path) -> Path | None:
    """The LUNA16 root a scan file sits in (the folder holding ``annotations.csv``), if any.

    Looks in the scan's folder and the two above it (``ROOT/subsetN/UID.mhd``), next to the
    path as given, not the file a symbolic link points to: a ``ROOT/subset0/UID.mhd`` that
    links into shared storage belongs to ``ROOT``. Only when nothing is found there are the
    folders above the link's target tried. The one lookup for the CLI's ``info``, the scan
    browser and scripts.

    Examples
    --------
    >>> import tempfile
    >>> from nodulekit.data import make_synthetic_luna16
    >>> root = make_synthetic_luna16(tempfile.mkdtemp(), n_scans=1, size="tiny", progress=False)
    >>> find_luna16_root(next(root.glob("subset*/*.mhd"))) == root
    True
    """
    given = Path(os.path.abspath(Path(path).expanduser()))  # absolute, links kept
    for start in (given, given.resolve()):
        for folder in [start.parent, *start.parents][:3]:
            if (folder / "annotations.csv").is_file():
                return folder
    return None


class MissingScansWarning(UserWarning):
    """The tables name scans that are not on disk (normal when only some subsets are there)."""


class Luna16:
    """A LUNA16 data set root: scans on disk by subset, and the official tables.

    Parameters
    ----------
    root : path
        The folder holding ``subset0/`` ... ``subset9/`` (any of them) and the CSV files.
    warn_missing : bool, default True
        Warn once (`MissingScansWarning`) when the tables name scans that are not on disk.

    Examples
    --------
    >>> import tempfile
    >>> from nodulekit.data import make_synthetic_luna16
    >>> root = make_synthetic_luna16(tempfile.mkdtemp(), n_scans=2, size="tiny", progress=False)
    >>> luna = Luna16(root)
    >>> len(luna), sorted(luna.scans.columns)
    (2, ['path', 'seriesuid', 'subset'])
    """

    def __init__(self, root: str | Path, *, warn_missing: bool = True) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise ScanReadError(
                f"{self.root}: not a folder; a LUNA16 root holds subset0/ ... subset9/ and "
                "annotations.csv (make one with `nodulekit synth DIR` or `nodulekit download DIR`)"
            )
        self.scans = self._find_scans()
        has_tables = (self.root / "annotations.csv").is_file()
        if self.scans.empty and not has_tables:
            raise ScanReadError(
                f"{self.root}: not a LUNA16 root: no subset*/ folders with .mhd scans and no "
                "annotations.csv (make one with `nodulekit synth DIR` or "
                "`nodulekit download DIR`)"
            )
        for name in ("annotations", "excluded", "candidates"):
            check_known_uids(getattr(self, name), self.seriesuids, source=self._source(name))
        if self.scans.empty:
            raise ScanReadError(
                f"{self.root}: the tables name {len(self.seriesuids)} scans but none is on disk "
                "(no subset*/<seriesuid>.mhd); download a subset with "
                "`nodulekit download DIR --subsets 0`"
            )
        if warn_missing and self.missing:
            warnings.warn(
                f"{self.root}: {len(self.scans)} scan(s) on disk; {len(self.missing)} named in "
                "the tables are not (normal when only some subsets are downloaded)",
                MissingScansWarning,
                stacklevel=2,
            )

    # -- layout --------------------------------------------------------------------------
    def _find_scans(self) -> pd.DataFrame:
        rows = []
        for folder in sorted(self.root.iterdir()):
            match = SUBSET_PATTERN.match(folder.name)
            if not (match and folder.is_dir()):
                continue
            for mhd in sorted(folder.glob("*.mhd")):
                rows.append({"seriesuid": mhd.stem, "subset": int(match.group(1)), "path": mhd})
        table = pd.DataFrame(rows, columns=["seriesuid", "subset", "path"])
        duplicated = table["seriesuid"][table["seriesuid"].duplicated()]
        if not duplicated.empty:
            uid = duplicated.iloc[0]
            where = table.loc[table["seriesuid"] == uid, "path"].tolist()
            raise ScanReadError(
                f"{self.root}: series {uid} is on disk twice ({where[0]} and {where[1]}); "
                "remove one copy"
            )
        return table.astype({"subset": "int64"}).reset_index(drop=True)

    def _table_path(self, name: str) -> Path | None:
        if name == "annotations":
            path = self.root / "annotations.csv"
        elif name == "excluded":
            path = self.root / "annotations_excluded.csv"
        else:
            found = [self.root / f for f in CANDIDATE_FILES if (self.root / f).is_file()]
            path = found[0] if found else self.root / CANDIDATE_FILES[0]
        return path if path.is_file() else None

    def _source(self, name: str) -> str:
        return str(self._table_path(name) or name)

    # -- tables --------------------------------------------------------------------------
    @cached_property
    def annotations(self) -> pd.DataFrame:
        """Nodules ≥ 3 mm: seriesuid, coordX, coordY, coordZ (world mm), diameter_mm."""
        path = self._table_path("annotations")
        return read_annotations(path) if path else empty_table(ANNOTATION_COLUMNS)

    @cached_property
    def excluded(self) -> pd.DataFrame:
        """Findings that count neither as hit nor as false positive (diameter -1: non-nodule)."""
        path = self._table_path("excluded")
        return read_annotations(path) if path else empty_table(ANNOTATION_COLUMNS)

    @cached_property
    def candidates(self) -> pd.DataFrame:
        """Candidate points with ``class`` 1 (nodule) or 0; empty if no candidates file."""
        path = self._table_path("candidates")
        return read_candidates(path) if path else empty_table(CANDIDATE_COLUMNS)

    @cached_property
    def seriesuids(self) -> list[str]:
        """Every series of the data set: ``seriesuids.csv``, else the union of tables and disk."""
        path = self.root / "seriesuids.csv"
        if path.is_file():
            listed = read_seriesuids(path)
            on_disk = [u for u in self.scans["seriesuid"] if u not in set(listed)]
            if on_disk:
                raise ScanReadError(
                    f"{path}: does not list {len(on_disk)} scan(s) on disk, e.g. {on_disk[0]}; "
                    "the tables and the scans come from different data sets"
                )
            return listed
        named: dict[str, None] = dict.fromkeys(self.scans["seriesuid"])
        for table in (self.annotations, self.excluded, self.candidates):  # read once, cached
            named.update(dict.fromkeys(table["seriesuid"]))
        return list(named)

    @property
    def missing(self) -> list[str]:
        """Series named in the tables that are not on disk."""
        present = set(self.scans["seriesuid"])
        return [u for u in self.seriesuids if u not in present]

    # -- one series ----------------------------------------------------------------------
    def _check_uid(self, seriesuid: str) -> None:
        if seriesuid in set(self.scans["seriesuid"]):
            return
        if seriesuid in set(self.seriesuids):
            raise UnknownSeriesError(
                f"series {seriesuid} is named in the tables of {self.root} but is not on disk; "
                "download the subset that holds it (`nodulekit download DIR --subsets N`)"
            )
        close = difflib.get_close_matches(seriesuid, self.scans["seriesuid"].tolist(), n=3)
        raise UnknownSeriesError(
            f"unknown series UID {seriesuid!r} in {self.root}"
            + (f"; close: {', '.join(close)}" if close else "")
            + f"; {len(self.scans)} scans on disk (see Luna16.scans)"
        )

    def scan_path(self, seriesuid: str) -> Path:
        """The ``.mhd`` file of a series on disk."""
        self._check_uid(seriesuid)
        row = self.scans.loc[self.scans["seriesuid"] == seriesuid].iloc[0]
        return Path(row["path"])

    def subset_of(self, seriesuid: str) -> int:
        """The subset number that holds a series on disk."""
        self._check_uid(seriesuid)
        return int(self.scans.loc[self.scans["seriesuid"] == seriesuid, "subset"].iloc[0])

    def load(self, seriesuid: str) -> Scan:
        """Read one scan by its series UID."""
        return read_scan(self.scan_path(seriesuid))

    def lung_mask_path(self, seriesuid: str) -> Path | None:
        """LUNA16's own lung mask (``seg-lungs-LUNA16/<uid>.mhd``) if it is on disk."""
        path = self.root / LUNG_MASK_DIR / f"{seriesuid}.mhd"
        return path if path.is_file() else None

    def _rows_for(self, table: pd.DataFrame, seriesuid: str) -> pd.DataFrame:
        return table.loc[table["seriesuid"] == seriesuid].reset_index(drop=True)

    def annotations_for(self, seriesuid: str) -> pd.DataFrame:
        """The nodules of one series."""
        return self._rows_for(self.annotations, seriesuid)

    def excluded_for(self, seriesuid: str) -> pd.DataFrame:
        """The excluded findings of one series."""
        return self._rows_for(self.excluded, seriesuid)

    def candidates_for(self, seriesuid: str) -> pd.DataFrame:
        """The candidates of one series."""
        return self._rows_for(self.candidates, seriesuid)

    # -- overview ------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Counts a person wants first: scans per subset, missing, nodules, candidates."""
        present = set(self.scans["seriesuid"])
        ann, exc, cand = self.annotations, self.excluded, self.candidates
        on_disk = ann["seriesuid"].isin(present)
        return {
            "root": str(self.root),
            "scans_on_disk": len(self.scans),
            "scans_per_subset": self.scans.groupby("subset").size().to_dict(),
            "scans_missing": len(self.missing),
            "nodules": int(on_disk.sum()),
            "nodules_in_tables": len(ann),
            "excluded_findings": int(exc["seriesuid"].isin(present).sum()),
            "candidates": int(cand["seriesuid"].isin(present).sum()),
            "candidate_nodules": int(
                (cand["seriesuid"].isin(present) & (cand["class"] == 1)).sum()
            ),
            "has_lung_masks": (self.root / LUNG_MASK_DIR).is_dir(),
        }

    def __len__(self) -> int:
        return len(self.scans)

    def __repr__(self) -> str:
        subsets = sorted(self.scans["subset"].unique().tolist())
        return (
            f"Luna16(root={str(self.root)!r}, scans_on_disk={len(self.scans)}, "
            f"subsets={subsets}, missing={len(self.missing)}, nodules={len(self.annotations)})"
        )
