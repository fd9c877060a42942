"""Lung segmentation by thresholds and connected components (no trained weights).

Steps of `lung_mask`, all with ``scipy.ndimage``:

1. air: voxels below ``threshold_hu`` (-320 HU);
2. outside air removed: per axial slice, air components touching the slice border
   (room air, the table gap, the reconstruction circle) are dropped;
3. airways removed: the trachea is found in the top slices as a small round air region
   near the body's left-right middle and followed down slice by slice (through the carina,
   into both main bronchi) until it merges with lung tissue in the slice;
4. both lungs kept: the largest 3D component, plus the second largest when it holds at
   least ``second_lung_fraction`` of the largest (lungs joined at the anterior junction
   form one component and are kept as it);
5. holes filled: for each lung, an in-plane closing (radius 10 mm, on a 2 mm grid) and
   per-slice hole filling, so vessels and nodules inside the lungs, and nodules attached
   to the pleura, are inside the mask.
"""

from __future__ import annotations

import numpy as np

from nodulekit.data.mask import Mask
from nodulekit.data.scan import Scan
from nodulekit.errors import GeometryError

#: In-plane 8-connectivity and no connection across slices: label each slice separately.
_SLICE_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_SLICE_STRUCTURE[1] = True


def _inner_air(air: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-slice labels of air components that do not touch the slice border."""
    from scipy import ndimage

    labels, n = ndimage.label(air, structure=_SLICE_STRUCTURE)
    border = np.unique(
        np.concatenate(
            [
                labels[:, 0, :].ravel(),
                labels[:, -1, :].ravel(),
                labels[:, :, 0].ravel(),
                labels[:, :, -1].ravel(),
            ]
        )
    )
    keep = np.ones(n + 1, dtype=bool)
    keep[0] = False
    keep[border] = False
    labels[~keep[labels]] = 0
    return labels, n


def _airway_mask(
    labels: np.ndarray,
    n_labels: int,
    body: np.ndarray,
    scan: Scan,
    *,
    max_trachea_mm2: float = 700.0,
    min_trachea_mm2: float = 40.0,
    growth: float = 2.0,
) -> np.ndarray:
    """Voxels of the trachea and main bronchi, outside the lungs in each axial slice.

    Tracking stops where a region is larger than ``max_trachea_mm2`` or than ``growth``
    times the largest airway region of the slice above: it has met a lung.
    """
    from scipy import ndimage

    nz = labels.shape[0]
    boxes = ndimage.find_objects(labels)  # labels are per slice, so each box is one slice
    label_z = np.full(n_labels + 1, -1)
    label_cx = np.zeros(n_labels + 1)
    area_mm2 = np.zeros(n_labels + 1)
    pixel_mm2 = float(scan.spacing[0] * scan.spacing[1])
    for lab, box in enumerate(boxes, start=1):
        if box is not None:  # counting inside each box beats a bincount of the whole volume
            label_z[lab] = box[0].start
            label_cx[lab] = (box[2].start + box[2].stop - 1) / 2.0
            area_mm2[lab] = np.count_nonzero(labels[box] == lab) * pixel_mm2
    # slices from the head down: world z of each slice's centre
    z_world = scan.voxel_to_world(np.stack([np.arange(nz), np.zeros(nz), np.zeros(nz)], 1))[:, 2]
    order = np.argsort(-z_world)
    airway = np.zeros(labels.shape, dtype=bool)

    # 1. seed: in the top 40% of slices, the first slice with a trachea-sized air region
    #    near the body's left-right middle
    tracked: list[int] = []
    start = None
    for rank, z in enumerate(order[: max(1, int(0.4 * nz))]):
        present = np.flatnonzero(label_z == z)
        if present.size == 0:
            continue
        body_cols = np.flatnonzero(body[z].any(axis=0))
        if body_cols.size == 0:
            continue
        mid_x, half_width = body_cols.mean(), (body_cols[-1] - body_cols[0]) / 2.0
        tracked = [
            int(lab)
            for lab in present
            if min_trachea_mm2 <= area_mm2[lab] <= max_trachea_mm2
            and abs(label_cx[lab] - mid_x) < 0.25 * half_width
        ]
        if tracked:
            start = rank
            break
    if start is None:
        return airway

    # 2. follow the tracked regions down; a region that suddenly grows has merged with a
    #    lung in this slice, so the airway stops there
    for rank in range(start, nz):
        z = order[rank]
        airway[z] = np.isin(labels[z], tracked)
        if rank + 1 >= nz:
            break
        below = labels[order[rank + 1]][airway[z]]
        limit = min(max_trachea_mm2, growth * float(area_mm2[tracked].max()))
        tracked = [int(lab) for lab in np.unique(below[below > 0]) if area_mm2[lab] <= limit]
        if not tracked:
            break
    return airway


def _fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of each axial slice (background not connected to the slice border)."""
    from scipy import ndimage

    background, n = ndimage.label(~mask, structure=_SLICE_STRUCTURE)
    outside = np.zeros(n + 1, dtype=bool)
    for edge in (
        background[:, 0, :],
        background[:, -1, :],
        background[:, :, 0],
        background[:, :, -1],
    ):
        outside[edge.ravel()] = True
    is_hole = ~outside
    is_hole[0] = False
    return mask | is_hole[background]


def _close_in_plane(
    mask: np.ndarray, spacing_yx: tuple[float, float], radius_mm: float
) -> np.ndarray:
    """In-plane closing with a disk of ``radius_mm``, on a grid of about 2 mm pixels.

    Done with two distance transforms on a block-downsampled mask, so its cost does not grow
    with the radius. Only coarse pixels without any mask voxel are added (upsampled back);
    the gaps this leaves next to the mask are closed by the per-slice hole filling.
    """
    from scipy import ndimage

    nz, ny, nx = mask.shape
    factor = max(1, round(2.0 / min(spacing_yx)))
    pad_px = int(np.ceil(radius_mm / (min(spacing_yx) * factor))) + 2
    py, px = -ny % factor, -nx % factor
    blocks = np.pad(mask, ((0, 0), (0, py), (0, px)))
    small = blocks.reshape(nz, (ny + py) // factor, factor, (nx + px) // factor, factor).any(
        axis=(2, 4)
    )
    small = np.pad(small, ((1, 1), (pad_px, pad_px), (pad_px, pad_px)))
    sampling = (1e6, spacing_yx[0] * factor, spacing_yx[1] * factor)  # no reach across slices
    dilated = ndimage.distance_transform_edt(~small, sampling=sampling) <= radius_mm
    closed = ndimage.distance_transform_edt(dilated, sampling=sampling) > radius_mm
    # add only coarse pixels holding no mask voxel: a coarse pixel at the border would
    # otherwise grow the mask by up to ``factor - 1`` voxels all round
    added = (closed & ~small)[1:-1, pad_px:-pad_px, pad_px:-pad_px]
    up = np.repeat(np.repeat(added, factor, axis=1), factor, axis=2)[:, :ny, :nx]
    return mask | up


def lung_mask(
    scan: Scan,
    *,
    threshold_hu: float = -320.0,
    remove_airways: bool = True,
    second_lung_fraction: float = 0.2,
    closing_radius_mm: float = 10.0,
) -> Mask:
    """Segment both lungs of a chest CT: a boolean `Mask` on the scan's grid.

    Parameters
    ----------
    scan : Scan
        A chest CT in HU.
    threshold_hu : float
        Air/tissue threshold; lung parenchyma is about -850 HU, soft tissue about 40.
    remove_airways : bool
        Drop the trachea and main bronchi (outside the lungs in each axial slice).
    second_lung_fraction : float
        The second largest air component is kept as a lung if its volume is at least this
        fraction of the largest one (so stomach or bowel gas is not).
    closing_radius_mm : float
        Radius of the in-plane closing, done for each lung on its own, that brings vessels
        and nodules at the lung border (juxtapleural nodules) into the mask; 0 to skip.

    Returns
    -------
    Mask
        bool, ``name="lungs"``, with the scan's geometry and series UID; all False if no
        lung-sized air region is found. ``np.asarray(mask)`` is the bare array.

    Examples
    --------
    >>> import numpy as np
    >>> from nodulekit.data import Scan
    >>> mask = lung_mask(Scan(np.full((4, 16, 16), 40, np.int16), (0, 0, 0), (1, 1, 1)))
    >>> mask.any(), mask.shape, mask.dtype
    (False, (4, 16, 16), dtype('bool'))
    """
    return Mask.like(
        scan,
        _lung_array(scan, threshold_hu, remove_airways, second_lung_fraction, closing_radius_mm),
        name="lungs",
    )


def _lung_array(
    scan: Scan,
    threshold_hu: float,
    remove_airways: bool,
    second_lung_fraction: float,
    closing_radius_mm: float,
) -> np.ndarray:
    """The steps of `lung_mask`, on the bare array."""
    from scipy import ndimage

    air = scan.array < threshold_hu
    labels, n = _inner_air(air)
    inner = labels > 0
    if not inner.any():
        return np.zeros(scan.shape, dtype=bool)
    airway = None
    if remove_airways:
        airway = _airway_mask(labels, n, ~air | inner, scan)
        inner &= ~airway
    del labels, air

    # work inside the bounding box of the inner air from here on
    box = ndimage.find_objects(inner.view(np.uint8))[0]
    comp, n_comp = ndimage.label(inner[box])  # 3D, 6-connected
    if n_comp == 0:
        return np.zeros(scan.shape, dtype=bool)
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    ranked = np.argsort(sizes)[::-1]
    keep = [int(ranked[0])]
    if n_comp > 1 and sizes[ranked[1]] >= second_lung_fraction * sizes[ranked[0]]:
        keep.append(int(ranked[1]))

    # each lung on its own, so the closing never bridges the mediastinum; lungs joined in
    # one component are split at its middle column for that
    parts: list[np.ndarray] = []
    if len(keep) == 2:
        parts = [comp == keep[0], comp == keep[1]]
    else:
        one = comp == keep[0]
        middle = round(float(np.nonzero(one.any(axis=(0, 1)))[0].mean()))
        left, right = one.copy(), one
        left[:, :, middle:] = False
        right[:, :, :middle] = False
        parts = [left, right]
    del comp
    lungs = np.zeros(inner[box].shape, dtype=bool)
    for part in parts:
        if not part.any():
            continue
        sub = ndimage.find_objects(part.view(np.uint8))[0]
        one = part[sub]
        if closing_radius_mm > 0:
            one = _close_in_plane(one, scan.spacing_zyx_mm[1:], closing_radius_mm)
        lungs[sub] |= _fill_holes_per_slice(one)

    mask = np.zeros(scan.shape, dtype=bool)
    mask[box] = lungs
    if airway is not None:
        mask &= ~airway  # never fill the airway back in
    return mask


def lung_volume_ml(mask: Mask | np.ndarray, scan: Scan | None = None) -> float:
    """Volume of a mask in millilitres (cm³).

    Parameters
    ----------
    mask : Mask, or (Z, Y, X) ndarray
        A `Mask` knows its voxel size, so no scan is needed. A bare array needs ``scan``.
    scan : Scan, optional
        The scan the mask lies on. Given with a `Mask`, the two grids must agree
        (`GeometryError` naming both otherwise).

    Examples
    --------
    >>> scan = Scan(np.zeros((4, 10, 10), np.int16), (0, 0, 0), (2.0, 2.0, 5.0))
    >>> mask = Mask.like(scan, np.ones(scan.shape, bool))
    >>> lung_volume_ml(mask)  # 400 voxels of 20 mm³
    8.0
    """
    if isinstance(mask, Mask):
        if scan is not None:
            scan.check_same_geometry(mask)
        return mask.volume_ml
    if scan is None:
        raise GeometryError(
            "lung_volume_ml: a bare array has no voxel size; pass the Mask from lung_mask, "
            "or the scan it lies on: lung_volume_ml(mask, scan)"
        )
    mask = np.asarray(mask)
    if mask.shape != scan.shape:
        raise GeometryError(
            f"lung_volume_ml: mask shape {mask.shape} differs from scan shape {scan.shape}"
        )
    return Mask.like(scan, mask != 0).volume_ml
