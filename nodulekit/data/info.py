"""A plain-text description of a scan and the annotated findings that fall in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nodulekit.data.luna16 import find_luna16_root
from nodulekit.data.scan import Scan
from nodulekit.data.tables import read_annotations


def findings_in_scan(scan: Scan, table: pd.DataFrame) -> pd.DataFrame:
    """Rows of an annotation table for this scan, with voxel indices and an ``inside`` flag.

    Adds ``index_zyx`` (the nearest voxel, a tuple of 3 ints in array order) and ``inside``.

    Examples
    --------
    >>> scan = Scan(np.zeros((4, 5, 6), np.int16), (0, 0, 0), (1, 1, 2), seriesuid="1.2")
    >>> table = pd.DataFrame({"seriesuid": ["1.2", "9"], "coordX": [3.4, 0], "coordY": [1, 0],
    ...                       "coordZ": [4.2, 0], "diameter_mm": [5, 5]})
    >>> findings_in_scan(scan, table)[["index_zyx", "inside"]].to_dict("records")
    [{'index_zyx': (2, 1, 3), 'inside': True}]
    """
    rows = table.loc[table["seriesuid"] == scan.seriesuid].reset_index(drop=True)
    if rows.empty:
        return rows.assign(index_zyx=[], inside=[])
    xyz = rows[["coordX", "coordY", "coordZ"]].to_numpy(float)
    index = scan.world_to_index(xyz)
    inside = np.atleast_1d(scan.contains(scan.world_to_voxel(xyz)))
    return rows.assign(index_zyx=[tuple(int(v) for v in row) for row in index], inside=inside)


def describe_scan(
    scan: Scan,
    *,
    annotations: pd.DataFrame | None = None,
    excluded: pd.DataFrame | None = None,
) -> str:
    """Size, spacing, origin, direction, HU range and the findings that fall in the scan.

    Examples
    --------
    >>> scan = Scan(np.full((2, 3, 4), -1000, np.int16), (0, 0, 0), (1, 1, 2.5), seriesuid="1.2")
    >>> print(describe_scan(scan).splitlines()[1])
    size (x, y, z):    4 x 3 x 2 voxels = 4.0 x 3.0 x 5.0 mm
    """
    nz, ny, nx = scan.shape
    sx, sy, sz = scan.size_xyz_mm
    lo, hi = (int(scan.array.min()), int(scan.array.max())) if scan.array.size else (0, 0)
    matrix = scan.direction_matrix
    lines = [
        f"series UID:        {scan.seriesuid or '(none)'}",
        f"size (x, y, z):    {nx} x {ny} x {nz} voxels = {sx:.1f} x {sy:.1f} x {sz:.1f} mm",
        "spacing (x, y, z): " + " x ".join(f"{v:.4g}" for v in scan.spacing) + " mm",
        "origin (x, y, z):  " + ", ".join(f"{v:.2f}" for v in scan.origin) + " mm",
        f"direction:         {scan.orientation} "
        + " ".join("[" + " ".join(f"{v:g}" for v in row) + "]" for row in matrix),
        f"HU range:          {lo} .. {hi}",
    ]
    if scan.path is not None:
        lines.insert(1, f"file:              {scan.path}")
    for title, table in (("nodules", annotations), ("excluded findings", excluded)):
        if table is None:
            continue
        found = findings_in_scan(scan, table)
        lines.append(f"{title}: {len(found)}")
        for row in found.itertuples():
            where = "" if row.inside else "  (OUTSIDE the volume)"
            lines.append(
                f"  world (x, y, z) = ({row.coordX:.1f}, {row.coordY:.1f}, {row.coordZ:.1f}) mm"
                f"  voxel (z, y, x) = {row.index_zyx}"
                f"  diameter {row.diameter_mm:.1f} mm{where}"
            )
    return "\n".join(lines)


def describe_scan_file(path: str | Path) -> str:
    """`describe_scan` for a scan file or DICOM folder, with the LUNA16 tables found above it.

    The tables are looked up with `nodulekit.data.luna16.find_luna16_root` (next to a
    symbolic link, not its target). Not to be confused with the scan browser's one-line
    description of what a path holds.
    """
    from nodulekit.data.io import read_scan

    scan = read_scan(path)
    root = find_luna16_root(path)
    annotations = excluded = None
    if root is not None:
        annotations = read_annotations(root / "annotations.csv")
        if (root / "annotations_excluded.csv").is_file():
            excluded = read_annotations(root / "annotations_excluded.csv")
    return describe_scan(scan, annotations=annotations, excluded=excluded)
