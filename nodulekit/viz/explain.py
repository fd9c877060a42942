"""Pictures of explanations: a map over the CT in three planes, a montage, the trust checks.

Pure functions, data in, a matplotlib ``Figure`` (not registered with pyplot) or an RGB
``uint8`` array out. A `Crop` keeps its scan's direction (a RAS NIfTI, a series stacked head
to feet), so a crop and its map are first turned to LPS by the signs of that direction
(`crop_to_lps`, the crop-sized counterpart of `nodulekit.preprocess.orient.reorient_to_lps`
that `nodulekit.viz.slices.plane_rgb` uses); slice indices (``index_zyx``) then count along
the LPS axes, nodule centres stay in the crop's own voxel index. A bare array is taken as LPS.
Planes follow `nodulekit.viz.slices` (superior at the top):

=========  ==========  =====================  =======
plane      slice axis  rows                   columns
=========  ==========  =====================  =======
axial      z           y                      x
coronal    y           z, reversed            x
sagittal   x           z, reversed            y
=========  ==========  =====================  =======

Colour scales are honest: an unsigned map (Grad-CAM, saliency, SmoothGrad) runs from 0 (no
attribution, transparent-looking dark) to the crop's largest value; a signed map
(integrated gradients, occlusion, guided Grad-CAM) uses a diverging map centred on 0 (white:
no effect; red: raises the nodule probability; blue: lowers it), symmetric about 0. Every
figure carries its method's trust status (`nodulekit.explain.trust_status`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from nodulekit.preprocess.crop import Crop
from nodulekit.viz.slices import Window, window_lut

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLANES = ("axial", "coronal", "sagittal")
SIGNED_CMAP = "RdBu_r"
UNSIGNED_CMAP = "inferno"
OUTLINE_COLOR = (0, 255, 120)


def _status_text(trust: Any) -> str:
    from nodulekit.explain.sanity import trust_status

    if isinstance(trust, str):
        return trust
    return trust_status(trust)


def map_scale(amap: np.ndarray, signed: bool) -> tuple[float, float]:
    """``(vmin, vmax)`` of the colour bar: ``(0, max)`` or ``(-m, m)`` with ``m = max |map|``.

    >>> map_scale(np.array([-1.0, 3.0]), True)
    (-3.0, 3.0)
    >>> map_scale(np.array([0.0, 2.0]), False)
    (0.0, 2.0)
    """
    top = float(np.max(np.abs(amap))) if amap.size else 0.0
    top = top if top > 0 and np.isfinite(top) else 1.0
    return (-top, top) if signed else (0.0, top)


def colorbar_label(signed: bool) -> str:
    """What the colours mean, in words."""
    if signed:
        return "0 (white) = no effect; red raises, blue lowers the nodule probability"
    return "0 (dark) = no attribution; bright = most evidence for 'nodule' in this crop"


def colorbar_rgb(signed: bool, *, width: int = 256, height: int = 12) -> np.ndarray:
    """The colour bar as an RGB ``uint8`` strip, left = ``vmin``, right = ``vmax``.

    For a signed map the middle (white) is 0; for an unsigned one the left end (dark) is 0.
    """
    lut = _cmap_lut(SIGNED_CMAP if signed else UNSIGNED_CMAP)
    ramp = lut[np.rint(np.linspace(0, 255, int(width))).astype(np.int32)]
    return np.repeat(ramp[None], int(height), axis=0)


def plane_of(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2D slice of a ``(z, y, x)`` volume in the table's orientation."""
    if plane == "axial":
        return volume[index]
    if plane == "coronal":
        return volume[:, index, :][::-1]
    if plane == "sagittal":
        return volume[:, :, index][::-1]
    raise ValueError(f"plane must be one of {PLANES}, not {plane!r}")


def _plane_axes(plane: str) -> tuple[int, int, int]:
    """(slice axis, row axis, column axis) of a plane, as (z, y, x) positions."""
    return {"axial": (0, 1, 2), "coronal": (1, 0, 2), "sagittal": (2, 0, 1)}[plane]


def outline_circle(
    plane: str,
    index: int,
    shape_zyx: Sequence[int],
    center_zyx_vox: Sequence[float],
    radius_zyx_vox: Sequence[float],
) -> tuple[float, float, float, float] | None:
    """``(row, col, row_radius, col_radius)`` of a sphere's cut by a slice, in image pixels.

    ``None`` when the slice misses the sphere. Rows follow the plane's orientation (reversed
    z for the vertical planes).
    """
    axis, row_axis, col_axis = _plane_axes(plane)
    distance = (index - center_zyx_vox[axis]) / radius_zyx_vox[axis]
    if abs(distance) >= 1:
        return None
    shrink = float(np.sqrt(1 - distance**2))
    row = float(center_zyx_vox[row_axis])
    if plane != "axial":
        row = shape_zyx[0] - 1 - row
    col = float(center_zyx_vox[col_axis])
    return row, col, shrink * radius_zyx_vox[row_axis], shrink * radius_zyx_vox[col_axis]


@lru_cache(maxsize=8)
def _cmap_lut(name: str) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def _grey(image_hu: np.ndarray, window: Window) -> np.ndarray:
    lut = window_lut(window)
    return lut[np.clip(np.rint(image_hu), -32768, 32767).astype(np.int32) + 32768]


def overlay_rgb(
    ct_hu: np.ndarray,
    amap: np.ndarray,
    *,
    signed: bool,
    scale: tuple[float, float] | None = None,
    opacity: float = 0.5,
    window: Window = "lung",
    outline: tuple[float, float, float, float] | None = None,
    zoom: int = 8,
) -> np.ndarray:
    """One 2D slice: CT in a window with the map blended over it, as RGB ``uint8``.

    Fast (numpy lookup tables; about a millisecond for a 24 x 24 slice at ``zoom=8``), for
    the explorer widget. ``scale`` is the colour bar's ``(vmin, vmax)`` (default `map_scale`
    of this slice; pass the whole map's so that slices compare). Unsigned maps are blended in
    proportion to their value, so zero leaves the CT untouched; signed maps in proportion to
    their magnitude. ``outline`` (from `outline_circle`) draws the nodule's outline.
    """
    vmin, vmax = scale if scale is not None else map_scale(amap, signed)
    position = np.clip((amap - vmin) / (vmax - vmin), 0, 1)
    colours = _cmap_lut(SIGNED_CMAP if signed else UNSIGNED_CMAP)[
        np.rint(position * 255).astype(np.int32)
    ]
    weight = np.abs(2 * position - 1) if signed else position
    alpha = (float(np.clip(opacity, 0, 1)) * weight)[..., None]
    grey = _grey(ct_hu, window)[..., None].astype(np.float32)
    rgb = (grey * (1 - alpha) + colours.astype(np.float32) * alpha).astype(np.uint8)
    zoom = max(1, int(zoom))
    rgb = np.repeat(np.repeat(rgb, zoom, axis=0), zoom, axis=1)
    if outline is not None:
        _draw_ellipse(rgb, outline, zoom)
    return rgb


def _draw_ellipse(rgb: np.ndarray, outline: tuple[float, float, float, float], zoom: int) -> None:
    row, col, r_row, r_col = (v * zoom for v in outline)
    row, col = row + zoom / 2 - 0.5, col + zoom / 2 - 0.5
    angles = np.linspace(0, 2 * np.pi, 360)
    rows = np.rint(row + r_row * np.sin(angles)).astype(int)
    cols = np.rint(col + r_col * np.cos(angles)).astype(int)
    keep = (rows >= 0) & (rows < rgb.shape[0]) & (cols >= 0) & (cols < rgb.shape[1])
    rgb[rows[keep], cols[keep]] = OUTLINE_COLOR


def _lps_plan(direction: Sequence[float]) -> tuple[tuple[int, int, int], tuple[bool, ...]]:
    """``(source, flip)``: LPS numpy axis ``d`` is source axis ``source[d]``; ``flip[a]``: axis
    ``a`` of the source runs against its world axis. Oblique directions go to the nearest axes."""
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)  # column j: index axis j in world
    source, flip = [0, 0, 0], [False, False, False]
    for j in range(3):  # index axis x, y, z = numpy axis 2 - j
        world = int(np.argmax(np.abs(matrix[:, j])))
        source[2 - world] = 2 - j
        flip[2 - j] = bool(matrix[world, j] < 0)
    if sorted(source) != [0, 1, 2]:
        raise ValueError(f"the direction {tuple(direction)} has no nearest LPS axes")
    return tuple(source), tuple(flip)  # type: ignore[return-value]


def lps_index(center_zyx_vox: Sequence[float], crop: Crop) -> np.ndarray:
    """A (continuous) voxel index ``(z, y, x)`` of ``crop`` as an index of its LPS array."""
    source, flip = _lps_plan(crop.direction)
    shape = crop.array.shape
    point = np.asarray(center_zyx_vox, dtype=float).copy()
    for a in range(3):
        if flip[a]:
            point[a] = shape[a] - 1 - point[a]
    return point[list(source)]


def crop_to_lps(crop: Crop, *volumes: np.ndarray) -> tuple[np.ndarray, ...]:
    """The crop's array and ``volumes`` (maps on its grid) with axes running L, P, S.

    Flips (and, for a permuted direction, transposes) the array axes whose direction points
    the other way, so that a plane drawn from the result has superior up and the patient's
    left on the right, whatever the scan's direction; an LPS crop comes back as it is.
    """
    source, flip = _lps_plan(crop.direction)
    flips = tuple(a for a in range(3) if flip[a])
    out = []
    for volume in (crop.array, *volumes):
        array = np.asarray(volume)
        if array.shape != crop.array.shape:
            raise ValueError(
                f"the map has shape {array.shape}, the crop {crop.array.shape}; they must match"
            )
        array = np.flip(array, axis=flips) if flips else array
        out.append(np.transpose(array, source) if source != (0, 1, 2) else array)
    return tuple(out)


def _inputs(
    ct: np.ndarray | Crop, amap: np.ndarray, center_zyx_vox: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], np.ndarray | None]:
    """``(ct, map, voxel size (z, y, x), nodule centre)`` in LPS: a Crop is turned to LPS
    (`crop_to_lps`, its own voxel size); a bare array is taken as LPS with 1 mm voxels."""
    amap = np.asarray(amap)
    if isinstance(ct, Crop):
        array, shown = crop_to_lps(ct, amap)
        source, _ = _lps_plan(ct.direction)
        spacing_zyx_mm = [float(v) for v in ct.spacing[::-1]]
        centre = None if center_zyx_vox is None else lps_index(center_zyx_vox, ct)
        return array, shown, tuple(spacing_zyx_mm[a] for a in source), centre  # type: ignore[return-value]
    array = np.asarray(ct)
    if array.ndim != 3:
        raise ValueError(f"the CT must be a (z, y, x) crop, not an array of shape {array.shape}")
    if amap.shape != array.shape:
        raise ValueError(f"the map has shape {amap.shape}, the crop {array.shape}; they must match")
    centre = None if center_zyx_vox is None else np.asarray(center_zyx_vox, dtype=float)
    return array, amap, (1.0, 1.0, 1.0), centre


def _slices(
    shape: Sequence[int],
    index_zyx: Sequence[int] | None,
    nodule_center_zyx_vox: Sequence[float] | None,
) -> list[int]:
    """Slice indices: as given, else through the nodule's centre, else the crop's centre."""
    if index_zyx is not None:
        index = [int(i) for i in index_zyx]
    elif nodule_center_zyx_vox is not None:
        index = [round(float(c)) for c in nodule_center_zyx_vox]
    else:
        index = [n // 2 for n in shape]
    if len(index) != 3 or any(not 0 <= i < n for i, n in zip(index, shape, strict=False)):
        raise IndexError(f"index_zyx must be 3 slices inside the crop {tuple(shape)}, not {index}")
    return index


def explain_rgb(
    ct: np.ndarray | Crop,
    amap: np.ndarray,
    *,
    signed: bool,
    index_zyx: Sequence[int] | None = None,
    nodule_center_zyx_vox: Sequence[float] | None = None,
    nodule_diameter_mm: float | None = None,
    opacity: float = 0.5,
    window: Window = "lung",
    zoom: int = 8,
    gap: int = 4,
    voxel_zyx_mm: Sequence[float] | None = None,
) -> np.ndarray:
    """The three planes side by side as one RGB ``uint8`` image (the explorer's picture).

    ``index_zyx`` is the slice of each plane along the LPS axes (default: through the nodule's
    centre when given, else the crop's centre, where a candidate sits); a Crop is shown in LPS
    whatever its scan's direction (`crop_to_lps`); the colour scale is
    the whole map's (`map_scale`), so the three planes compare. The nodule's outline is drawn
    where its sphere cuts each plane; ``voxel_zyx_mm`` sizes it for a bare array (a Crop
    knows its own voxel size; 1 mm otherwise).
    """
    array, amap, spacing, nodule_center_zyx_vox = _inputs(ct, amap, nodule_center_zyx_vox)
    if voxel_zyx_mm is not None and not isinstance(ct, Crop):
        spacing = tuple(float(v) for v in voxel_zyx_mm)
    index = _slices(array.shape, index_zyx, nodule_center_zyx_vox)
    scale = map_scale(amap, signed)
    radius = None
    if nodule_center_zyx_vox is not None and nodule_diameter_mm and nodule_diameter_mm > 0:
        radius = [nodule_diameter_mm / 2 / s for s in spacing]
    panels = []
    for plane in PLANES:
        axis = _plane_axes(plane)[0]
        outline = None
        if radius is not None:
            outline = outline_circle(plane, index[axis], array.shape, nodule_center_zyx_vox, radius)
        panels.append(
            overlay_rgb(
                plane_of(array, plane, index[axis]),
                plane_of(amap, plane, index[axis]),
                signed=signed,
                scale=scale,
                opacity=opacity,
                window=window,
                outline=outline,
                zoom=zoom,
            )
        )
    height = max(p.shape[0] for p in panels)
    spacer = np.full((height, gap, 3), 255, np.uint8)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0))) for p in panels]
    return np.concatenate([padded[0], spacer, padded[1], spacer, padded[2]], axis=1)


def _imshow_plane(
    ax: Axes,
    array: np.ndarray,
    amap: np.ndarray,
    plane: str,
    index: int,
    spacing: Sequence[float],
    *,
    signed: bool,
    scale: tuple[float, float],
    opacity: float,
    window: Window,
) -> Any:
    from nodulekit.viz.slices import window_range

    _, row_axis, col_axis = _plane_axes(plane)
    low, high = window_range(window)
    ax.imshow(plane_of(array, plane, index), cmap="gray", vmin=low, vmax=high)
    aspect = spacing[row_axis] / spacing[col_axis]
    ax.set_aspect(aspect)
    shown = plane_of(amap, plane, index)
    alpha = np.abs(shown) / max(abs(scale[0]), abs(scale[1]))
    image = ax.imshow(
        shown,
        cmap=SIGNED_CMAP if signed else UNSIGNED_CMAP,
        vmin=scale[0],
        vmax=scale[1],
        alpha=np.clip(opacity * alpha, 0, 1),
    )
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def explain_figure(
    ct: np.ndarray | Crop,
    amap: np.ndarray,
    *,
    signed: bool,
    method: str,
    trust: Any = None,
    index_zyx: Sequence[int] | None = None,
    nodule_center_zyx_vox: Sequence[float] | None = None,
    nodule_diameter_mm: float | None = None,
    probability: float | None = None,
    opacity: float = 0.6,
    window: Window = "lung",
    figsize: tuple[float, float] = (10.0, 4.0),
) -> Figure:
    """Axial, coronal and sagittal planes through a candidate with its map, for a paper.

    Parameters
    ----------
    ct : Crop or (D, H, W) HU array
        The candidate's crop (a Crop gives the voxel size, so the planes keep their aspect).
    amap : (D, H, W)
        Its attribution map (one of ``Attribution.maps``).
    signed : bool
        ``Attribution.signed``: diverging colours centred on 0, or 0-to-max.
    method : str
        Shown in the title.
    trust : SanityReport, str or None
        The trust status printed under the planes (``None``: "not checked").
    index_zyx : 3 ints, optional
        Slices through the crop (default: through the nodule's centre when given, else the
        crop's centre, where the candidate is).
    nodule_center_zyx_vox, nodule_diameter_mm : optional
        The annotated nodule, outlined in green where it cuts each plane.
    probability : float, optional
        The model's nodule probability, shown in the title.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse

    array, amap, spacing, nodule_center_zyx_vox = _inputs(ct, amap, nodule_center_zyx_vox)
    index = _slices(array.shape, index_zyx, nodule_center_zyx_vox)
    scale = map_scale(amap, signed)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, 3)
    image = None
    for ax, plane in zip(axes, PLANES, strict=True):
        axis = _plane_axes(plane)[0]
        image = _imshow_plane(
            ax, array, amap, plane, index[axis], spacing,
            signed=signed, scale=scale, opacity=opacity, window=window,
        )  # fmt: skip
        ax.set_title(f"{plane} (slice {index[axis]})", fontsize=9)
        if nodule_center_zyx_vox is not None and nodule_diameter_mm:
            radius = [nodule_diameter_mm / 2 / s for s in spacing]
            cut = outline_circle(plane, index[axis], array.shape, nodule_center_zyx_vox, radius)
            if cut is not None:
                row, col, r_row, r_col = cut
                ax.add_patch(
                    Ellipse((col, row), 2 * r_col, 2 * r_row, fill=False, ec="lime", lw=1.2)
                )
    bar = fig.colorbar(image, ax=list(axes), shrink=0.8, pad=0.02)
    bar.set_label(colorbar_label(signed), fontsize=7)
    title = f"{method}" + (f" (nodule probability {probability:.2f})" if probability else "")
    fig.suptitle(title)
    fig.text(0.5, 0.01, _status_text(trust), ha="center", va="bottom", fontsize=8, wrap=True)
    return fig


def montage_figure(
    cts: Sequence[np.ndarray | Crop],
    maps: Mapping[str, Any],
    *,
    trust: Mapping[str, Any] | None = None,
    labels: Sequence[str] | None = None,
    opacity: float = 0.6,
    window: Window = "lung",
    cell_inches: float = 1.8,
) -> Figure:
    """Candidates (rows) x methods (columns): the axial plane through each candidate.

    ``maps`` maps a method name to its `Attribution` (or ``(maps, signed)``) over the same
    crops as ``cts``; ``trust`` maps a method to its `SanityReport` (or status text), printed
    as each column's footnote; ``labels`` name the rows (e.g. "p = 0.93, nodule").
    """
    from matplotlib.figure import Figure

    methods = list(maps)
    rows, cols = len(cts), len(methods)
    fig = Figure(figsize=(cell_inches * cols + 0.6, cell_inches * rows + 1.2), layout="constrained")
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for c, method in enumerate(methods):
        entry = maps[method]
        stack, signed = (entry.maps, entry.signed) if hasattr(entry, "maps") else entry
        for r, ct in enumerate(cts):
            array, amap, spacing, _ = _inputs(ct, np.asarray(stack[r]))
            _imshow_plane(
                axes[r, c], array, amap, "axial", array.shape[0] // 2, spacing,
                signed=signed, scale=map_scale(amap, signed), opacity=opacity, window=window,
            )  # fmt: skip
            if labels is not None and c == 0:
                axes[r, c].set_ylabel(labels[r], fontsize=8)
        status = _status_text((trust or {}).get(method))
        short = status.split(":")[0]
        axes[0, c].set_title(f"{method}\n{short}", fontsize=8)
    fig.suptitle(
        "Colours scaled per crop.\nUnsigned: 0 dark to max.\nSigned: blue < 0 (white) < red.",
        fontsize=7,
    )
    return fig


def sanity_figure(reports: Sequence[Any], *, figsize: tuple[float, float] = (6.0, 3.6)) -> Figure:
    """Rank correlation with the original maps as the model is randomised from the head down.

    One line per `SanityReport`; the dashed line is the verdict threshold; each method's
    verdict is in the legend.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    for report in reports:
        table = report.table
        verdict = "passed" if report.passed else "FLAGGED"
        ax.plot(
            table["step"], table["spearman_mean"], marker="o", ms=3,
            label=f"{report.method}: {verdict}",
        )  # fmt: skip
    if reports:
        ax.axhline(reports[0].threshold, ls="--", c="grey", lw=1, label="threshold")
        names = reports[0].table["randomised"].tolist()
        ax.set_xticks(range(len(names)), ["trained", *names[1:]], rotation=30, fontsize=7)
    ax.set_ylim(-0.2, 1.05)
    ax.set_xlabel("blocks randomised (head first)")
    ax.set_ylabel("Spearman rank correlation")
    ax.set_title("Sanity check: do the maps change when the model is scrambled?", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def deletion_figure(results: Sequence[Any], *, figsize: tuple[float, float] = (6.0, 3.6)) -> Figure:
    """Deletion curves (`DeletionResult`): probability as the most-attributed voxels turn to air.

    Solid: the method's order; dashed: a random order. Lower area = more faithful.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    for result in results:
        curve = result.curve
        mine = curve[curve["order"] == "attribution"]
        line = ax.plot(
            mine["fraction_deleted"], mine["probability_mean"],
            label=f"{result.method} (AUC {result.auc_attribution:.3f})",
        )[0]  # fmt: skip
        random = curve[curve["order"] == "random"]
        ax.plot(
            random["fraction_deleted"], random["probability_mean"], ls="--",
            color=line.get_color(), label=f"random order (AUC {result.auc_random:.3f})",
        )  # fmt: skip
    ax.set_xlabel("fraction of voxels replaced with air")
    ax.set_ylabel("nodule probability")
    ax.set_ylim(0, 1)
    ax.set_title("Deletion: a faithful map makes the probability fall fast", fontsize=9)
    ax.legend(fontsize=7)
    return fig
