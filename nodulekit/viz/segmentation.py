"""Segmentation pictures: masks and contours over a slice, readers' outlines, candidate recall.

Pure functions, data in, picture out. Colours keep one meaning everywhere: the annotation (the
truth, or LIDC's consensus) is green, the prediction red, and each LIDC reader has a colour of
their own (`READER_COLOURS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

#: RGB of the annotation (truth, consensus) and of the prediction
ANNOTATION_COLOUR = (40, 220, 90)
PREDICTION_COLOUR = (240, 50, 50)
#: RGB of LIDC readers 1-4 (then repeated): blue, orange, magenta, yellow
READER_COLOURS = ((60, 140, 255), (255, 150, 30), (230, 60, 230), (250, 230, 40))

__all__ = [
    "ANNOTATION_COLOUR",
    "PREDICTION_COLOUR",
    "READER_COLOURS",
    "candidate_recall_figure",
    "contour",
    "mask_overlay_rgb",
    "reader_contours_figure",
    "segmentation_figure",
]


def contour(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a 2D mask: inside pixels with a 4-neighbour outside.

    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> int(contour(m).sum())   # a 3x3 square: all but its centre
    8
    """
    mask = np.asarray(mask, bool)
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _grey(image_hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    low, high = window
    scaled = np.clip((np.asarray(image_hu, float) - low) / (high - low), 0, 1)
    return np.repeat((scaled * 255).astype(np.uint8)[..., None], 3, axis=2)


def mask_overlay_rgb(
    image_hu: np.ndarray,
    layers: Sequence[tuple[np.ndarray, tuple[int, int, int]]],
    *,
    window: tuple[float, float] = (-1000.0, 400.0),
    fill_alpha: float = 0.0,
    zoom: int = 1,
) -> np.ndarray:
    """A slice (HU, windowed to grey) with each mask's contour in its colour, uint8 (H, W, 3).

    Parameters
    ----------
    image_hu : ndarray (H, W)
        The slice in HU.
    layers : sequence of (mask (H, W), RGB)
        Drawn in order (a later contour covers an earlier one where they coincide).
    fill_alpha : float
        Also tint each mask's inside with its colour at this opacity (0: contours only).
    zoom : int
        Pixel replication before drawing, so that contours stay one pixel thin on a small crop.
    """
    zoom = max(1, int(zoom))
    grow = (lambda a: np.kron(a, np.ones((zoom, zoom), a.dtype))) if zoom > 1 else (lambda a: a)
    rgb = _grey(grow(np.asarray(image_hu, float)), window).astype(float)
    for mask, colour in layers:
        mask = grow(np.asarray(mask, bool))
        if mask.shape != rgb.shape[:2]:
            raise ValueError(f"mask {mask.shape} and slice {rgb.shape[:2]} differ in shape")
        if fill_alpha > 0:
            rgb[mask] = (1 - fill_alpha) * rgb[mask] + fill_alpha * np.asarray(colour, float)
        rgb[contour(mask)] = colour
    return rgb.round().astype(np.uint8)


def _crop_2d(centre_yx: Sequence[float], shape_yx: Sequence[int], size_px: int) -> tuple:
    """A ``size_px`` square around ``centre_yx``, shifted to stay inside the slice."""
    out = []
    for c, n in zip(centre_yx, shape_yx, strict=True):
        size = min(int(size_px), int(n))
        start = int(np.clip(round(c) - size // 2, 0, n - size))
        out.append(slice(start, start + size))
    return tuple(out)


def _centre(masks: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    found = [np.argwhere(m) for m in masks if m is not None and np.any(m)]
    return np.concatenate(found).mean(axis=0) if found else np.asarray(shape) / 2


def segmentation_figure(
    image_hu: np.ndarray,
    *,
    truth: np.ndarray | None = None,
    probability: np.ndarray | None = None,
    threshold: float = 0.5,
    z: int | None = None,
    size_px: int = 64,
    window: tuple[float, float] = (-1000.0, 400.0),
    title: str | None = None,
) -> Figure:
    """The slice, the annotation (green) and the prediction (red) as contours, the probability.

    Parameters
    ----------
    image_hu : ndarray (z, y, x)
        The scan's voxels (HU).
    truth, probability : ndarray (z, y, x), optional
        The annotated mask and the predicted probability on the scan's grid.
    z : int, optional
        The axial slice (default: the centre of the annotation, else of the prediction).
    size_px : int
        The shown square around the nodule, in pixels.
    """
    from matplotlib.figure import Figure

    predicted = None if probability is None else probability >= threshold
    centre = _centre([truth, predicted], image_hu.shape)
    z = int(np.rint(centre[0])) if z is None else int(z)
    box = _crop_2d(centre[1:], image_hu.shape[1:], size_px)
    layers = []
    if truth is not None:
        layers.append((truth[z][box], ANNOTATION_COLOUR))
    if predicted is not None:
        layers.append((predicted[z][box], PREDICTION_COLOUR))
    panels = 3 if probability is not None else 2
    fig = Figure(figsize=(3.2 * panels, 3.4), layout="constrained")
    axes = fig.subplots(1, panels)
    axes[0].imshow(_grey(image_hu[z][box], window))
    axes[0].set_title(f"slice {z}")
    axes[1].imshow(mask_overlay_rgb(image_hu[z][box], layers, window=window, zoom=4))
    axes[1].set_title("annotation (green), prediction (red)", fontsize=9)
    if probability is not None:
        shown = axes[2].imshow(probability[z][box], vmin=0, vmax=1, cmap="magma")
        axes[2].set_title("nodule probability")
        fig.colorbar(shown, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def reader_contours_figure(
    image_hu: np.ndarray,
    readers: Mapping[Any, np.ndarray],
    *,
    consensus: np.ndarray | None = None,
    z: int | None = None,
    size_px: int = 64,
    window: tuple[float, float] = (-1000.0, 400.0),
    title: str | None = None,
) -> Figure:
    """Each reader's outline in a colour of its own, the consensus in green; and the agreement.

    Parameters
    ----------
    image_hu : ndarray (z, y, x)
        The scan (HU).
    readers : {reader: mask (z, y, x)}
        One mask per reader (`nodulekit.data.lidc.LidcSeries.reader_masks`).
    consensus : ndarray (z, y, x), optional
        The consensus mask, drawn in green on top.

    The right panel counts, per pixel, how many readers included it: where they disagree.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    masks = list(readers.values())
    centre = _centre([consensus, *masks], image_hu.shape)
    z = int(np.rint(centre[0])) if z is None else int(z)
    box = _crop_2d(centre[1:], image_hu.shape[1:], size_px)
    layers = [(m[z][box], READER_COLOURS[i % len(READER_COLOURS)]) for i, m in enumerate(masks)]
    if consensus is not None:
        layers.append((consensus[z][box], ANNOTATION_COLOUR))
    fig = Figure(figsize=(7.2, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.imshow(mask_overlay_rgb(image_hu[z][box], layers, window=window, zoom=4))
    handles = [
        Patch(color=np.asarray(READER_COLOURS[i % len(READER_COLOURS)]) / 255, label=f"reader {r}")
        for i, r in enumerate(readers)
    ]
    if consensus is not None:
        handles.append(Patch(color=np.asarray(ANNOTATION_COLOUR) / 255, label="consensus"))
    left.legend(handles=handles, fontsize=7, loc="lower left", framealpha=0.7)
    left.set_title(f"readers' outlines, slice {z}", fontsize=9)
    count = (
        np.sum([m[z][box] for m in masks], axis=0) if masks else np.zeros(image_hu[z][box].shape)
    )
    shown = right.imshow(count, vmin=0, vmax=max(1, len(masks)), cmap="viridis")
    right.set_title("readers including each pixel", fontsize=9)
    fig.colorbar(shown, ax=right, shrink=0.8, ticks=range(len(masks) + 1))
    for ax in (left, right):
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def candidate_recall_figure(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Nodule recall against candidates per scan, one line per candidate source.

    ``table``: `nodulekit.evaluate.segment_candidates.candidate_recall` (``source``,
    ``candidates_per_scan``, ``recall``; optionally ``data`` for one panel per data set).
    """
    from matplotlib.figure import Figure

    groups = list(table.groupby("data", sort=False)) if "data" in table else [(None, table)]
    fig = Figure(figsize=(4.2 * len(groups), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(groups)))
    for ax, (name, part) in zip(axes, groups, strict=True):
        for source, rows in part.groupby("source", sort=False):
            rows = rows.sort_values("candidates_per_scan")
            ax.plot(rows.candidates_per_scan, rows.recall, marker="o", ms=3, label=source)
        ax.set_xscale("log")
        ax.set(xlabel="candidates per scan", ylabel="nodule recall", ylim=(0, 1.02))
        nodules = int(part["nodules"].iloc[0]) if "nodules" in part and len(part) else 0
        ax.set_title(f"{name or 'candidates'} ({nodules} nodules)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    return fig
