"""A scan's findings for the report: ranked marks with place, side, lobe and size.

Marks come from the evaluation layer (`nodulekit.evaluate.detect.detect_scan`: blob candidates
in the lungs scored by the checkpoint) or from a predictions table the caller already has
(``seriesuid, coordX, coordY, coordZ, probability``). Nothing is scored or measured here that
a lower layer does not do: sizes come from the detector's blob scale, or from the U-Net's
segmentation (`nodulekit.train.segment.predict_volume`) measured by
`nodulekit.evaluate.segmentation.equivalent_diameter_mm`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nodulekit.errors import NodulekitError
from nodulekit.report.anatomy import lobe_at, lung_side

COORDS = ["coordX", "coordY", "coordZ"]

#: where the diameter column came from, in the report's words
SIZE_FROM_SEGMENTATION = "U-Net segmentation (volume-equivalent diameter)"
SIZE_FROM_BLOB = "blob detector's scale (a rough size class, not a measurement)"
SIZE_FROM_TABLE = "the predictions table's diameter_mm column"


def marks_of_scan(
    scan: Any,
    *,
    model_and_config: tuple[Any, dict] | None = None,
    predictions: pd.DataFrame | str | os.PathLike | None = None,
    max_candidates: int = 200,
    device: str = "auto",
) -> pd.DataFrame:
    """The scan's marks, most probable first: from ``predictions`` when given (rows of the
    scan's series UID; all rows when the table names one series only), else detected."""
    if predictions is None:
        from nodulekit.evaluate.detect import detect_scan

        if model_and_config is None:
            raise ValueError("give a checkpoint (to detect) or a predictions table")
        return detect_scan(scan, model_and_config, max_candidates=max_candidates, device=device)
    from nodulekit.evaluate.predictions import check_predictions, read_predictions

    extras = ("diameter_mm", "blob_score")  # sizes (and their kind) ride along
    source = str(predictions) if not isinstance(predictions, pd.DataFrame) else "the table"
    if isinstance(predictions, pd.DataFrame):
        table = check_predictions(predictions, source=source, keep=extras)
    else:
        table = read_predictions(predictions, keep=extras)
    uids = table["seriesuid"].astype(str).unique()
    own = table[table["seriesuid"].astype(str) == str(scan.seriesuid)]
    if own.empty and len(uids) == 1:
        own = table  # one series in the file: the scan itself (e.g. nodulekit detect's output)
    if own.empty:
        raise NodulekitError(
            f"{source}: no prediction for this scan's series ({len(uids)} other series in "
            "the file); give the predictions of this scan, or drop --predictions to detect"
        )
    return own.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)


def load_segmenter(checkpoint: str | os.PathLike, *, device: str = "auto") -> Any:
    """The U-Net of a segmentation checkpoint, in eval mode
    (`nodulekit.evaluate.segmentation.load_segmenter` without the config)."""
    from nodulekit.evaluate.segmentation import load_segmenter as load

    return load(checkpoint, device=device)[0]


def segmented_diameter_mm(
    scan: Any, unet: Any, center_xyz_mm: Any, *, box_mm: float = 48.0, device: str = "auto"
) -> float:
    """Volume-equivalent diameter (mm) of the segmented region at a point; NaN when the U-Net
    marks nothing there (probability >= 0.5 in the connected region nearest the point)."""
    from scipy import ndimage

    from nodulekit.evaluate.segmentation import equivalent_diameter_mm
    from nodulekit.train.loop import resolve_device
    from nodulekit.train.segment import predict_volume

    centre = np.rint(scan.world_to_voxel(np.asarray(center_xyz_mm, float))).astype(int).ravel()
    half = np.ceil(box_mm / 2 / np.asarray(scan.spacing_zyx_mm)).astype(int)
    low = np.clip(centre - half, 0, np.asarray(scan.shape))
    high = np.clip(centre + half + 1, 0, np.asarray(scan.shape))
    if np.any(high <= low):
        return float("nan")
    probability = predict_volume(
        unet, scan, z_range=(int(low[0]), int(high[0])),
        box_yx=(slice(int(low[1]), int(high[1])), slice(int(low[2]), int(high[2]))),
        device=resolve_device(device),
    )  # fmt: skip
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
    labels, count = ndimage.label(probability[box] >= 0.5)
    if count == 0:
        return float("nan")
    inside = np.argwhere(labels > 0)
    nearest = inside[
        np.argmin(np.linalg.norm((inside - (centre - low)) * scan.spacing_zyx_mm, axis=1))
    ]
    size = int((labels == labels[tuple(nearest)]).sum())
    return equivalent_diameter_mm(size, scan.spacing_zyx_mm)


def findings_table(
    scan: Any,
    marks: pd.DataFrame,
    *,
    top: int = 10,
    lobes: Any | None = None,
    segmenter: Any | None = None,
    device: str = "auto",
) -> pd.DataFrame:
    """The ``top`` most probable marks as the report lists them.

    Columns: ``rank`` (1 = most probable), ``coordX, coordY, coordZ`` (world mm, LPS),
    ``probability``, ``side`` (`lung_side`), ``lobe`` (`lobe_at`), ``diameter_mm`` (NaN when
    unknown) and ``diameter_source``.
    """
    rows = marks.sort_values("probability", ascending=False, kind="stable").head(int(top))
    rows = rows.reset_index(drop=True)
    out = rows[[*COORDS, "probability"]].astype(float).copy()
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    points = out[COORDS].to_numpy(float)
    from nodulekit.preprocess.orient import reorient_to_lps

    lps = reorient_to_lps(scan)  # once (a copy for a scan stored in another orientation)
    out["side"] = [lung_side(lps, p) for p in points]
    out["lobe"] = [lobe_at(lobes, p) for p in points]
    if segmenter is not None:
        out["diameter_mm"] = [
            segmented_diameter_mm(scan, segmenter, p, device=device) for p in points
        ]
        out["diameter_source"] = SIZE_FROM_SEGMENTATION
    elif "blob_score" in rows and "diameter_mm" in rows:
        out["diameter_mm"] = rows["diameter_mm"].astype(float)
        out["diameter_source"] = SIZE_FROM_BLOB
    elif "diameter_mm" in rows:
        out["diameter_mm"] = rows["diameter_mm"].astype(float)
        out["diameter_source"] = SIZE_FROM_TABLE
    else:
        out["diameter_mm"] = np.nan
        out["diameter_source"] = "not available"
    return out


def read_lobes(path: str | os.PathLike | None) -> Any | None:
    """A lobe label map (`LOBE_LABELS` convention) read with `nodulekit.data.read_mask`."""
    if path is None:
        return None
    from nodulekit.data.io import read_mask

    return read_mask(Path(path), name="lobes")
