"""The findings of one scan as a viewer lists them, and what one voxel holds.

`findings_table` puts a scan's nodules (``annotations.csv``) and excluded findings
(``annotations_excluded.csv``) in one table with a ``kind`` column ("nodule" or "excluded") and
the voxel to show each at; `finding_label` writes a row as a line of text; `probe` reads one
voxel. Plain functions: `nodulekit.widgets.ScanBrowser` calls them, so can a script.

LUNA16 writes ``diameter_mm = -1`` for excluded findings that were not measured: non-nodules
(of any size) and nodules under 3 mm. Excluded nodules of 3 mm or more that fewer than three
of the four readers marked keep their diameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nodulekit.data.scan import Scan

FINDING_KINDS = ("nodule", "excluded")
#: What each kind of finding is, in LUNA16's terms.
KIND_MEANING = {
    "nodule": "annotations.csv: a nodule of 3 mm or more marked by at least 3 of the 4 "
    "readers; what LUNA16 scores",
    "excluded": "annotations_excluded.csv: not scored, neither hit nor false positive; "
    "non-nodules and nodules under 3 mm (diameter not measured), or nodules fewer readers marked",
}
FINDING_COLUMNS = ["kind", "coordX", "coordY", "coordZ", "diameter_mm", "index_zyx"]
#: How a finding without a measured diameter (``diameter_mm = -1``) is described.
UNMEASURED = "non-nodule or nodule < 3 mm"


def nearest_voxel_zyx(scan: Scan, index_zyx: Any) -> tuple[int, int, int]:
    """A continuous voxel index ``(z, y, x)`` rounded half up and clipped into the volume.

    >>> scan = Scan(np.zeros((2, 3, 4), np.int16), (0, 0, 0), (1, 1, 1))
    >>> nearest_voxel_zyx(scan, (0.5, -3.0, 9.2))
    (1, 0, 3)
    """
    idx = np.floor(np.asarray(index_zyx, float) + 0.5).astype(int)
    idx = np.clip(idx, 0, np.asarray(scan.shape) - 1)
    return (int(idx[0]), int(idx[1]), int(idx[2]))


def finding_voxel_zyx(scan: Scan, finding: pd.Series | dict[str, float]) -> tuple[int, int, int]:
    """The voxel ``(z, y, x)`` nearest a finding's centre: the axial, coronal, sagittal slices.

    ``finding`` is one row of a LUNA16 table (``coordX, coordY, coordZ`` in world mm);
    centres outside the volume are clipped to its edge.
    """
    centre = [float(finding["coordX"]), float(finding["coordY"]), float(finding["coordZ"])]
    return nearest_voxel_zyx(scan, scan.world_to_voxel(centre))


def findings_table(
    scan: Scan, annotations: pd.DataFrame | None, excluded: pd.DataFrame | None
) -> pd.DataFrame:
    """The scan's findings, nodules first then excluded ones, each in its table's order.

    Columns `FINDING_COLUMNS`: ``kind`` ("nodule" or "excluded"), the centre in world mm,
    ``diameter_mm`` as in the table (-1: not measured) and ``index_zyx``, the nearest voxel.
    Pass the rows of this scan only (`nodulekit.data.Luna16.annotations_for`).
    """
    parts = []
    for table, kind in zip((annotations, excluded), FINDING_KINDS, strict=True):
        if table is None or len(table) == 0:
            continue
        part = table[["coordX", "coordY", "coordZ", "diameter_mm"]].copy()
        part.insert(0, "kind", kind)
        part["index_zyx"] = [finding_voxel_zyx(scan, row) for _, row in part.iterrows()]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=FINDING_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def diameter_text(diameter_mm: float) -> str:
    """A finding's diameter for display: ``'6.4 mm'``, or `UNMEASURED` for LUNA16's -1.

    >>> diameter_text(6.41), diameter_text(-1)
    ('6.4 mm', 'non-nodule or nodule < 3 mm')
    """
    return f"{diameter_mm:.1f} mm" if diameter_mm > 0 else UNMEASURED


def finding_label(row: pd.Series, number: int | None = None) -> str:
    """One row of `findings_table` as a line: kind (and number), diameter, centre, voxel.

    >>> row = pd.Series({"kind": "excluded", "coordX": 3.0, "coordY": 2.0, "coordZ": 4.0,
    ...                  "diameter_mm": -1.0, "index_zyx": (2, 2, 3)})
    >>> finding_label(row)
    'excluded   non-nodule or nodule < 3 mm  (3.0, 2.0, 4.0) mm  zyx (2, 2, 3)'
    """
    kind = row["kind"] if number is None else f"{row['kind']} {number}"
    return (
        f"{kind:<10} {diameter_text(row['diameter_mm'])}  "
        f"({row['coordX']:.1f}, {row['coordY']:.1f}, {row['coordZ']:.1f}) mm"
        f"  zyx {tuple(int(v) for v in row['index_zyx'])}"
    )


def finding_labels(findings: pd.DataFrame) -> list[str]:
    """`finding_label` of every row, nodules and excluded findings numbered from 1 apart."""
    counts = dict.fromkeys(FINDING_KINDS, 0)
    labels = []
    for _, row in findings.iterrows():
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
        labels.append(finding_label(row, counts[row["kind"]]))
    return labels


def probe(scan: Scan, index_zyx: Any) -> dict[str, Any]:
    """World position (mm), voxel index (z, y, x) and HU of one voxel.

    Examples
    --------
    >>> scan = Scan(np.arange(8, dtype=np.int16).reshape(2, 2, 2), (10, 20, 30), (1, 1, 2))
    >>> probe(scan, (1, 0, 1))
    {'world_xyz_mm': (11.0, 20.0, 32.0), 'index_zyx': (1, 0, 1), 'hu': 5}
    """
    idx = np.asarray(index_zyx)
    if idx.shape != (3,) or not scan.contains(idx):
        raise IndexError(
            f"index_zyx must be 3 indices inside shape {scan.shape}, not {index_zyx!r}"
        )
    z, y, x = nearest_voxel_zyx(scan, idx)
    world = scan.voxel_to_world((z, y, x))
    return {
        "world_xyz_mm": tuple(round(float(v), 3) for v in world),
        "index_zyx": (z, y, x),
        "hu": int(scan.array[z, y, x]),
    }


def probe_text(info: dict[str, Any]) -> str:
    """`probe`'s result as one line; the voxel index is in the displayed (LPS) array."""
    x, y, z = info["world_xyz_mm"]
    return (
        f"world (x, y, z) = ({x:.1f}, {y:.1f}, {z:.1f}) mm · LPS voxel (z, y, x) = "
        f"{info['index_zyx']} · {info['hu']} HU"
    )
