"""Where a finding lies: lung side from the body midline, lobe only from a lobe segmentation.

World coordinates are LPS (DICOM, ITK, LUNA16): ``x`` grows towards the **patient's left**,
``y`` towards the back, ``z`` towards the head. The side of a point is read against the body's
midline on the point's own axial slice (the middle of the body's left-right extent, the body
being the largest connected region above -500 HU), not against the scan's centre, which
depends on how the patient lay in the field of view.

A lobe cannot be told from a position: the fissures between lobes vary from person to person
and nodulekit has no lobe segmentation of its own. The lobe is given only when a lobe label
map is handed in (for example from ``lungmask``'s LTRCLobes model or TotalSegmentator,
converted to `LOBE_LABELS`); otherwise every finding says "lobe not determined".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: distance from the midline (mm) within which no side is claimed
MIDLINE_MARGIN_MM = 10.0

#: lobe label map convention (lungmask's LTRCLobes output)
LOBE_LABELS: dict[int, str] = {
    1: "left upper lobe",
    2: "left lower lobe",
    3: "right upper lobe",
    4: "right middle lobe",
    5: "right lower lobe",
}

LOBE_NOT_DETERMINED = "lobe not determined"


def body_midline_x_mm(scan: Any, center_xyz_mm: Any, *, body_hu: float = -500.0) -> float | None:
    """World ``x`` (mm) of the body's midline on the axial slice through ``center_xyz_mm``.

    ``None`` when the slice lies outside the scan or holds no body.
    """
    from scipy import ndimage

    from nodulekit.preprocess.orient import reorient_to_lps

    lps = reorient_to_lps(scan)
    index = np.rint(lps.world_to_voxel(np.asarray(center_xyz_mm, float))).astype(int).ravel()
    z = int(index[0])
    if not 0 <= z < lps.shape[0]:
        return None
    body = np.asarray(lps.array[z]) > body_hu
    labels, count = ndimage.label(body)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    columns = np.flatnonzero((labels == int(np.argmax(sizes)) + 1).any(axis=0))
    middle_col = (columns[0] + columns[-1]) / 2.0
    world = lps.voxel_to_world(np.array([z, index[1], middle_col], float))
    return float(np.asarray(world).ravel()[0])


def lung_side(scan: Any, center_xyz_mm: Any, *, margin_mm: float = MIDLINE_MARGIN_MM) -> str:
    """``"left"``, ``"right"``, ``"near the midline"`` or ``"side not determined"``.

    Left and right are the patient's (LPS: patient left is ``+x``), read against the body's
    midline on the finding's slice; within ``margin_mm`` of it no side is claimed.
    """
    midline = body_midline_x_mm(scan, center_xyz_mm)
    if midline is None:
        return "side not determined"
    offset = float(np.asarray(center_xyz_mm, float)[0]) - midline
    if abs(offset) < margin_mm:
        return "near the midline"
    return "left" if offset > 0 else "right"


def lobe_at(
    lobes: Any | None, center_xyz_mm: Any, *, names: Mapping[int, str] = LOBE_LABELS
) -> str:
    """The lobe named by the label map ``lobes`` (a `Mask` or `Scan` on any grid) at a point.

    ``"lobe not determined"`` without a map, outside it, or on a label it does not name.
    """
    if lobes is None:
        return LOBE_NOT_DETERMINED
    index = np.rint(lobes.world_to_voxel(np.asarray(center_xyz_mm, float))).astype(int).ravel()
    array = np.asarray(lobes.array)
    if any(not 0 <= i < n for i, n in zip(index, array.shape, strict=True)):
        return LOBE_NOT_DETERMINED
    return names.get(int(array[tuple(index)]), LOBE_NOT_DETERMINED)
