"""The series of a data source: what a path holds, one row per series from headers, filters.

A LUNA16 root, a folder of DICOM series, a folder of scan files or one scan file opens as a
`SeriesSource` (`open_source`); `series_table` describes its series from their headers only
(no voxel is read); `filter_series` and `first_series` pick rows; `dataset_summary` counts.
A script, `nodulekit.widgets.ScanBrowser`, the app and the report call these same functions.
Every function that meets bad input raises `ScanReadError` with a message that says the fix.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nodulekit.data.io import MHD_SUFFIXES, NIFTI_SUFFIXES, SUPPORTED, read_scan, uid_from_filename
from nodulekit.data.luna16 import is_luna16_root
from nodulekit.data.scan import Scan
from nodulekit.data.tables import ANNOTATION_COLUMNS, empty_table, read_annotations
from nodulekit.errors import ScanReadError

SCAN_SUFFIXES = (*MHD_SUFFIXES, *NIFTI_SUFFIXES)
#: Columns of `series_table`, in order.
SERIES_COLUMNS = [
    "seriesuid",
    "short_uid",
    "subset",
    "modality",
    "description",
    "shape_zyx",
    "spacing_zyx_mm",
    "slice_thickness_mm",
    "n_nodules",
    "n_excluded",
    "has_nodules",
    "path",
]
DEID_HINT = "run `nodulekit deid IN OUT` to write a copy without them before sharing"
DEFAULT_CACHE_BYTES = 512 << 20  # 512 MiB: Binder gives a kernel about 2 GB


@dataclass
class SeriesSource:
    """What a path opened as: a LUNA16 root, a DICOM folder, a folder of scans or one file.

    ``annotations`` and ``excluded`` hold every row of the LUNA16 tables that apply (the root's
    own, or those of the LUNA16 root a single scan file sits in); empty outside LUNA16.
    """

    kind: str  # "luna16" | "dicom" | "folder" | "file"
    path: Path
    description: str
    luna: Any = None  # nodulekit.data.Luna16 for kind "luna16"
    dicom_series: list = field(default_factory=list)  # DicomSeries for kind "dicom"
    files: dict[str, Path] = field(default_factory=dict)  # uid -> file for "folder"/"file"
    warnings: list[str] = field(default_factory=list)
    annotations: pd.DataFrame = field(default_factory=lambda: empty_table(ANNOTATION_COLUMNS))
    excluded: pd.DataFrame = field(default_factory=lambda: empty_table(ANNOTATION_COLUMNS))

    def nodules(self, seriesuid: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(annotations, excluded)`` rows of one series (empty tables outside LUNA16)."""
        return tuple(  # type: ignore[return-value]
            t.loc[t["seriesuid"] == seriesuid].reset_index(drop=True)
            for t in (self.annotations, self.excluded)
        )

    def load(self, seriesuid: str) -> Scan:
        """Read one series of this source as a `Scan` (voxels and all)."""
        if self.kind == "luna16":
            return self.luna.load(seriesuid)
        if self.kind == "dicom":
            folder = next(s.folder for s in self.dicom_series if s.seriesuid == seriesuid)
            return read_scan(folder, seriesuid)
        return read_scan(self.files[seriesuid])


def short_uid(uid: str, n: int = 10) -> str:
    """The last ``n`` characters of a long UID, after an ellipsis: ``'…' + uid[-n:]``.

    >>> short_uid("1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192")
    '…9720603192'
    """
    return uid if len(uid) <= n + 1 else "…" + uid[-n:]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _scan_files(path: Path) -> list[Path]:
    return sorted(
        p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(SCAN_SUFFIXES)
    )


def quick_look(path: str | Path, *, max_entries: int = 2000) -> str:
    """A cheap guess of what ``path`` is, for validating a path while it is typed.

    Looks at names only (no file is opened, at most ``max_entries`` entries are listed); raises
    `ScanReadError` when the path does not exist or holds nothing a scan could be read from.
    """
    path = Path(path).expanduser()
    if not str(path).strip() or not path.exists():
        raise ScanReadError(
            f"{path}: no such file or folder; expected {SUPPORTED}, or a LUNA16 root"
        )
    if path.is_file():
        if path.name.lower().endswith(SCAN_SUFFIXES):
            return f"scan file: {path.name} (press Open to read it)"
        raise ScanReadError(f"{path}: unsupported file type; expected {SUPPORTED}")
    if is_luna16_root(path):
        subsets = sorted(
            p.name for p in path.iterdir() if p.is_dir() and p.name.startswith("subset")
        )
        return f"looks like a LUNA16 root ({', '.join(subsets) or 'no subset folders'}); press Open"
    scans = _scan_files(path)
    if scans:
        return f"folder with {_plural(len(scans), 'scan file')}; press Open"
    n_files = 0
    for _folder, _dirs, files in os.walk(path):
        n_files += len(files)
        if n_files >= max_entries:
            break
    if n_files == 0:
        raise ScanReadError(
            f"{path}: the folder is empty; point to a LUNA16 root, a folder of DICOM files or a "
            ".mhd/.nii.gz file"
        )
    more = "+" if n_files >= max_entries else ""
    return f"folder with {n_files}{more} files, maybe DICOM; press Open to search it"


def _open_file(path: Path) -> SeriesSource:
    """One scan file; the tables of the LUNA16 root it sits in, as `nodulekit info` finds them."""
    from nodulekit.data.info import find_luna16_root
    from nodulekit.data.metaimage import check_header

    if path.name.lower().endswith(".mhd"):
        check_header(path)
    uid = uid_from_filename(path)
    source = SeriesSource("file", path, f"scan file: {path.name}", files={uid: path})
    root = find_luna16_root(path)
    if root is not None:
        source.annotations = read_annotations(root / "annotations.csv")
        if (root / "annotations_excluded.csv").is_file():
            source.excluded = read_annotations(root / "annotations_excluded.csv")
        source.description += f" (LUNA16 tables of {root})"
    return source


def _open_luna16(path: Path) -> SeriesSource:
    from nodulekit.data.luna16 import Luna16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        luna = Luna16(path, warn_missing=False)
    n_subsets = luna.scans["subset"].nunique()
    text = (
        f"LUNA16 root: {_plural(len(luna.scans), 'scan')} on disk in {_plural(n_subsets, 'subset')}"
    )
    if luna.missing:
        text += f", {len(luna.missing)} named in the tables but missing"
    return SeriesSource(
        "luna16", path, text, luna=luna, annotations=luna.annotations, excluded=luna.excluded
    )


def _open_dicom(path: Path) -> SeriesSource:
    from nodulekit.data.dicom import find_dicom_series

    series = find_dicom_series(path)
    ct = [s for s in series if s.modality == "CT"]
    if not ct:
        found = "; ".join(
            f"{s.modality or '?'} {s.description!r} ({s.n_files} files)" for s in series
        )
        raise ScanReadError(
            f"{path}: no CT series among the {_plural(len(series), 'DICOM series')} found ({found}); "
            "nodulekit reads CT only (Modality CT): point to the folder of the CT series"
        )
    text = f"DICOM folder: {_plural(len(series), 'series')}, {len(ct)} CT"
    source = SeriesSource("dicom", path, text, dicom_series=series)
    tags = sorted({t for s in series for t in s.identifying_tags})
    if tags:
        source.warnings.append(
            f"these DICOM files carry patient-identifying tags ({', '.join(tags)}); {DEID_HINT}"
        )
    return source


def open_source(path: str | Path) -> SeriesSource:
    """Open ``path`` as a LUNA16 root, a folder of scan files, a DICOM folder or one scan file.

    A single scan file inside a LUNA16 root gets that root's tables (found with
    `nodulekit.data.info.find_luna16_root`, as `nodulekit info` finds them). Raises
    `ScanReadError` for a missing path, a folder with nothing readable, a DICOM folder
    without a CT series, or a LUNA16 root whose tables name no scan on disk.
    """
    path = Path(path).expanduser()
    quick_look(path)  # existence, empty folder, unsupported file
    if path.is_file():
        return _open_file(path)
    if is_luna16_root(path):
        return _open_luna16(path)
    scans = _scan_files(path)
    if scans:
        files = {uid_from_filename(p): p for p in scans}
        return SeriesSource(
            "folder", path, f"folder of scans: {_plural(len(files), 'file')}", files=files
        )
    return _open_dicom(path)


def describe_path(path: str | Path) -> str:
    """One line saying what ``path`` holds, e.g. ``"LUNA16 root: 3 scans on disk in 2 subsets"``.

    Raises `ScanReadError` (the text the widget shows) when nothing readable is there.
    """
    return open_source(path).description


def header_geometry(path: str | Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """``(shape_zyx, spacing_zyx_mm)`` of a scan file from its header, without reading voxels.

    MetaImage headers go through `nodulekit.data.metaimage.read_header` (the one parser);
    NIfTI through SimpleITK's ``ReadImageInformation``.
    """
    path = Path(path)
    if path.name.lower().endswith(MHD_SUFFIXES):
        from nodulekit.data.metaimage import read_header

        header = read_header(path)
        try:
            dims = [int(v) for v in header["DimSize"].split()]
            spacing_text = header.get("ElementSpacing", header.get("ElementSize", "1 1 1"))
            spacing = [float(v) for v in spacing_text.split()]
        except (KeyError, ValueError) as e:
            raise ScanReadError(
                f"{path}: the MetaImage header needs DimSize and ElementSpacing as numbers "
                f"({e}); re-extract the file from its archive"
            ) from e
        return tuple(dims[::-1]), tuple(spacing[::-1])
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return tuple(reader.GetSize()[::-1]), tuple(reader.GetSpacing()[::-1])


def _dicom_row(series: Any) -> dict[str, Any]:
    import SimpleITK as sitk

    shape, spacing, thickness = (series.n_files, 0, 0), (np.nan, np.nan, np.nan), np.nan
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(series.files[0])
        reader.ReadImageInformation()
        sx, sy = reader.GetSize()[:2]
        shape = (series.n_files, sy, sx)
        thickness = (
            float(reader.GetMetaData("0018|0050")) if reader.HasMetaDataKey("0018|0050") else np.nan
        )
        spacing = (thickness, reader.GetSpacing()[1], reader.GetSpacing()[0])
    except (RuntimeError, ValueError):
        pass
    return {
        "seriesuid": series.seriesuid,
        "subset": -1,
        "modality": series.modality,
        "description": series.description,
        "shape_zyx": shape,
        "spacing_zyx_mm": spacing,
        "slice_thickness_mm": thickness,
        "path": series.folder,
    }


def _file_row(uid: str, path: Path, subset: int, modality: str) -> dict[str, Any]:
    shape, spacing = header_geometry(path)
    return {"seriesuid": uid, "subset": subset, "modality": modality, "description": "",
            "shape_zyx": shape, "spacing_zyx_mm": spacing, "slice_thickness_mm": spacing[0],
            "path": Path(path)}  # fmt: skip


def series_table(source: SeriesSource) -> pd.DataFrame:
    """One row per series (`SERIES_COLUMNS`): shape, spacing and finding counts, headers only.

    For MetaImage and NIfTI ``slice_thickness_mm`` is the z spacing; for DICOM it is the
    SliceThickness tag (NaN when the files do not carry it). ``subset`` is -1 outside LUNA16.
    ``n_nodules`` counts rows of ``annotations.csv``; ``n_excluded`` of
    ``annotations_excluded.csv`` (non-nodules, nodules under 3 mm, nodules fewer readers marked).
    """
    if source.kind == "luna16":
        scans = source.luna.scans[["seriesuid", "subset", "path"]].itertuples(index=False)
        rows = [_file_row(uid, Path(p), int(subset), "CT") for uid, subset, p in scans]
    elif source.kind == "dicom":
        rows = [_dicom_row(s) for s in source.dicom_series]
    else:
        rows = [_file_row(uid, path, -1, "") for uid, path in source.files.items()]
    counted = ("short_uid", "n_nodules", "n_excluded", "has_nodules")
    table = pd.DataFrame(rows, columns=[c for c in SERIES_COLUMNS if c not in counted])
    n_nod = source.annotations["seriesuid"].value_counts()
    n_exc = source.excluded["seriesuid"].value_counts()
    table["short_uid"] = table["seriesuid"].map(short_uid)
    table["n_nodules"] = table["seriesuid"].map(n_nod).fillna(0).astype(int)
    table["n_excluded"] = table["seriesuid"].map(n_exc).fillna(0).astype(int)
    table["has_nodules"] = table["n_nodules"] > 0
    table["slice_thickness_mm"] = table["slice_thickness_mm"].astype(float)
    return table[SERIES_COLUMNS]


def filter_series(
    table: pd.DataFrame,
    *,
    has_nodules: bool | None = None,
    min_thickness_mm: float | None = None,
    max_thickness_mm: float | None = None,
    subset: int | None = None,
    text: str = "",
    sort_by: str | None = None,
    ascending: bool = True,
) -> pd.DataFrame:
    """Rows of `series_table` that pass every given filter, sorted by ``sort_by`` if given.

    A thickness bound keeps only series whose slice thickness is known to pass it: a series
    without one (a DICOM series with no SliceThickness tag) is dropped once ``min_thickness_mm``
    or ``max_thickness_mm`` is given, and kept when neither is (no thickness filter).
    ``text`` keeps UIDs that contain it. Rows keep their order unless ``sort_by`` is given
    (a stable sort, unknown values last).
    """
    keep = np.ones(len(table), dtype=bool)
    thickness = table["slice_thickness_mm"].to_numpy(float)
    if has_nodules is not None:
        keep &= table["has_nodules"].to_numpy() == bool(has_nodules)
    if min_thickness_mm is not None:
        keep &= thickness >= min_thickness_mm  # NaN compares False: dropped
    if max_thickness_mm is not None:
        keep &= thickness <= max_thickness_mm
    if subset is not None:
        keep &= table["subset"].to_numpy() == int(subset)
    if text.strip():
        keep &= table["seriesuid"].str.contains(text.strip(), regex=False).to_numpy()
    out = table.loc[keep]
    if sort_by is not None:
        if sort_by not in table.columns:
            raise ValueError(
                f"sort_by must be a column of the series table {SERIES_COLUMNS}, not {sort_by!r}"
            )
        out = out.sort_values(sort_by, ascending=ascending, kind="stable", na_position="last")
    return out.reset_index(drop=True)


def first_series(table: pd.DataFrame) -> str | None:
    """The series to show first: the first CT (if any is CT), preferring one with nodules.

    Follows the table's order (filter and sort it first); None for an empty table.
    """
    if table.empty:
        return None
    first = table
    if "modality" in table and (table["modality"] == "CT").any():
        first = table.loc[table["modality"] == "CT"]
    if first["has_nodules"].any():
        first = first.loc[first["has_nodules"]]
    return str(first["seriesuid"].iloc[0])


def format_series_row(row: pd.Series) -> str:
    """A fixed-width label for one row of the series table (for a list of series).

    Spacing is written x × y × z in mm; ``nod``/``exc`` count nodules and excluded findings.
    """
    shape = "×".join(str(n) for n in row["shape_zyx"])
    sz, sy, sx = row["spacing_zyx_mm"]
    subset = f"s{row['subset']}" if row["subset"] >= 0 else (row["modality"] or "-")
    return (
        f"{row['short_uid']:<12} {subset:<4} {shape:<13} {sx:4.2f}×{sy:4.2f}×{sz:4.2f} mm "
        f"{row['n_nodules']:>2} nod {row['n_excluded']:>2} exc"
    )


def dataset_summary(source: SeriesSource, table: pd.DataFrame) -> dict[str, Any]:
    """Counts of a source: scans per subset, missing, nodules, diameters, thicknesses.

    Findings are counted for the series of ``table`` only; ``diameters_mm`` are those of the
    nodules (``annotations.csv``), never of the excluded findings.
    """
    summary: dict[str, Any] = {"kind": source.kind, "description": source.description}
    summary["scans_on_disk"] = len(table)
    summary["scans_per_subset"] = table.loc[table["subset"] >= 0].groupby("subset").size().to_dict()
    summary["scans_missing"] = len(source.luna.missing) if source.luna is not None else 0
    present = set(table["seriesuid"])
    ann = source.annotations.loc[source.annotations["seriesuid"].isin(present)]
    summary["nodules"] = len(ann)
    summary["excluded_findings"] = int(source.excluded["seriesuid"].isin(present).sum())
    summary["diameters_mm"] = ann["diameter_mm"].to_numpy(float)
    thick = table["slice_thickness_mm"].dropna().to_numpy(float)
    summary["slice_thickness_mm"] = (
        {"min": float(thick.min()), "median": float(np.median(thick)), "max": float(thick.max())}
        if thick.size
        else {}
    )
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """`dataset_summary` as lines of plain text (the first is the source's description)."""
    subsets = ", ".join(f"subset{k}: {v}" for k, v in sorted(summary["scans_per_subset"].items()))
    thick = summary["slice_thickness_mm"]
    thick_text = (
        f"{thick['min']:.2f} – {thick['max']:.2f} mm (median {thick['median']:.2f})"
        if thick
        else "n/a"
    )
    return [
        summary["description"],
        f"scans on disk: {summary['scans_on_disk']}" + (f" ({subsets})" if subsets else ""),
        f"missing (named in the tables, not on disk): {summary['scans_missing']}",
        f"nodules: {summary['nodules']} · excluded findings: {summary['excluded_findings']}",
        f"slice thickness: {thick_text}",
    ]


class ScanCache:
    """A thread-safe LRU cache of scans bounded by the bytes of their voxels.

    The scan just put is always kept, even when it alone passes ``max_bytes``.

    Examples
    --------
    >>> cache = ScanCache(max_bytes=100)
    >>> cache.put("a", Scan(np.zeros((2, 3, 5), np.int16), (0, 0, 0), (1, 1, 1)))  # 60 bytes
    >>> cache.put("b", Scan(np.zeros((2, 3, 5), np.int16), (0, 0, 0), (1, 1, 1)))
    >>> list(cache), cache.nbytes
    (['b'], 60)
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, Scan] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes of voxels held now."""
        with self._lock:
            return sum(s.array.nbytes for s in self._items.values())

    def get(self, key: Hashable) -> Scan | None:
        """The cached scan (now the most recent) or None."""
        with self._lock:
            scan = self._items.get(key)
            if scan is not None:
                self._items.move_to_end(key)
            return scan

    def put(self, key: Hashable, scan: Scan) -> None:
        """Add a scan, dropping the least recently used ones past ``max_bytes``."""
        with self._lock:
            self._items[key] = scan
            self._items.move_to_end(key)
            total = sum(s.array.nbytes for s in self._items.values())
            while total > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                total -= dropped.array.nbytes

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __iter__(self) -> Iterator[Hashable]:
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
