"""Slices of a scan as RGB images, with nodules drawn at their true radius on each slice.

Planes and the image each gives (rows, columns), superior at the top for the two vertical
planes, radiologists' habit:

=========  ============  ===========================  =====================
plane      slice axis    rows                         columns
=========  ============  ===========================  =====================
axial      z             y (anterior at top in LPS)   x
coronal    y             z, reversed (superior top)   x
sagittal   x             z, reversed (superior top)   y
=========  ============  ===========================  =====================

`render_slice` stretches the rows so that one image pixel is one column spacing in both
directions (a 2.5 mm slice thickness shows as 2.5 mm, not 0.7 mm); every row/column that this
module returns (`nodule_circles_on_slice`, `plane_point`) is in those rendered pixels.

`plane_rgb` is THE renderer of "a plane of a scan, windowed, with findings drawn";
`plane_png` (PNG bytes, for widgets) and `slice_figure` (a matplotlib Figure, for notebooks
and reports) are built on it. In all three ``index`` means one thing: the slice number along
the plane's axis (axial: z, coronal: y, sagittal: x) of the scan *as shown*, that is
reoriented to LPS with `nodulekit.preprocess.orient.reorient_to_lps`; for an LPS scan (every
LUNA16 ``.mhd``, every scan the `ScanBrowser` shows) that is the index into ``scan.array``.
The table above holds for that LPS array; the lower-level `render_slice` and `extract_slice`
cut the array they are given as it is.

Everything here is numpy and Pillow, fast enough to redraw a 512 x 512 slice many times a
second; `slice_figure` alone uses matplotlib (imported when called).
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from nodulekit.data.scan import Scan
from nodulekit.preprocess.window import WINDOWS, window_bounds

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLANES = ("axial", "coronal", "sagittal")
#: The array axis (0=z, 1=y, 2=x) each plane's ``index`` runs along.
PLANE_AXIS: dict[str, int] = {"axial": 0, "coronal": 1, "sagittal": 2}
#: Outline colours (RGB) of the circle styles.
STYLE_COLORS: dict[str, tuple[int, int, int]] = {
    "nodule": (255, 64, 64),
    "excluded": (255, 210, 0),
    "candidate": (80, 200, 255),
}
#: Indexed images (``render_slice(..., indexed=True)``): grey levels 0..251, then overlay colours.
GREY_LEVELS = 252
STYLE_INDEX: dict[str, int] = {"nodule": 252, "excluded": 253, "candidate": 254}
CROSSHAIR_COLOR = (0, 200, 255)
CROSSHAIR_INDEX = 255
#: The 256-colour palette of indexed images (flat RGB list, as Pillow's ``putpalette`` takes).
PALETTE: list[int] = (
    [v for i in range(GREY_LEVELS) for v in (round(i * 255 / (GREY_LEVELS - 1)),) * 3]
    + [v for style in ("nodule", "excluded", "candidate") for v in STYLE_COLORS[style]]
    + list(CROSSHAIR_COLOR)
)
#: Radius drawn for findings whose diameter is unknown (LUNA16 writes -1 for those).
UNKNOWN_DIAMETER_MM = 3.0

Window = str | tuple[float, float]


class SliceCircle(NamedTuple):
    """A nodule's cut through one slice, in rendered pixels (see the module docstring)."""

    row: float
    col: float
    radius_px: float
    style: str


class PlaneGeometry(NamedTuple):
    """How a plane maps the volume to an image."""

    slice_axis: int  # array axis (0=z, 1=y, 2=x) the index runs along
    row_axis: int
    col_axis: int
    flip_rows: bool
    row_scale: float  # rendered pixels per voxel along the rows (row spacing / col spacing)
    col_spacing_mm: float
    n_rows: int  # rendered image height in pixels
    n_cols: int


def plane_geometry(
    shape_zyx: tuple[int, int, int], spacing_zyx_mm: tuple[float, float, float], plane: str
) -> PlaneGeometry:
    """The `PlaneGeometry` of ``plane`` for a volume of this shape and spacing."""
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, not {plane!r}")
    slice_axis, row_axis, col_axis = {
        "axial": (0, 1, 2),
        "coronal": (1, 0, 2),
        "sagittal": (2, 0, 1),
    }[plane]
    row_scale = float(spacing_zyx_mm[row_axis]) / float(spacing_zyx_mm[col_axis])
    n_rows = max(1, round(shape_zyx[row_axis] * row_scale))
    return PlaneGeometry(
        slice_axis,
        row_axis,
        col_axis,
        plane != "axial",
        row_scale,
        float(spacing_zyx_mm[col_axis]),
        n_rows,
        int(shape_zyx[col_axis]),
    )


def _volume(scan_or_array: Scan | np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    if isinstance(scan_or_array, Scan):
        return scan_or_array.array, scan_or_array.spacing_zyx_mm
    array = np.asarray(scan_or_array)
    if array.ndim != 3:
        raise ValueError(f"expected a Scan or a (z, y, x) array, not shape {array.shape}")
    return array, (1.0, 1.0, 1.0)


def window_range(window: Window) -> tuple[float, float]:
    """``(low_hu, high_hu)`` of a preset name (`nodulekit.preprocess.WINDOWS`) or (level, width)."""
    if isinstance(window, str):
        return window_bounds(preset=window)
    try:
        level, width = (float(v) for v in window)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"window must be a preset name {sorted(WINDOWS)} or (level_hu, width_hu), "
            f"not {window!r}"
        ) from e
    return window_bounds(level_hu=level, width_hu=width)


@lru_cache(maxsize=32)
def _lut(low: float, high: float, top: int = 255) -> np.ndarray:
    hu = np.arange(-32768, 32768, dtype=np.float32)
    scaled = np.clip((hu - low) / (high - low), 0.0, 1.0) * float(top)
    return np.rint(scaled).astype(np.uint8)


def window_lut(window: Window, *, top: int = 255) -> np.ndarray:
    """A 65,536-entry uint8 table: ``lut[hu + 32768]`` is the grey level (0..top) of ``hu``."""
    low, high = window_range(window)
    return _lut(low, high, top)


def extract_slice(scan_or_array: Scan | np.ndarray, plane: str, index: int) -> np.ndarray:
    """The raw 2D slice (voxels, not stretched) of ``plane`` at ``index``, rows as tabled above."""
    array, spacing = _volume(scan_or_array)
    geo = plane_geometry(array.shape, spacing, plane)
    n = array.shape[geo.slice_axis]
    if not 0 <= int(index) < n:
        raise IndexError(f"{plane} index must be in 0..{n - 1}, not {index}")
    image = np.take(array, int(index), axis=geo.slice_axis)
    return image[::-1] if geo.flip_rows else image


def render_slice(
    scan_or_array: Scan | np.ndarray,
    plane: str = "axial",
    index: int | None = None,
    *,
    window: Window = "lung",
    indexed: bool = False,
) -> np.ndarray:
    """One slice as an RGB uint8 image ``(H, W, 3)`` through a HU window, aspect-corrected.

    Parameters
    ----------
    scan_or_array : Scan or (Z, Y, X) int array
        HU voxels; a bare array is taken as 1 mm isotropic.
    plane : {"axial", "coronal", "sagittal"}
    index : int, optional
        Slice index along the plane's axis (middle slice if omitted).
    window : str or (level_hu, width_hu)
        A preset of `nodulekit.preprocess.WINDOWS` ("lung", "mediastinum", "bone"...) or a pair.
    indexed : bool
        Return a 2D palette image instead (grey 0..251, overlay colours above, see `PALETTE`):
        a third of the bytes, drawn on and encoded (`to_png`) about twice as fast.
    """
    array, spacing = _volume(scan_or_array)
    geo = plane_geometry(array.shape, spacing, plane)
    if index is None:
        index = array.shape[geo.slice_axis] // 2
    raw = extract_slice(array, plane, index)
    top = GREY_LEVELS - 1 if indexed else 255
    if raw.dtype == np.int16:
        grey = window_lut(window, top=top)[raw.astype(np.int32) + 32768]
    else:
        low, high = window_range(window)
        grey = np.rint(np.clip((raw - low) / (high - low), 0, 1) * top).astype(np.uint8)
    if geo.n_rows != grey.shape[0]:
        from PIL import Image

        grey = np.asarray(
            Image.fromarray(grey).resize((grey.shape[1], geo.n_rows), Image.Resampling.BILINEAR)
        )
    return grey if indexed else np.repeat(grey[:, :, None], 3, axis=2)


def plane_point(
    scan: Scan, plane: str, index_zyx: tuple[float, float, float]
) -> tuple[float, float]:
    """Rendered ``(row, col)`` of the (continuous) voxel ``index_zyx`` in ``plane``."""
    geo = plane_geometry(scan.shape, scan.spacing_zyx_mm, plane)
    row_vox = float(index_zyx[geo.row_axis])
    if geo.flip_rows:
        row_vox = scan.shape[geo.row_axis] - 1 - row_vox
    return ((row_vox + 0.5) * geo.row_scale - 0.5, float(index_zyx[geo.col_axis]))


def nodule_circles_on_slice(
    nodules_df: pd.DataFrame | None,
    scan: Scan,
    plane: str,
    index: int,
    *,
    style: str = "nodule",
) -> list[SliceCircle]:
    """Where each nodule (a sphere) cuts the slice, as circles in rendered pixels.

    A sphere of diameter ``d`` whose centre lies ``h`` mm from the slice plane cuts it in a
    circle of radius ``sqrt((d/2)**2 - h**2)``; nodules with ``h >= d/2`` are left out.
    Rows with ``diameter_mm <= 0`` (LUNA16's "unknown or under 3 mm") are drawn as
    `UNKNOWN_DIAMETER_MM` spheres.

    Parameters
    ----------
    nodules_df : DataFrame
        ``coordX, coordY, coordZ`` (world mm) and ``diameter_mm``; None or empty gives ``[]``.
    style : str
        The style every returned circle carries ("nodule", "excluded"...).

    Examples
    --------
    A 10 mm nodule whose centre is 3 mm from the slice shows as a 4 mm circle:

    >>> import pandas as pd
    >>> scan = Scan(np.zeros((10, 20, 20), np.int16), origin=(0, 0, 0), spacing=(0.5, 0.5, 1))
    >>> df = pd.DataFrame({"coordX": [5.0], "coordY": [5.0], "coordZ": [5.0], "diameter_mm": [10.0]})
    >>> nodule_circles_on_slice(df, scan, "axial", 2)[0].radius_px * 0.5  # 0.5 mm pixels
    4.0
    """
    if nodules_df is None or len(nodules_df) == 0:
        return []
    geo = plane_geometry(scan.shape, scan.spacing_zyx_mm, plane)
    centres_zyx = scan.world_to_voxel(nodules_df[["coordX", "coordY", "coordZ"]].to_numpy(float))
    diameters = nodules_df["diameter_mm"].to_numpy(float)
    diameters = np.where(diameters > 0, diameters, UNKNOWN_DIAMETER_MM)
    slice_spacing = scan.spacing_zyx_mm[geo.slice_axis]
    circles = []
    for centre, diameter in zip(centres_zyx, diameters, strict=True):
        h_mm = (int(index) - centre[geo.slice_axis]) * slice_spacing
        r2 = (diameter / 2.0) ** 2 - h_mm**2
        if r2 <= 0:
            continue
        row, col = plane_point(scan, plane, tuple(centre))
        circles.append(SliceCircle(row, col, float(np.sqrt(r2)) / geo.col_spacing_mm, style))
    return circles


def draw_circles(image: np.ndarray, circles: list[SliceCircle], *, width: int = 2) -> np.ndarray:
    """``image`` (RGB, or indexed 2D) with the circles drawn: solid "nodule", others dashed."""
    if not circles:
        return image
    from PIL import Image, ImageDraw

    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    for c in circles:
        if image.ndim == 2:
            color: int | tuple[int, int, int] = STYLE_INDEX.get(c.style, CROSSHAIR_INDEX)
        else:
            color = STYLE_COLORS.get(c.style, (255, 255, 255))
        r = max(c.radius_px, 1.5)
        box = (c.col - r, c.row - r, c.col + r, c.row + r)
        if c.style == "nodule":
            draw.ellipse(box, outline=color, width=width)
        else:
            for start in range(0, 360, 30):  # 12 dashes
                draw.arc(box, start, start + 18, fill=color, width=width)
    return np.asarray(pil)


def draw_crosshair(image: np.ndarray, row: float, col: float) -> np.ndarray:
    """``image`` (RGB, or indexed 2D; copied) with a dotted crosshair through ``(row, col)``."""
    out = image.copy()
    color = CROSSHAIR_INDEX if image.ndim == 2 else CROSSHAIR_COLOR
    r, c = round(row), round(col)
    h, w = out.shape[:2]
    if 0 <= r < h:
        out[r, ::3] = color
    if 0 <= c < w:
        out[::3, c] = color
    return out


def to_png(image: np.ndarray, *, indexed: bool | None = None) -> bytes:
    """PNG bytes of an RGB or grey uint8 image, fast compression.

    ``indexed`` (default: True for 2D arrays) writes a palette PNG with `PALETTE`, for the
    images of ``render_slice(..., indexed=True)``; ``indexed=False`` writes 2D arrays as grey.
    """
    from PIL import Image

    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 2 and (indexed is None or indexed):
        pil = Image.frombytes("P", (image.shape[1], image.shape[0]), image.tobytes())
        pil.putpalette(PALETTE)
    else:
        pil = Image.fromarray(image)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _shown(scan: Scan) -> Scan:
    from nodulekit.preprocess.orient import reorient_to_lps

    return reorient_to_lps(scan)  # the same object for an LPS scan: no copy


def plane_size(scan: Scan, plane: str) -> tuple[int, int]:
    """Rendered ``(height, width)`` in pixels of ``plane`` of the scan as shown (LPS)."""
    scan = _shown(scan)
    geo = plane_geometry(scan.shape, scan.spacing_zyx_mm, plane)
    return geo.n_rows, geo.n_cols


def plane_rgb(
    scan: Scan,
    plane: str = "axial",
    index: int | None = None,
    *,
    window: Window = "lung",
    nodules: pd.DataFrame | None = None,
    excluded: pd.DataFrame | None = None,
    crosshair_zyx: tuple[float, float, float] | None = None,
    indexed: bool = False,
) -> np.ndarray:
    """Slice ``index`` of ``plane``, windowed, with the findings that cross it drawn.

    Parameters
    ----------
    scan : Scan
        Shown reoriented to LPS (`reorient_to_lps`; no copy when it already is LPS).
    plane : {"axial", "coronal", "sagittal"}
    index : int, optional
        Slice number along the plane's axis of the LPS array (`PLANE_AXIS`); middle if omitted.
    window : str or (level_hu, width_hu)
    nodules, excluded : DataFrame, optional
        ``coordX, coordY, coordZ`` (world mm) and ``diameter_mm``: nodules as solid red
        circles, excluded findings as dashed yellow ones, at their true size on this slice.
    crosshair_zyx : (z, y, x), optional
        A voxel of the LPS array marked with a dotted crosshair (a viewer's cursor).
    indexed : bool
        Return a 2D palette image (`PALETTE`) instead of RGB: the fast path for `to_png`.

    Returns
    -------
    ndarray of uint8, ``(H, W, 3)`` (``(H, W)`` if ``indexed``), H and W as `plane_size`.
    """
    scan = _shown(scan)
    if index is None:
        index = scan.shape[PLANE_AXIS[plane]] // 2 if plane in PLANE_AXIS else 0
    image = render_slice(scan, plane, index, window=window, indexed=True)
    circles = nodule_circles_on_slice(excluded, scan, plane, index, style="excluded")
    circles += nodule_circles_on_slice(nodules, scan, plane, index)
    image = draw_circles(image, circles)
    if crosshair_zyx is not None:
        image = draw_crosshair(image, *plane_point(scan, plane, crosshair_zyx))
    if indexed:
        return image
    return np.asarray(PALETTE, np.uint8).reshape(256, 3)[image]


def plane_png(
    scan: Scan,
    plane: str = "axial",
    index: int | None = None,
    *,
    window: Window = "lung",
    nodules: pd.DataFrame | None = None,
    excluded: pd.DataFrame | None = None,
    crosshair_zyx: tuple[float, float, float] | None = None,
) -> bytes:
    """`plane_rgb` as PNG bytes (a palette PNG, the fast path an image widget shows)."""
    return to_png(
        plane_rgb(scan, plane, index, window=window, nodules=nodules, excluded=excluded,
                  crosshair_zyx=crosshair_zyx, indexed=True)
    )  # fmt: skip


def slice_figure(
    scan: Scan,
    plane: str = "axial",
    index: int | None = None,
    *,
    nodules: pd.DataFrame | None = None,
    excluded: pd.DataFrame | None = None,
    window: Window = "lung",
    ax: Axes | None = None,
) -> Figure:
    """`plane_rgb` in a matplotlib figure: nodules solid red, excluded findings dashed yellow.

    Draws into ``ax`` when given and returns its figure; axes are in rendered pixels and
    ``index`` means what it means for `plane_rgb` (along the LPS array).
    """
    rgb = plane_rgb(scan, plane, index, window=window, nodules=nodules, excluded=excluded)
    if index is None:
        index = _shown(scan).shape[PLANE_AXIS[plane]] // 2
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5, 5 * rgb.shape[0] / rgb.shape[1]))
        ax = fig.subplots()
    else:
        fig = ax.figure
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title(f"{plane} {index}")
    ax.set_axis_off()
    return fig
