"""`ExplainExplorer`: why did the model flag this candidate? Maps over the CT, with their trust.

A list of candidates sorted by nodule probability; the chosen one's crop in three planes
(axial, coronal, sagittal) with the attribution map blended over the CT in a lung window and
the annotated nodule outlined; a method dropdown, three slice sliders and an opacity slider;
beside the picture, the colour bar in words and the method's trust status (a sanity-check
button fills it in). Every map is computed once (`nodulekit.explain.CandidateExplanations`);
after that a control only redraws (`nodulekit.viz.explain.explain_rgb`), in milliseconds;
``explorer.explanations.precompute(method)`` computes a method's maps for all candidates
in batches ahead (several times cheaper per crop on a CPU than one at a time).

`explain_3d` shows a candidate's region in 3D (CT, heat map and annotated nodules as overlays)
with **ipyniivue** (NiiVue, WebGL), which ships its JavaScript inside the Python wheel: it
works offline in JupyterLab 4 and on Binder, with ipywidgets 8. Limits: it needs WebGL2 in the
browser (headless browsers without a GPU may draw nothing); each layer is sent to the browser
as a NIfTI file, so show a region (default an 80 mm cube), not a whole scan; it is a widget,
so a static HTML export shows no 3D view (reports use `nodulekit.viz.volume.render_volume`,
the static fallback). itkwidgets is not the default: its 1.0 pre-release loads its viewer
from the web at run time (a blank view offline) and 0.32 needs the classic notebook with
ipywidgets 7; where it works, ``pip install nodulekit[itk]`` and call
``itkwidgets.view(layers["ct"].array, label_image=layers["nodules"])`` on `region_layers`.
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from nodulekit.explain.explorer import CandidateExplanations, region_layers
from nodulekit.viz.explain import colorbar_label, colorbar_rgb, explain_rgb, map_scale
from nodulekit.viz.slices import to_png


def candidate_label(row: pd.Series) -> str:
    """One line of the candidate list: probability, truth when known, series and place."""
    truth = ""
    if "class" in row and pd.notna(row["class"]) and int(row["class"]) in (0, 1):
        truth = " nodule" if int(row["class"]) == 1 else " non-nodule"
    uid = str(row["seriesuid"])
    return (
        f"p={row['probability']:.3f}{truth} | …{uid[-8:]} "
        f"({row['coordX']:.0f}, {row['coordY']:.0f}, {row['coordZ']:.0f}) mm"
    )


class ExplainExplorer(widgets.HBox):
    """Candidates sorted by probability, their maps in three planes, and how far to trust them.

    Parameters
    ----------
    explanations : CandidateExplanations
        Candidates, crops and the map cache (see `from_cache` / `from_predictions`).
    method : str
        The method shown first.
    opacity : float
        Opacity of the map over the CT.
    zoom : int
        Screen pixels per crop voxel.

    Attributes
    ----------
    image : ipywidgets.Image
        The three planes (PNG).
    redraw_seconds : float
        How long the last redraw took (map already cached: well under 0.1 s on a CPU).
    """

    def __init__(
        self,
        explanations: CandidateExplanations,
        *,
        method: str = "gradcam",
        opacity: float = 0.5,
        zoom: int = 8,
    ) -> None:
        if method not in explanations.methods:
            raise ValueError(f"unknown method {method!r}; available: {explanations.methods}")
        self.explanations = explanations
        self.zoom = int(zoom)
        self.redraw_seconds = 0.0
        table = explanations.table
        options = [(candidate_label(table.loc[i]), i) for i in range(len(table))]
        self.candidates = widgets.Select(
            options=options, value=0 if options else None, rows=12, description="",
            layout=widgets.Layout(width="300px"),
        )  # fmt: skip
        self.method = widgets.Dropdown(
            options=explanations.methods, value=method, description="method"
        )
        depth, height, width = explanations.crop_hu(0).shape if options else (1, 1, 1)
        self.slice_z = widgets.IntSlider(depth // 2, 0, depth - 1, description="axial z")
        self.slice_y = widgets.IntSlider(height // 2, 0, height - 1, description="coronal y")
        self.slice_x = widgets.IntSlider(width // 2, 0, width - 1, description="sagittal x")
        self.opacity = widgets.FloatSlider(
            opacity, min=0.0, max=1.0, step=0.05, description="opacity"
        )
        self.image = widgets.Image(format="png", layout=widgets.Layout(object_fit="contain"))
        self.colorbar = widgets.Image(
            format="png", layout=widgets.Layout(width="256px", height="12px", object_fit="fill")
        )
        self.legend = widgets.HTML()
        self.trust = widgets.HTML(layout=widgets.Layout(width="300px"))
        self.check_button = widgets.Button(description="Run sanity check", icon="check")
        self.info = widgets.HTML()
        self.candidates.observe(self._on_candidate, names="value")
        self.method.observe(lambda _: self.redraw(), names="value")
        for control in (self.slice_z, self.slice_y, self.slice_x, self.opacity):
            control.observe(lambda _: self.redraw(), names="value")
        self.check_button.on_click(lambda _: self.run_check())
        left = widgets.VBox(
            [widgets.HTML("<b>Candidates</b> (most probable first)"), self.candidates]
        )
        controls = widgets.VBox(
            [self.method, self.slice_z, self.slice_y, self.slice_x, self.opacity]
        )
        side = widgets.VBox([self.trust, self.check_button, self.colorbar, self.legend])
        below = widgets.HBox([controls, side], layout=widgets.Layout(align_items="flex-start"))
        middle = widgets.VBox([self.info, self.image, below])
        super().__init__([left, middle], layout=widgets.Layout(align_items="flex-start"))
        self.add_class("nk-explain-explorer")
        for name, part in (
            ("image", self.image), ("method", self.method), ("slice-z", self.slice_z),
            ("opacity", self.opacity), ("trust", self.trust), ("candidates", self.candidates),
        ):  # fmt: skip
            part.add_class(f"nk-explain-{name}")
        self._centre_sliders()
        self.redraw()

    @classmethod
    def from_cache(
        cls, model: Any, cache: Any, *, method: str = "gradcam", **kwargs: Any
    ) -> ExplainExplorer:
        """An explorer over a crop cache (``index`` + ``crops``); ``kwargs`` go to
        `CandidateExplanations` (``trust``, ``method_options``, ``device``)."""
        return cls(CandidateExplanations.from_cache(model, cache, **kwargs), method=method)

    @classmethod
    def from_predictions(
        cls,
        model: Any,
        predictions: pd.DataFrame,
        data_root: Any,
        *,
        method: str = "gradcam",
        **kwargs: Any,
    ) -> ExplainExplorer:
        """An explorer over a predictions table (``seriesuid, coordX, coordY, coordZ,
        probability``), cutting crops from the scans of the LUNA16 root ``data_root``."""
        explanations = CandidateExplanations(model, predictions, data_root=data_root, **kwargs)
        return cls(explanations, method=method)

    @property
    def current(self) -> int:
        """The chosen candidate (row of ``explanations.table``)."""
        return int(self.candidates.value or 0)

    def _centre_sliders(self) -> None:
        if not len(self.explanations):
            return
        nodule = self.explanations.nodule(self.current)
        shape = self.explanations.crop_hu(self.current).shape
        centre = nodule[0] if nodule is not None else (np.asarray(shape) - 1) / 2
        index = np.clip(np.rint(centre).astype(int), 0, np.asarray(shape) - 1)
        with self.hold_trait_notifications():
            self.slice_z.value, self.slice_y.value, self.slice_x.value = (int(v) for v in index)

    def _on_candidate(self, _change: Any) -> None:
        self._centre_sliders()
        self.redraw()

    def run_check(self) -> None:
        """Run the sanity check of the shown method and show its verdict."""
        self.trust.value = "<i>checking: randomising the model layer by layer…</i>"
        self.explanations.check(self.method.value)
        self.redraw()

    def redraw(self) -> None:
        """Draw the chosen candidate's map (computing it on first use) and its trust status."""
        if not len(self.explanations):
            self.info.value = "<i>no candidates</i>"
            return
        i, method = self.current, self.method.value
        attribution = self.explanations.attribution(i, method)
        start = time.perf_counter()
        amap = attribution.maps[0]
        nodule = self.explanations.nodule(i)
        rgb = explain_rgb(
            self.explanations.crop_hu(i), amap, signed=attribution.signed,
            index_zyx=(self.slice_z.value, self.slice_y.value, self.slice_x.value),
            nodule_center_zyx_vox=None if nodule is None else nodule[0],
            nodule_diameter_mm=None if nodule is None else nodule[1],
            opacity=self.opacity.value, zoom=self.zoom,
            voxel_zyx_mm=self.explanations.voxel_zyx_mm(i),
        )  # fmt: skip
        self.image.value = to_png(rgb)
        self.colorbar.value = to_png(colorbar_rgb(attribution.signed))
        vmin, vmax = map_scale(amap, attribution.signed)
        self.legend.value = (
            f"<small>{vmin:.3g} … {vmax:.3g}<br>{html.escape(colorbar_label(attribution.signed))}"
            + ("<br>green circle: the annotated nodule" if nodule is not None else "")
            + "</small>"
        )
        self.trust.value = f"<b>{method}</b>: {html.escape(self.explanations.status(method))}"
        self.info.value = (
            f"nodule probability <b>{float(attribution.probabilities[0]):.3f}</b> — "
            "planes: axial, coronal, sagittal (superior up)"
        )
        self.redraw_seconds = time.perf_counter() - start


def nifti_bytes(array: np.ndarray, like: Any) -> bytes:
    """``array`` on the grid of the Scan ``like`` as the bytes of a ``.nii`` file (SimpleITK)."""
    import os
    import tempfile

    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetOrigin(like.origin)
    image.SetSpacing(like.spacing)
    image.SetDirection(like.direction)
    handle, name = tempfile.mkstemp(suffix=".nii")
    os.close(handle)
    try:
        sitk.WriteImage(image, name)
        with open(name, "rb") as file:
            return file.read()
    finally:
        os.unlink(name)


def explain_3d(
    scan: Any,
    *,
    center_xyz_mm: Any,
    attribution: Any = None,
    index: int = 0,
    nodules: pd.DataFrame | None = None,
    region_mm: float | None = 80.0,
    opacity: float = 0.6,
    height: int = 480,
) -> Any:
    """An offline 3D view (ipyniivue) of a candidate's region: CT, heat map, nodules.

    Parameters
    ----------
    scan : Scan
    center_xyz_mm : 3 floats
        The candidate (world mm): the region's centre.
    attribution : Attribution, optional
        Map ``index`` (with its crop's geometry, ``attribute(..., crops=...)``) is shown in
        warm colours (and cold ones for negative values of a signed map), from 10 % of its
        largest magnitude up: weaker values are transparent.
    nodules : DataFrame, optional
        Annotated nodules (``coordX, coordY, coordZ, diameter_mm``), drawn in green.
    region_mm : float or None
        Edge of the cube shown (``None``: the whole scan, slow to send).

    Returns
    -------
    ipyniivue.NiiVue
        Multiplanar view plus a 3D rendering; CT in a lung window (-1350 to 150 HU).
    """
    from ipyniivue import NiiVue
    from ipyniivue.constants import SliceType

    layers = region_layers(
        scan, center_xyz_mm=center_xyz_mm, region_mm=region_mm, attribution=attribution,
        index=index, nodules=nodules,
    )  # fmt: skip
    ct = layers["ct"]
    volumes = [
        {"data": nifti_bytes(ct.array, ct), "name": "ct.nii", "colormap": "gray",
         "cal_min": -1350.0, "cal_max": 150.0},
    ]  # fmt: skip
    if layers["heat"] is not None:
        top = float(np.max(np.abs(layers["heat"]))) or 1.0
        heat = {"data": nifti_bytes(layers["heat"], ct), "name": "attribution.nii",
                "colormap": "warm", "opacity": opacity, "cal_min": 0.1 * top, "cal_max": top}  # fmt: skip
        if layers["signed"]:
            heat.update(colormap_negative="winter", cal_min_neg=-top, cal_max_neg=-0.1 * top)
        volumes.append(heat)
    if layers["nodules"] is not None:
        volumes.append(
            {"data": nifti_bytes(layers["nodules"], ct), "name": "nodules.nii",
             "colormap": "green", "opacity": 0.5, "cal_min": 0.5, "cal_max": 1.0}
        )  # fmt: skip
    viewer = NiiVue(height=int(height))
    viewer.load_volumes(volumes)
    viewer.opts.slice_type = SliceType.MULTIPLANAR
    viewer.opts.multiplanar_show_render = True
    return viewer
