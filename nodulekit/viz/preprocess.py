"""Pictures of preprocessing: a windowed axial slice with the lung mask and a crop box, the
crop itself in three planes, and where the same world slice lies in a resampled scan.

Pure functions, arrays in and RGB ``uint8`` arrays (or a matplotlib Figure) out; they are
the logic behind every control of `nodulekit.widgets.PreprocessPreview`. Slices are drawn
with a 65,536-entry lookup table (`nodulekit.viz.slices.window_lut`), so a 512 x 512 slice
costs a few milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from nodulekit.data.scan import Scan
from nodulekit.preprocess.crop import Crop
from nodulekit.viz.slices import Window, window_lut

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

MASK_COLOR = (255, 80, 80)
BOX_COLOR = (80, 200, 255)


class Box(NamedTuple):
    """An axis-aligned rectangle on an axial slice, in (continuous) voxel rows and columns."""

    row0: float
    row1: float
    col0: float
    col1: float


def grey_slice(array_hu: np.ndarray, *, window: Window = "lung") -> np.ndarray:
    """A 2D HU array as grey ``uint8`` through a window (preset name or (level, width))."""
    lut = window_lut(window)
    if array_hu.dtype == np.int16:
        return lut[array_hu.astype(np.int32) + 32768]
    clipped = np.clip(np.rint(array_hu), -32768, 32767).astype(np.int32)
    return lut[clipped + 32768]


def _blend(rgb: np.ndarray, where: np.ndarray, color: tuple[int, int, int], alpha: float) -> None:
    if where.any():
        rgb[where] = (rgb[where] * (1 - alpha) + np.asarray(color) * alpha).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def render_preview_slice(
    array_hu: np.ndarray,
    index: int,
    *,
    window: Window = "lung",
    mask: np.ndarray | None = None,
    box: Box | None = None,
    mask_alpha: float = 0.35,
) -> np.ndarray:
    """Axial slice ``index`` of a ``(z, y, x)`` HU volume as RGB ``uint8`` ``(Y, X, 3)``.

    Parameters
    ----------
    array_hu : (Z, Y, X) ndarray
        HU (a `Scan`'s ``array``).
    index : int
        Axial slice (clipped to the volume).
    window : str or (level_hu, width_hu)
    mask : (Z, Y, X) bool ndarray, optional
        Drawn tinted, with its outline in full colour (the lung mask).
    box : Box, optional
        Drawn as a one-pixel rectangle (a crop's footprint on this slice).
    """
    index = int(np.clip(index, 0, array_hu.shape[0] - 1))
    rgb = np.repeat(grey_slice(array_hu[index], window=window)[:, :, None], 3, axis=2)
    if mask is not None:
        if mask.shape != array_hu.shape:
            raise ValueError(f"mask shape {mask.shape} differs from the volume's {array_hu.shape}")
        plane = mask[index]
        _blend(rgb, plane, MASK_COLOR, mask_alpha)
        rgb[_outline(plane)] = MASK_COLOR
    if box is not None:
        draw_box(rgb, box)
    return rgb


def draw_box(rgb: np.ndarray, box: Box, *, color: tuple[int, int, int] = BOX_COLOR) -> np.ndarray:
    """Draw ``box`` on an RGB image in place (clipped to the image) and return the image."""
    h, w = rgb.shape[:2]
    r0, r1 = round(box.row0), round(box.row1)
    c0, c1 = round(box.col0), round(box.col1)
    rs, re_ = max(r0, 0), min(r1, h - 1)
    cs, ce = max(c0, 0), min(c1, w - 1)
    if rs > re_ or cs > ce:
        return rgb
    for r in (r0, r1):
        if 0 <= r < h:
            rgb[r, cs : ce + 1] = color
    for c in (c0, c1):
        if 0 <= c < w:
            rgb[rs : re_ + 1, c] = color
    return rgb


def crop_box_on_slice(scan: Scan, crop: Crop, index: int) -> Box | None:
    """The footprint of ``crop`` on axial slice ``index`` of ``scan``, or None if it misses it.

    The crop shares the scan's direction, so its footprint is an axis-aligned rectangle in
    voxel rows and columns; the edges are the crop's outer voxel boundaries.
    """
    corners = np.array(
        [[z, y, x] for z in (-0.5, crop.shape[0] - 0.5) for y in (-0.5, crop.shape[1] - 0.5)
         for x in (-0.5, crop.shape[2] - 0.5)]
    )  # fmt: skip
    vox = scan.world_to_voxel(crop.voxel_to_world(corners))
    lo, hi = vox.min(axis=0), vox.max(axis=0)
    if not (lo[0] <= index <= hi[0]):  # lo/hi already sit on the crop's outer voxel edges
        return None
    return Box(float(lo[1]), float(hi[1]), float(lo[2]), float(hi[2]))


def matching_slice(scan: Scan, index: int, other: Scan) -> int:
    """Axial index of ``other`` nearest to the world position of slice ``index`` of ``scan``.

    Used to show an original and a resampled scan side by side at the same place.
    """
    cy, cx = (n // 2 for n in scan.shape[1:])
    world = scan.voxel_to_world((float(index), float(cy), float(cx)))
    z = round(float(other.world_to_voxel(world)[0]))
    return int(np.clip(z, 0, other.shape[0] - 1))


def crop_planes(crop: Crop, *, window: Window = "lung") -> list[np.ndarray]:
    """The middle axial, coronal and sagittal planes of a crop as grey ``uint8`` images.

    Coronal and sagittal are flipped so that superior is at the top (for an LPS scan).
    """
    nz, ny, nx = crop.shape
    arr = crop.array
    return [
        grey_slice(arr[nz // 2], window=window),
        grey_slice(arr[::-1, ny // 2, :], window=window),
        grey_slice(arr[::-1, :, nx // 2], window=window),
    ]


def crop_planes_image(
    crop: Crop, *, window: Window = "lung", scale: int = 4, gap_px: int = 4
) -> np.ndarray:
    """The three planes of `crop_planes` side by side, enlarged ``scale`` times (RGB uint8)."""
    planes = [
        np.kron(p, np.ones((scale, scale), np.uint8)) for p in crop_planes(crop, window=window)
    ]
    height = max(p.shape[0] for p in planes)
    width = sum(p.shape[1] for p in planes) + gap_px * (len(planes) - 1)
    out = np.full((height, width), 255, np.uint8)
    col = 0
    for p in planes:
        out[: p.shape[0], col : col + p.shape[1]] = p
        col += p.shape[1] + gap_px
    return np.repeat(out[:, :, None], 3, axis=2)


def crop_planes_figure(crop: Crop, *, window: Window = "lung") -> Figure:
    """A matplotlib Figure of the crop's three middle planes, with mm axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 3)
    sx, sy, sz = crop.spacing
    nz, ny, nx = crop.shape
    extents = [(0, nx * sx, ny * sy, 0), (0, nx * sx, 0, nz * sz), (0, ny * sy, 0, nz * sz)]
    for ax, plane, title, extent in zip(
        axes, crop_planes(crop, window=window), ("axial", "coronal", "sagittal"), extents,
        strict=True,
    ):  # fmt: skip
        ax.imshow(plane, cmap="gray", vmin=0, vmax=255, extent=extent)
        ax.set_title(title)
        ax.set_xlabel("mm")
    x, y, z = crop.center_xyz_mm
    fig.suptitle(f"crop at ({x:.1f}, {y:.1f}, {z:.1f}) mm, outside {crop.outside_fraction:.0%}")
    fig.tight_layout()
    return fig
