"""The error gallery's rows: the worst false positives and the missed nodules of a FROC run.

`error_table` picks the rows (a table anyone can sort and filter); `error_crops` cuts a cube
around each from its scan, for `nodulekit.viz.evaluate.error_gallery_figure`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from nodulekit.evaluate._froc import FrocResult

COLUMNS = [
    "kind",
    "seriesuid",
    "coordX",
    "coordY",
    "coordZ",
    "probability",
    "diameter_mm",
    "nearest_mm",
    "nearest_diameter_mm",
    "nearest_kind",
]


def _nearest(points: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """For each point, the nearest finding of its scan: distance (mm), diameter and kind."""
    rows = []
    by_scan = {uid: g for uid, g in findings.groupby("seriesuid")}
    for point in points.itertuples(index=False):
        group = by_scan.get(point.seriesuid)
        if group is None or group.empty:
            rows.append((np.nan, np.nan, ""))
            continue
        xyz = group[["coordX", "coordY", "coordZ"]].to_numpy(float)
        d = np.linalg.norm(xyz - [point.coordX, point.coordY, point.coordZ], axis=1)
        k = int(np.argmin(d))
        rows.append((float(d[k]), float(group["diameter_mm"].iloc[k]), group["_kind"].iloc[k]))
    return pd.DataFrame(rows, columns=["nearest_mm", "nearest_diameter_mm", "nearest_kind"])


def error_table(
    result: FrocResult,
    excluded: pd.DataFrame | None = None,
    *,
    n_false_positives: int = 8,
    n_missed: int | None = None,
) -> pd.DataFrame:
    """The ``n_false_positives`` most probable false positives and the missed nodules.

    Missed nodules come largest first (``n_missed``: at most that many; all by default). Each
    row carries its probability (a missed nodule's highest mark within 2 radii, or NaN), its
    size (a nodule's diameter; NaN for a false positive) and the nearest annotation of its scan
    (``nodule`` from annotations.csv or ``excluded``) other than itself.
    """
    nodules = result.nodules.assign(_kind="nodule")
    findings = nodules
    if excluded is not None and len(excluded):
        findings = pd.concat([nodules, excluded.assign(_kind="excluded")], ignore_index=True)
    marks = result.marks
    fps = marks[marks["outcome"] == "fp"].nlargest(n_false_positives, "probability")
    fp_rows = fps.assign(kind="false positive", diameter_mm=np.nan).reset_index(drop=True)
    fp_rows = pd.concat([fp_rows, _nearest(fp_rows, findings)], axis=1)
    missed = result.nodules[~result.nodules["detected"]].sort_values("diameter_mm", ascending=False)
    if n_missed is not None:
        missed = missed.head(n_missed)
    missed = missed.assign(kind="missed nodule").reset_index(drop=True)
    near = []
    for nodule in missed.itertuples(index=False):  # nearest *other* finding, closest mark
        others = findings[
            ~(
                (findings["seriesuid"] == nodule.seriesuid)
                & (findings["coordX"] == nodule.coordX)
                & (findings["coordY"] == nodule.coordY)
                & (findings["coordZ"] == nodule.coordZ)
            )
        ]
        near.append(_nearest(pd.DataFrame([nodule._asdict()]), others).iloc[0])
        scan_marks = marks[marks["seriesuid"] == nodule.seriesuid]
        d = np.linalg.norm(
            scan_marks[["coordX", "coordY", "coordZ"]].to_numpy(float)
            - [nodule.coordX, nodule.coordY, nodule.coordZ],
            axis=1,
        )
        close = scan_marks["probability"].to_numpy()[d < nodule.diameter_mm]
        missed.loc[len(near) - 1, "probability"] = close.max() if close.size else np.nan
    missed = pd.concat(
        [missed, pd.DataFrame(near, columns=["nearest_mm", "nearest_diameter_mm", "nearest_kind"])
         .reset_index(drop=True)],
        axis=1,
    )  # fmt: skip
    table = pd.concat([fp_rows[COLUMNS], missed.reindex(columns=COLUMNS)], ignore_index=True)
    return table


def error_crops(
    table: pd.DataFrame,
    load_scan: Callable[[str], object],
    *,
    size_mm: float = 48.0,
    shape_zyx: tuple[int, int, int] = (48, 48, 48),
) -> list:
    """A `nodulekit.preprocess.Crop` around each row of `error_table` (scans loaded once)."""
    from nodulekit.preprocess import crop

    crops, scans = [], {}
    for row in table.itertuples(index=False):
        if row.seriesuid not in scans:
            scans = {row.seriesuid: load_scan(row.seriesuid)}  # keep one scan in memory
        crops.append(
            crop(scans[row.seriesuid], (row.coordX, row.coordY, row.coordZ), size_mm, shape_zyx)
        )
    return crops
