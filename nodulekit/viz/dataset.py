"""Pictures of a data set as a whole: the nodule-diameter histogram and the summary box.

`diameter_histogram_rgb` is drawn with Pillow (a few milliseconds, for widgets);
`diameter_histogram_png` encodes it; `diameter_histogram_figure` is the matplotlib version for
notebooks and reports; `summary_html` writes `nodulekit.data.series.dataset_summary` as HTML.
Texts drawn with Pillow's default font stay in characters that font has (ASCII), so no
missing-glyph box shows up.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

from nodulekit.viz.slices import STYLE_COLORS, to_png

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: Histogram bin width (mm).
BIN_MM = 3.0


def diameter_bins(diameters_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, edges_mm)`` of the measured diameters (> 0) in `BIN_MM` bins from 0 mm.

    The last edge is at least 33 mm and past the largest diameter.

    >>> counts, edges = diameter_bins(np.array([4.0, 5.0, 7.5, -1.0]))
    >>> counts[:3].tolist(), float(edges[-1])
    ([0, 2, 1], 33.0)
    """
    d = np.asarray(diameters_mm, float)
    d = d[d > 0]
    top = max(33.0, float(np.floor(d.max() / BIN_MM) * BIN_MM + BIN_MM)) if d.size else 33.0
    edges = np.arange(0.0, top + BIN_MM / 2, BIN_MM)
    counts, _ = np.histogram(d, bins=edges)
    return counts, edges


def diameter_histogram_rgb(
    diameters_mm: np.ndarray, *, width_px: int = 320, height_px: int = 110
) -> np.ndarray:
    """A small bar chart of nodule diameters (`BIN_MM` bins) as RGB ``uint8`` ``(H, W, 3)``.

    Rows with ``diameter_mm <= 0`` (LUNA16's "not measured") are left out.
    """
    from PIL import Image, ImageDraw

    counts, edges = diameter_bins(diameters_mm)
    n = int(counts.sum())
    image = Image.new("RGB", (width_px, height_px), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    top = max(int(counts.max()), 1)
    base = height_px - 20
    bar_w = (width_px - 20) / len(counts)
    for i, c in enumerate(counts):
        x0 = 10 + i * bar_w
        y0 = base - (height_px - 40) * c / top
        draw.rectangle((x0 + 1, y0, x0 + bar_w - 1, base), fill=STYLE_COLORS["nodule"])
    draw.line((10, base, width_px - 10, base), fill=(0, 0, 0))
    draw.text(
        (10, base + 4), f"diameter 0 to {edges[-1]:.0f} mm, {BIN_MM:.0f} mm bins", fill=(0, 0, 0)
    )
    draw.text((10, 4), f"{n} nodules, tallest bar {int(counts.max())}", fill=(0, 0, 0))
    return np.asarray(image)


def diameter_histogram_png(diameters_mm: np.ndarray, *, width_px: int = 320) -> bytes:
    """`diameter_histogram_rgb` as PNG bytes."""
    return to_png(diameter_histogram_rgb(diameters_mm, width_px=width_px))


def diameter_histogram_figure(
    diameters_mm: np.ndarray, *, figsize: tuple[float, float] = (5.0, 2.6)
) -> Figure:
    """The diameter histogram as a matplotlib Figure (not registered with pyplot)."""
    from matplotlib.figure import Figure

    counts, edges = diameter_bins(diameters_mm)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    ax.bar(edges[:-1], counts, width=BIN_MM, align="edge", color="#d04646", edgecolor="white")
    ax.set(xlabel="diameter (mm)", ylabel="nodules", title=f"{int(counts.sum())} nodules")
    return fig


def summary_html(summary: dict[str, Any]) -> str:
    """`nodulekit.data.series.dataset_summary` as an HTML box (no scripts, no external assets)."""
    from nodulekit.data.series import summary_lines

    lines = [html.escape(line) for line in summary_lines(summary)]
    lines[0] = f"<b>{lines[0]}</b>"
    return "<div class='nk-summary'>" + "<br>".join(lines) + "</div>"
