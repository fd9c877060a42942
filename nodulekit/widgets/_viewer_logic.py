"""The viewer's logic as plain functions: probe a voxel, jump to a nodule, draw a plane, cache scans."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

from nodulekit.data.scan import Scan
from nodulekit.viz.slices import (
    draw_circles,
    draw_crosshair,
    nodule_circles_on_slice,
    plane_geometry,
    plane_point,
    render_slice,
    to_png,
)

PLANE_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}
DEFAULT_CACHE_BYTES = 512 << 20  # 512 MiB: Binder gives a kernel about 2 GB


def clip_index(scan: Scan, index_zyx: Any) -> tuple[int, int, int]:
    """``index_zyx`` rounded to integers and clipped into the volume."""
    idx = np.floor(np.asarray(index_zyx, float) + 0.5).astype(int)
    idx = np.clip(idx, 0, np.asarray(scan.shape) - 1)
    return (int(idx[0]), int(idx[1]), int(idx[2]))


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
    z, y, x = clip_index(scan, idx)
    world = scan.voxel_to_world((z, y, x))
    return {
        "world_xyz_mm": tuple(round(float(v), 3) for v in world),
        "index_zyx": (z, y, x),
        "hu": int(scan.array[z, y, x]),
    }


def probe_text(info: dict[str, Any]) -> str:
    """The probe as one line of text; the voxel index is in the displayed (LPS) array."""
    x, y, z = info["world_xyz_mm"]
    return (
        f"world (x, y, z) = ({x:.1f}, {y:.1f}, {z:.1f}) mm · LPS voxel (z, y, x) = "
        f"{info['index_zyx']} · {info['hu']} HU"
    )


def jump_to_nodule(scan: Scan, nodule: pd.Series | dict[str, float]) -> tuple[int, int, int]:
    """The voxel ``(z, y, x)`` nearest a nodule's centre: the axial, coronal, sagittal slices to show.

    ``nodule`` is one row of an annotations table (``coordX, coordY, coordZ`` in world mm);
    centres outside the volume are clipped to its edge.
    """
    centre = [float(nodule["coordX"]), float(nodule["coordY"]), float(nodule["coordZ"])]
    return clip_index(scan, scan.world_to_voxel(centre))


def nodule_rows(scan: Scan, annotations: pd.DataFrame, excluded: pd.DataFrame) -> pd.DataFrame:
    """The scan's findings for the nodule table: kind, diameter, centre (mm) and voxel (z, y, x)."""
    parts = []
    for table, kind in ((annotations, "nodule"), (excluded, "excluded")):
        if table is None or len(table) == 0:
            continue
        part = table[["coordX", "coordY", "coordZ", "diameter_mm"]].copy()
        part.insert(0, "kind", kind)
        part["index_zyx"] = [jump_to_nodule(scan, row) for _, row in part.iterrows()]
        parts.append(part)
    if not parts:
        return pd.DataFrame(
            columns=["kind", "coordX", "coordY", "coordZ", "diameter_mm", "index_zyx"]
        )
    return pd.concat(parts, ignore_index=True)


def format_nodule_row(row: pd.Series) -> str:
    """One row of the nodule table as text."""
    d = f"{row['diameter_mm']:5.1f} mm" if row["diameter_mm"] > 0 else "   <3 mm"
    return (
        f"{row['kind']:<8} {d}  ({row['coordX']:7.1f}, {row['coordY']:7.1f}, {row['coordZ']:7.1f}) mm"
        f"  zyx {row['index_zyx']}"
    )


def plane_rgb(
    scan: Scan,
    plane: str,
    index: int,
    *,
    window: Any = "lung",
    nodules: pd.DataFrame | None = None,
    excluded: pd.DataFrame | None = None,
):
    """RGB of slice ``index`` of ``plane`` with the nodules (and excluded findings) crossing it."""
    rgb = render_slice(scan, plane, index, window=window, indexed=True)
    circles = nodule_circles_on_slice(excluded, scan, plane, index, style="excluded")
    circles += nodule_circles_on_slice(nodules, scan, plane, index)
    return draw_circles(rgb, circles)


def render_plane(
    scan: Scan,
    plane: str,
    index_zyx: tuple[int, int, int],
    *,
    window: Any = "lung",
    nodules: pd.DataFrame | None = None,
    excluded: pd.DataFrame | None = None,
    crosshair: bool = True,
) -> bytes:
    """PNG bytes of one plane through the crosshair ``index_zyx``, nodules and crosshair drawn."""
    index = index_zyx[PLANE_AXIS[plane]]
    rgb = plane_rgb(scan, plane, index, window=window, nodules=nodules, excluded=excluded)
    if crosshair:
        rgb = draw_crosshair(rgb, *plane_point(scan, plane, index_zyx))
    return to_png(rgb)


def plane_size(scan: Scan, plane: str) -> tuple[int, int]:
    """Rendered ``(height, width)`` of a plane in pixels."""
    geo = plane_geometry(scan.shape, scan.spacing_zyx, plane)
    return geo.n_rows, geo.n_cols


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

    def __iter__(self):
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
