"""The scan browser's logic as plain functions: what a path holds, the series table, filters.

`ScanBrowser` only wires these to controls; a test or a script calls them directly. Every
function that meets bad input raises `ScanReadError` with the message the widget shows.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nodulekit.data.io import MHD_SUFFIXES, NIFTI_SUFFIXES, SUPPORTED, read_scan, uid_from_filename
from nodulekit.data.luna16 import is_luna16_root
from nodulekit.data.scan import Scan
from nodulekit.data.tables import ANNOTATION_COLUMNS, empty_table
from nodulekit.errors import ScanReadError

SCAN_SUFFIXES = (*MHD_SUFFIXES, *NIFTI_SUFFIXES)
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


@dataclass
class BrowserSource:
    """What a path opened as: a LUNA16 root, a DICOM folder, a folder of scans or one file."""

    kind: str  # "luna16" | "dicom" | "folder" | "file"
    path: Path
    description: str
    luna: Any = None  # nodulekit.data.Luna16 for kind "luna16"
    dicom_series: list = field(default_factory=list)  # DicomSeries for kind "dicom"
    files: dict[str, Path] = field(default_factory=dict)  # uid -> file for "folder"/"file"
    warnings: list[str] = field(default_factory=list)

    def nodules(self, seriesuid: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(annotations, excluded)`` of a series (empty tables outside LUNA16)."""
        if self.luna is None:
            return empty_table(ANNOTATION_COLUMNS), empty_table(ANNOTATION_COLUMNS)
        return self.luna.annotations_for(seriesuid), self.luna.excluded_for(seriesuid)

    def load(self, seriesuid: str) -> Scan:
        """Read one series of this source as a `Scan` (voxels and all)."""
        if self.kind == "luna16":
            return self.luna.load(seriesuid)
        if self.kind == "dicom":
            folder = next(s.folder for s in self.dicom_series if s.seriesuid == seriesuid)
            return read_scan(folder, seriesuid)
        return read_scan(self.files[seriesuid])


def short_uid(uid: str, n: int = 10) -> str:
    """The last ``n`` characters of a long UID, after an ellipsis: ``'…' + uid[-n:]``."""
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


def open_source(path: str | Path) -> BrowserSource:
    """Open ``path`` as a LUNA16 root, a folder of scan files, a DICOM folder or one scan file.

    Raises `ScanReadError` for a missing path, a folder with nothing readable, a DICOM folder
    without a CT series, or a LUNA16 root whose tables name no scan on disk.
    """
    from nodulekit.data.metaimage import check_header

    path = Path(path).expanduser()
    quick_look(path)  # existence, empty folder, unsupported file
    if path.is_file():
        if path.name.lower().endswith(".mhd"):
            check_header(path)
        uid = uid_from_filename(path)
        return BrowserSource("file", path, f"scan file: {path.name}", files={uid: path})
    if is_luna16_root(path):
        import warnings

        from nodulekit.data.luna16 import Luna16

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            luna = Luna16(path, warn_missing=False)
        n_subsets = luna.scans["subset"].nunique()
        text = f"LUNA16 root: {_plural(len(luna.scans), 'scan')} on disk in {_plural(n_subsets, 'subset')}"
        if luna.missing:
            text += f", {len(luna.missing)} named in the tables but missing"
        return BrowserSource("luna16", path, text, luna=luna)
    scans = _scan_files(path)
    if scans:
        files = {uid_from_filename(p): p for p in scans}
        return BrowserSource(
            "folder", path, f"folder of scans: {_plural(len(files), 'file')}", files=files
        )
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
    source = BrowserSource("dicom", path, text, dicom_series=series)
    tags = sorted({t for s in series for t in s.identifying_tags})
    if tags:
        source.warnings.append(
            f"these DICOM files carry patient-identifying tags ({', '.join(tags)}); {DEID_HINT}"
        )
    return source


def describe_path(path: str | Path) -> str:
    """One line saying what ``path`` holds, e.g. ``"LUNA16 root: 3 scans on disk in 2 subsets"``.

    Raises `ScanReadError` (the text the widget shows) when nothing readable is there.
    """
    return open_source(path).description


def _header_geometry(path: Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """``(shape_zyx, spacing_zyx_mm)`` from a file's header, without reading voxels."""
    if path.name.lower().endswith(".mhd"):
        from nodulekit.data.metaimage import read_header

        header = read_header(path)
        dims = [int(v) for v in header.get("DimSize", "0 0 0").split()]
        spacing = [
            float(v)
            for v in header.get("ElementSpacing", header.get("ElementSize", "1 1 1")).split()
        ]
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


def series_table(source: BrowserSource) -> pd.DataFrame:
    """One row per series: short UID, subset, shape, spacing and nodule counts (headers only).

    For MetaImage and NIfTI ``slice_thickness_mm`` is the z spacing; for DICOM it is the
    SliceThickness tag. ``subset`` is -1 outside LUNA16.
    """
    rows: list[dict[str, Any]] = []
    if source.kind == "luna16":
        for uid, subset, path in source.luna.scans[["seriesuid", "subset", "path"]].itertuples(
            index=False
        ):
            shape, spacing = _header_geometry(Path(path))
            rows.append(
                {"seriesuid": uid, "subset": int(subset), "modality": "CT", "description": "",
                 "shape_zyx": shape, "spacing_zyx_mm": spacing, "slice_thickness_mm": spacing[0],
                 "path": Path(path)}
            )  # fmt: skip
    elif source.kind == "dicom":
        rows = [_dicom_row(s) for s in source.dicom_series]
    else:
        for uid, path in source.files.items():
            shape, spacing = _header_geometry(path)
            rows.append(
                {"seriesuid": uid, "subset": -1, "modality": "", "description": "",
                 "shape_zyx": shape, "spacing_zyx_mm": spacing, "slice_thickness_mm": spacing[0],
                 "path": path}
            )  # fmt: skip
    table = pd.DataFrame(
        rows,
        columns=[
            c
            for c in SERIES_COLUMNS
            if c not in ("short_uid", "n_nodules", "n_excluded", "has_nodules")
        ],
    )
    if source.luna is not None:
        n_nod = source.luna.annotations["seriesuid"].value_counts()
        n_exc = source.luna.excluded["seriesuid"].value_counts()
    else:
        n_nod = n_exc = pd.Series(dtype=int)
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
    """Rows of `series_table` that pass every given filter, sorted by ``sort_by`` if given."""
    keep = np.ones(len(table), dtype=bool)
    if has_nodules is not None:
        keep &= table["has_nodules"].to_numpy() == bool(has_nodules)
    if min_thickness_mm is not None:
        keep &= table["slice_thickness_mm"].to_numpy() >= min_thickness_mm
    if max_thickness_mm is not None:
        keep &= table["slice_thickness_mm"].to_numpy() <= max_thickness_mm
    if subset is not None:
        keep &= table["subset"].to_numpy() == int(subset)
    if text:
        keep &= table["seriesuid"].str.contains(text.strip(), regex=False).to_numpy()
    out = table.loc[keep]
    if sort_by is not None:
        if sort_by not in table.columns:
            raise ValueError(
                f"sort_by must be a column of the series table {SERIES_COLUMNS}, not {sort_by!r}"
            )
        out = out.sort_values(sort_by, ascending=ascending, kind="stable")
    return out.reset_index(drop=True)


def format_series_row(row: pd.Series) -> str:
    """A fixed-width label for one row of the series table (for a Select list)."""
    shape = "×".join(str(n) for n in row["shape_zyx"])
    sz, sy, sx = row["spacing_zyx_mm"]
    subset = f"s{row['subset']}" if row["subset"] >= 0 else (row["modality"] or "-")
    return (
        f"{row['short_uid']:<12} {subset:<4} {shape:<13} {sx:4.2f}×{sy:4.2f}×{sz:4.2f} mm "
        f"{row['n_nodules']:>2} nod"
    )


def dataset_summary(source: BrowserSource, table: pd.DataFrame) -> dict[str, Any]:
    """Counts for the summary box: scans per subset, missing, nodules, diameters, thicknesses."""
    summary: dict[str, Any] = {"kind": source.kind, "description": source.description}
    summary["scans_on_disk"] = len(table)
    summary["scans_per_subset"] = table.loc[table["subset"] >= 0].groupby("subset").size().to_dict()
    if source.luna is not None:
        present = set(table["seriesuid"])
        ann = source.luna.annotations
        summary["scans_missing"] = len(source.luna.missing)
        summary["nodules"] = int(ann["seriesuid"].isin(present).sum())
        summary["excluded_findings"] = int(source.luna.excluded["seriesuid"].isin(present).sum())
        summary["diameters_mm"] = ann.loc[ann["seriesuid"].isin(present), "diameter_mm"].to_numpy(
            float
        )
    else:
        summary.update(scans_missing=0, nodules=0, excluded_findings=0, diameters_mm=np.zeros(0))
    thick = table["slice_thickness_mm"].dropna().to_numpy(float)
    summary["slice_thickness_mm"] = (
        {"min": float(thick.min()), "median": float(np.median(thick)), "max": float(thick.max())}
        if thick.size
        else {}
    )
    return summary


def summary_html(summary: dict[str, Any]) -> str:
    """The summary box as HTML (no scripts, no external assets)."""
    subsets = ", ".join(f"subset{k}: {v}" for k, v in sorted(summary["scans_per_subset"].items()))
    thick = summary["slice_thickness_mm"]
    thick_text = (
        f"{thick['min']:.2f} – {thick['max']:.2f} mm (median {thick['median']:.2f})"
        if thick
        else "n/a"
    )
    items = [
        f"<b>{html.escape(summary['description'])}</b>",
        f"scans on disk: {summary['scans_on_disk']}" + (f" ({subsets})" if subsets else ""),
        f"missing (named in the tables, not on disk): {summary['scans_missing']}",
        f"nodules: {summary['nodules']} · excluded findings: {summary['excluded_findings']}",
        f"slice thickness: {thick_text}",
    ]
    return "<div class='nk-summary'>" + "<br>".join(items) + "</div>"


def diameter_histogram_png(diameters_mm: np.ndarray, *, width_px: int = 320) -> bytes:
    """A small PNG bar chart of nodule diameters (3 mm bins), drawn with Pillow."""
    from PIL import Image, ImageDraw

    h = 110
    image = Image.new("RGB", (width_px, h), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    d = np.asarray(diameters_mm, float)
    d = d[d > 0]
    edges = np.arange(0, max(33.0, float(np.ceil(d.max() / 3) * 3 + 3) if d.size else 33.0), 3.0)
    counts, _ = np.histogram(d, bins=edges)
    top = max(int(counts.max()) if counts.size else 0, 1)
    bar_w = (width_px - 20) / len(counts)
    for i, c in enumerate(counts):
        x0 = 10 + i * bar_w
        y0 = h - 20 - (h - 40) * c / top
        draw.rectangle((x0 + 1, y0, x0 + bar_w - 1, h - 20), fill=(200, 70, 70))
    draw.line((10, h - 20, width_px - 10, h - 20), fill=(0, 0, 0))
    draw.text((10, h - 16), f"diameter (mm) 0 – {edges[-1]:.0f}, 3 mm bins", fill=(0, 0, 0))
    draw.text((10, 4), f"{d.size} nodules, tallest bar {top}", fill=(0, 0, 0))
    from nodulekit.viz.slices import to_png

    return to_png(np.asarray(image))
