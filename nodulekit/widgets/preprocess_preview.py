"""`PreprocessPreview`: look at what preprocessing does to one scan, control by control.

Slice slider, window presets and level/width sliders, lung-mask overlay (computed once, on
first use), the original next to its 1 mm isotropic resampling (computed once, on first
use), and a candidate list that draws the chosen candidate's crop box on the slice and
shows the crop in three planes. Every picture comes from a plain function of
`nodulekit.viz.preprocess`; this class only wires controls to them.
"""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from nodulekit.data.findings import finding_voxel_zyx
from nodulekit.data.scan import Scan
from nodulekit.preprocess import WINDOWS, crop, lung_mask, resample, resample_mask
from nodulekit.preprocess.crop import Crop
from nodulekit.viz.preprocess import (
    crop_box_on_slice,
    crop_planes_image,
    matching_slice,
    render_preview_slice,
)
from nodulekit.viz.slices import to_png

CUSTOM = "custom"


def candidate_label(i: int, row: pd.Series) -> str:
    """One line for the candidate dropdown."""
    label = row.get("class", "")
    kind = (
        {1: "nodule", 0: "non-nodule"}.get(int(label), "")
        if pd.notna(label) and label != ""
        else ""
    )
    return f"#{i} ({row['coordX']:.1f}, {row['coordY']:.1f}, {row['coordZ']:.1f}) mm" + (
        f" {kind}" if kind else ""
    )


class PreprocessPreview(widgets.VBox):
    """A scan's slices with windows, lung mask, resampling and candidate crops.

    Parameters
    ----------
    scan : Scan
    candidates : DataFrame, optional
        Rows with coordX, coordY, coordZ (world mm), e.g. ``Luna16(root).candidates_for(uid)``;
        rows of other series are ignored when a seriesuid column is present.
    lung_mask : (Z, Y, X) bool ndarray, optional
        A precomputed lung mask; computed with `nodulekit.preprocess.lung_mask` on first
        use otherwise.
    size_mm, shape_zyx
        Crop geometry, as in `nodulekit.preprocess.crop` (default: what training uses).
    resampled_spacing_mm : float
        Spacing of the resampled view.

    Attributes
    ----------
    images : dict of str to ndarray
        The RGB arrays last drawn: "original", "resampled", "crop".
    timings_ms : dict of str to float
        How long the last redraw of each picture took.
    """

    def __init__(
        self,
        scan: Scan,
        *,
        candidates: pd.DataFrame | None = None,
        lung_mask: np.ndarray | None = None,
        size_mm: float = 32.0,
        shape_zyx: tuple[int, int, int] = (24, 24, 24),
        resampled_spacing_mm: float = 1.0,
    ) -> None:
        if lung_mask is not None and lung_mask.shape != scan.shape:
            raise ValueError(
                f"lung_mask shape {lung_mask.shape} differs from the scan's {scan.shape}"
            )
        self.scan = scan
        self.size_mm = size_mm
        self.shape_zyx = shape_zyx
        self.resampled_spacing_mm = resampled_spacing_mm
        self._mask = lung_mask
        self._resampled: Scan | None = None
        self._resampled_mask: np.ndarray | None = None
        self._crop: Crop | None = None
        self._quiet = False
        self.images: dict[str, np.ndarray] = {}
        self.timings_ms: dict[str, float] = {}

        table = pd.DataFrame() if candidates is None else candidates
        if "seriesuid" in table.columns and scan.seriesuid:
            table = table[table["seriesuid"].astype(str) == scan.seriesuid]
        self.candidates = table.reset_index(drop=True)

        level, width = WINDOWS["lung"]
        nz = scan.shape[0]
        self.slice_slider = widgets.IntSlider(
            value=nz // 2, min=0, max=nz - 1, description="slice", continuous_update=True
        )
        self.preset = widgets.Dropdown(
            options=[*WINDOWS, CUSTOM], value="lung", description="window"
        )
        self.level = widgets.IntSlider(value=int(level), min=-1200, max=1200, description="level")
        self.width = widgets.IntSlider(value=int(width), min=1, max=4000, description="width")
        self.show_mask = widgets.Checkbox(value=False, description="lung mask")
        self.show_resampled = widgets.Checkbox(
            value=False, description=f"resampled {resampled_spacing_mm:g} mm"
        )
        options = [("none", -1)] + [
            (candidate_label(i, row), i) for i, row in self.candidates.iterrows()
        ]
        self.candidate = widgets.Dropdown(options=options, value=-1, description="candidate")
        self.original_image = widgets.Image(format="png")
        self.resampled_image = widgets.Image(format="png", layout={"display": "none"})
        self.crop_image = widgets.Image(format="png", layout={"display": "none"})
        self.status = widgets.HTML()

        self.slice_slider.observe(self._on_slice, names="value")
        self.preset.observe(self._on_preset, names="value")
        self.level.observe(self._on_level_width, names="value")
        self.width.observe(self._on_level_width, names="value")
        self.show_mask.observe(self._on_redraw, names="value")
        self.show_resampled.observe(self._on_resampled, names="value")
        self.candidate.observe(self._on_candidate, names="value")

        controls = widgets.HBox(
            [
                widgets.VBox([self.slice_slider, self.preset, self.level, self.width]),
                widgets.VBox([self.show_mask, self.show_resampled, self.candidate]),
            ]
        )
        views = widgets.HBox([self.original_image, self.resampled_image])
        super().__init__([controls, views, self.crop_image, self.status])
        # CSS classes: what browser tests (and custom styles) find the parts by
        for widget, name in (
            (self, "nk-preprocess-preview"),
            (self.slice_slider, "nk-slice-slider"),
            (self.preset, "nk-window-preset"),
            (self.original_image, "nk-original-image"),
            (self.resampled_image, "nk-resampled-image"),
            (self.crop_image, "nk-crop-image"),
            (self.show_mask, "nk-mask-toggle"),
            (self.candidate, "nk-candidate"),
        ):
            widget.add_class(name)
        self.redraw()

    # -- state -----------------------------------------------------------------------------
    @property
    def window(self) -> tuple[float, float]:
        """The current (level_hu, width_hu)."""
        return (float(self.level.value), float(self.width.value))

    @property
    def mask(self) -> np.ndarray:
        """The lung mask, computed on first use."""
        if self._mask is None:
            self._set_status("computing the lung mask (once)...")
            self._mask = lung_mask(self.scan)
        return self._mask

    @property
    def resampled(self) -> Scan:
        """The scan resampled to ``resampled_spacing_mm``, computed on first use."""
        if self._resampled is None:
            self._set_status("resampling (once)...")
            self._resampled = resample(self.scan, self.resampled_spacing_mm)
        return self._resampled

    def _set_status(self, text: str) -> None:
        self.status.value = f"<span style='color:#555'>{text}</span>"

    # -- events ----------------------------------------------------------------------------
    def _on_slice(self, change: dict[str, Any]) -> None:
        self.redraw()

    def _on_preset(self, change: dict[str, Any]) -> None:
        if change["new"] == CUSTOM:
            return
        level, width = WINDOWS[change["new"]]
        self._quiet = True
        try:
            self.level.value, self.width.value = int(level), int(width)
        finally:
            self._quiet = False
        self.redraw()

    def _on_level_width(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        if self.preset.value != CUSTOM and WINDOWS[self.preset.value] != self.window:
            self._quiet = True
            try:
                self.preset.value = CUSTOM
            finally:
                self._quiet = False
        self.redraw()

    def _on_redraw(self, change: dict[str, Any]) -> None:
        self.redraw()

    def _on_resampled(self, change: dict[str, Any]) -> None:
        self.resampled_image.layout.display = None if change["new"] else "none"
        self.redraw()

    def _on_candidate(self, change: dict[str, Any]) -> None:
        i = change["new"]
        if i is None or i < 0:
            self._crop = None
            self.crop_image.layout.display = "none"
            self.redraw()
            return
        row = self.candidates.iloc[i]
        center = (float(row["coordX"]), float(row["coordY"]), float(row["coordZ"]))
        self._crop = crop(self.scan, center, self.size_mm, self.shape_zyx)
        z = finding_voxel_zyx(self.scan, row)[0]
        self.crop_image.layout.display = None
        if z != self.slice_slider.value:
            self.slice_slider.value = z  # redraws
        else:
            self.redraw()

    # -- drawing ---------------------------------------------------------------------------
    def redraw(self) -> None:
        """Draw every visible picture from the current control values."""
        window = self.window
        index = self.slice_slider.value
        mask = self.mask if self.show_mask.value else None
        start = time.perf_counter()
        box = crop_box_on_slice(self.scan, self._crop, index) if self._crop is not None else None
        rgb = render_preview_slice(self.scan.array, index, window=window, mask=mask, box=box)
        self.images["original"] = rgb
        self.original_image.value = to_png(rgb)
        self.timings_ms["original"] = (time.perf_counter() - start) * 1e3

        if self.show_resampled.value:
            start = time.perf_counter()
            other = self.resampled
            other_index = matching_slice(self.scan, index, other)
            other_mask = None
            if mask is not None:
                if self._resampled_mask is None:
                    self._resampled_mask = resample_mask(mask, other, source=self.scan)
                other_mask = self._resampled_mask
            other_box = (
                crop_box_on_slice(other, self._crop, other_index)
                if self._crop is not None
                else None
            )
            rgb = render_preview_slice(
                other.array, other_index, window=window, mask=other_mask, box=other_box
            )
            self.images["resampled"] = rgb
            self.resampled_image.value = to_png(rgb)
            self.timings_ms["resampled"] = (time.perf_counter() - start) * 1e3

        if self._crop is not None:
            start = time.perf_counter()
            rgb = crop_planes_image(self._crop, window=window)
            self.images["crop"] = rgb
            self.crop_image.value = to_png(rgb)
            self.timings_ms["crop"] = (time.perf_counter() - start) * 1e3

        z_mm = float(self.scan.voxel_to_world((index, 0, 0))[2])
        text = f"slice {index} (z = {z_mm:.1f} mm), window L {window[0]:g} W {window[1]:g}"
        if self._crop is not None:
            text += f"; crop outside the scan: {self._crop.outside_fraction:.0%}"
        self._set_status(text)
