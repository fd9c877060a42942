"""`ScanBrowser`: open a LUNA16 root, a DICOM folder or a scan file and look at its nodules.

Every control calls a plain library function: `nodulekit.data.series` (what a path holds, the
series table, filters), `nodulekit.data.findings` (the findings of a scan, the voxel probe) and
`nodulekit.viz` (every picture); this module only wires them. Key sub-widgets are attributes and carry CSS classes (``nk-...``) so that a
headless browser can find them.
"""

from __future__ import annotations

import html
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import wraps
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd

from nodulekit.data import series
from nodulekit.data.findings import (
    FINDING_COLUMNS,
    KIND_MEANING,
    finding_labels,
    finding_voxel_zyx,
    findings_table,
    probe,
    probe_text,
)
from nodulekit.data.scan import Scan
from nodulekit.data.series import DEFAULT_CACHE_BYTES, ScanCache
from nodulekit.errors import NodulekitError
from nodulekit.preprocess.orient import reorient_to_lps
from nodulekit.viz.dataset import diameter_histogram_png, summary_html
from nodulekit.viz.slices import PLANE_AXIS, draw_crosshair, plane_point, plane_rgb, to_png

PRESETS = ("lung", "mediastinum", "bone")
SORT_KEYS = {
    "UID": "seriesuid",
    "subset": "subset",
    "nodules": "n_nodules",
    "slice thickness": "slice_thickness_mm",
}


def _box(kind: str, text: str) -> str:
    colors = {"error": ("#fdecea", "#b71c1c"), "warning": ("#fff8e1", "#8a6d00")}
    bg, fg = colors[kind]
    return (
        f"<div class='nk-{kind}-box' style='background:{bg};color:{fg};border:1px solid {fg};"
        f"padding:6px;border-radius:4px;white-space:pre-wrap'>{html.escape(text)}</div>"
    )


def _guarded(method):
    """Show any error of a control's handler in the error box instead of a traceback."""

    @wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as e:
            self._show_error(e)
            return None

    return wrapper


class ScanBrowser(widgets.VBox):
    """Browse a data set's scans and their nodules in three planes and in 3D.

    Parameters
    ----------
    path : path, optional
        A LUNA16 root (any subsets on disk), a folder of DICOM series or of scan files, or a
        single ``.mhd``/``.nii(.gz)`` file. Can be typed into the widget later.
    cache_bytes : int
        Memory budget of the cache of recently loaded scans (512 MiB by default).
    raise_errors : bool
        Raise `ScanReadError` for a bad path instead of showing it in the widget.
    autoload : bool
        Load the first series (`nodulekit.data.series.first_series`) after opening.

    Attributes
    ----------
    findings : DataFrame
        The shown scan's findings (`nodulekit.data.findings.findings_table`): nodules first,
        then excluded findings, told apart by the ``kind`` column; the findings list shows
        them in this order.
    nodules : DataFrame
        The rows of ``findings`` whose kind is "nodule" (``annotations.csv``), in order.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        raise_errors: bool = False,
        autoload: bool = True,
    ) -> None:
        self.cache = ScanCache(cache_bytes)
        self.source: series.SeriesSource | None = None
        self.table = pd.DataFrame(columns=series.SERIES_COLUMNS)
        self.scan: Scan | None = None
        self.findings = pd.DataFrame(columns=FINDING_COLUMNS)
        self.annotations = self.excluded = None
        self.last_error: str | None = None
        #: The future of the latest `select_series` (its result: the Scan shown, or None).
        self.loading: Future | None = None
        self.autoload = autoload
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nk-browser")
        self._token = 0
        # guards the token and applying a scan to the widgets (re-entrant: observers of the
        # widgets set while applying may run on the same thread)
        self._token_lock = threading.RLock()
        self._local = threading.local()  # holds `_quiet`, one per thread
        self._base: dict[str, tuple[Any, Any]] = {}  # plane -> (key, rgb without crosshair)
        self._volume_model = None
        self._build()
        super().__init__(self._layout_children())
        self.add_class("nk-scan-browser")
        if path is not None:
            self.path_text.value = str(path)
            self.open_path(path, raise_errors=raise_errors)

    @property
    def _quiet(self) -> bool:
        """Whether this thread is setting widgets itself (their observers then do nothing)."""
        return getattr(self._local, "quiet", False)

    @_quiet.setter
    def _quiet(self, value: bool) -> None:
        self._local.quiet = value

    @classmethod
    def from_path(
        cls, path: str | Path, *, raise_errors: bool = False, **kwargs: Any
    ) -> ScanBrowser:
        """A browser on ``path``; with ``raise_errors=True`` bad input raises `ScanReadError`."""
        return cls(path, raise_errors=raise_errors, **kwargs)

    # -- widgets ---------------------------------------------------------------------------
    def _build(self) -> None:
        w = widgets
        self.path_text = w.Text(placeholder="LUNA16 root, DICOM folder or .mhd/.nii.gz file",
                                description="Path", layout=w.Layout(width="60%"))  # fmt: skip
        self.open_button = w.Button(description="Open", icon="folder-open")
        self.path_status = w.HTML()
        self.error_box = w.HTML()
        self.warning_box = w.HTML()
        self.summary = w.HTML()
        self.histogram = w.Image(format="png", layout=w.Layout(width="320px"))
        # no option has the value None: ipywidgets shows a None value as an empty box
        self.has_nodules_filter = w.Dropdown(options=[("any", "any"), ("with nodules", True),
                                                      ("without", False)], description="Nodules")  # fmt: skip
        self.subset_filter = w.Dropdown(options=[("all", -1)], value=-1, description="Subset")
        self.thickness_filter = w.FloatRangeSlider(value=(0.0, 10.0), min=0.0, max=10.0, step=0.25,
                                                   description="Slice mm")  # fmt: skip
        self.uid_filter = w.Text(placeholder="UID contains", layout=w.Layout(width="160px"))
        self.sort_by = w.Dropdown(options=list(SORT_KEYS), value="UID", description="Sort")
        self.sort_descending = w.Checkbox(value=False, description="descending", indent=False)
        self.series_select = w.Select(options=[], rows=6, layout=w.Layout(width="95%"))
        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="120px"))
        self.load_status = w.HTML()
        self.window_preset = w.ToggleButtons(options=list(PRESETS), value="lung")
        self.images = {p: w.Image(format="png", layout=w.Layout(width="300px")) for p in PLANE_AXIS}
        self.sliders = {p: w.IntSlider(min=0, max=0, description=p, continuous_update=True,
                                       layout=w.Layout(width="300px")) for p in PLANE_AXIS}  # fmt: skip
        self.axial_image, self.coronal_image, self.sagittal_image = self.images.values()
        self.z_slider, self.y_slider, self.x_slider = self.sliders.values()
        self.probe_html = w.HTML()
        self.nodule_select = w.Select(options=[], rows=6, layout=w.Layout(width="95%"))
        self.findings_caption = w.HTML(
            "<br>".join(f"<b>{k}</b>: {html.escape(v)}" for k, v in KIND_MEANING.items())
        )
        self.show_3d = w.ToggleButton(value=False, description="3D view", icon="cube")
        self.view3d_image = w.Image(format="png", layout=w.Layout(width="420px"))
        self.azimuth_slider = w.IntSlider(value=0, min=-180, max=180, step=15, description="turn °")
        self.view3d_box = w.VBox([self.view3d_image, self.azimuth_slider],
                                 layout=w.Layout(display="none"))  # fmt: skip
        classes = {
            self.path_text: "nk-path", self.open_button: "nk-open-button",
            self.path_status: "nk-path-status", self.error_box: "nk-error",
            self.warning_box: "nk-warning", self.summary: "nk-summary",
            self.histogram: "nk-diameter-histogram", self.series_select: "nk-series-table",
            self.has_nodules_filter: "nk-filter-nodules", self.subset_filter: "nk-filter-subset",
            self.thickness_filter: "nk-filter-thickness", self.sort_by: "nk-sort",
            self.progress: "nk-progress", self.load_status: "nk-load-status",
            self.window_preset: "nk-window-preset", self.probe_html: "nk-probe",
            self.nodule_select: "nk-nodule-table", self.findings_caption: "nk-findings-caption",
            self.show_3d: "nk-3d-toggle",
            self.view3d_image: "nk-3d-view", self.azimuth_slider: "nk-azimuth-slider",
        }  # fmt: skip
        for widget, css in classes.items():
            widget.add_class(css)
        for plane in PLANE_AXIS:
            self.images[plane].add_class(f"nk-{plane}-image")
            self.sliders[plane].add_class("nk-slice-slider")
            self.sliders[plane].add_class(f"nk-{plane}-slider")
        # wiring
        self.path_text.observe(self._on_path_typed, names="value")
        self.open_button.on_click(lambda _: self.open_path(self.path_text.value))
        for control in (self.has_nodules_filter, self.subset_filter, self.thickness_filter,
                        self.uid_filter, self.sort_by, self.sort_descending):  # fmt: skip
            control.observe(lambda _: self.refresh_table(), names="value")
        self.series_select.observe(self._on_series_picked, names="value")
        self.window_preset.observe(lambda _: self.redraw(), names="value")
        for slider in self.sliders.values():
            slider.observe(self._on_slider, names="value")
        self.nodule_select.observe(self._on_nodule_picked, names="index")
        self.show_3d.observe(self._on_show_3d, names="value")
        self.azimuth_slider.observe(lambda _: self.render_3d(), names="value")

    def _layout_children(self) -> list[widgets.Widget]:
        w = widgets
        planes = [w.VBox([self.images[p], self.sliders[p]]) for p in PLANE_AXIS]
        filters = w.HBox([self.has_nodules_filter, self.subset_filter, self.thickness_filter,
                          self.uid_filter, self.sort_by, self.sort_descending],
                         layout=w.Layout(flex_flow="row wrap"))  # fmt: skip
        return [
            w.HBox([self.path_text, self.open_button]), self.path_status, self.error_box,
            self.warning_box, w.HBox([self.summary, self.histogram]), filters, self.series_select,
            w.HBox([self.progress, self.load_status]), self.window_preset,
            w.HBox(planes, layout=w.Layout(flex_flow="row wrap")), self.probe_html,
            self.findings_caption, self.nodule_select, self.show_3d, self.view3d_box,
        ]  # fmt: skip

    # -- messages --------------------------------------------------------------------------
    def _show_error(self, error: BaseException | str | None) -> None:
        if error is None:
            self.last_error = None
            self.error_box.value = ""
            return
        text = (
            str(error)
            if isinstance(error, NodulekitError | str)
            else f"{type(error).__name__}: {error}"
        )
        self.last_error = text
        self.error_box.value = _box("error", text)

    @_guarded
    def _on_path_typed(self, change: dict) -> None:
        try:
            self.path_status.value = html.escape(series.quick_look(change["new"]))
        except NodulekitError as e:
            self.path_status.value = f"<span style='color:#b71c1c'>{html.escape(str(e))}</span>"

    # -- opening a data set ----------------------------------------------------------------
    def open_path(
        self, path: str | Path, *, raise_errors: bool = False
    ) -> series.SeriesSource | None:
        """Open ``path``, fill the summary and the series table, and load the first series."""
        try:
            source = series.open_source(path)
            table = series.series_table(source)
        except Exception as e:
            if raise_errors:
                raise
            self._show_error(e)
            self.path_status.value = ""
            return None
        self._show_error(None)
        self.source, self.table = source, table
        self.path_status.value = html.escape(source.description)
        self.warning_box.value = "".join(_box("warning", t) for t in source.warnings)
        summary = series.dataset_summary(source, table)
        self.summary.value = summary_html(summary)
        self.histogram.value = diameter_histogram_png(summary["diameters_mm"])
        self.histogram.layout.display = None if source.kind == "luna16" else "none"
        subsets = sorted(int(s) for s in table["subset"].unique() if s >= 0)
        thick = table["slice_thickness_mm"].dropna()
        self._quiet = True
        try:
            self.subset_filter.options = [("all", -1)] + [(f"subset{s}", s) for s in subsets]
            self.subset_filter.value = -1
            top = float(max(10.0, thick.max() if len(thick) else 10.0))
            self.thickness_filter.max = top
            self.thickness_filter.value = (0.0, top)
        finally:
            self._quiet = False
        self.refresh_table(load_first=self.autoload)
        return source

    def filter_arguments(self) -> dict[str, Any]:
        """The controls' values as arguments of `nodulekit.data.series.filter_series`.

        The thickness slider at its full range is no thickness filter (series whose thickness
        is unknown stay listed); narrowed, it keeps the series known to lie in its range.
        """
        low, high = self.thickness_filter.value
        nodules = self.has_nodules_filter.value
        return {
            "has_nodules": None if nodules == "any" else nodules,
            "min_thickness_mm": None if low <= self.thickness_filter.min else low,
            "max_thickness_mm": None if high >= self.thickness_filter.max else high,
            "subset": None if self.subset_filter.value == -1 else self.subset_filter.value,
            "text": self.uid_filter.value,
            "sort_by": SORT_KEYS[self.sort_by.value],
            "ascending": not self.sort_descending.value,
        }

    def filtered_table(self) -> pd.DataFrame:
        """The series table as the filter and sort controls show it (`filter_series`)."""
        return series.filter_series(self.table, **self.filter_arguments())

    @_guarded
    def refresh_table(self, *, load_first: bool = False) -> None:
        """Refill the series list from the filters; optionally load its first (CT) series."""
        if self._quiet:
            return
        table = self.filtered_table()
        options = [(series.format_series_row(row), row["seriesuid"]) for _, row in table.iterrows()]
        current = self.scan.seriesuid if self.scan is not None else None
        self._quiet = True
        try:
            self.series_select.options = options
            uids = [uid for _, uid in options]
            self.series_select.value = current if current in uids else None
        finally:
            self._quiet = False
        first = series.first_series(table)
        if load_first and first is not None:
            self.series_select.value = first

    # -- loading a scan --------------------------------------------------------------------
    def _on_series_picked(self, change: dict) -> None:
        if not self._quiet and change["new"] is not None:
            self.select_series(change["new"])

    def select_series(self, seriesuid: str) -> Future:
        """Load a series in the background (instantly from the cache); returns the future.

        The future's result is the `Scan` once the viewer shows it (reoriented to LPS, see
        `reorient_to_lps`), or None after an error (shown in the widget) or when a later pick
        superseded it.
        """
        with self._token_lock:
            self._token += 1
            token = self._token
        if self.series_select.value != seriesuid and seriesuid in dict(
            (v, k) for k, v in self.series_select.options
        ):
            self._quiet = True
            try:
                self.series_select.value = seriesuid
            finally:
                self._quiet = False
        shown: Future = Future()
        self.loading = shown
        cached = self.cache.get(seriesuid)
        if cached is not None:
            done: Future = Future()
            done.set_result(cached)
            self._apply(done, token, 0.0, shown, from_cache=True)
            return shown
        self.progress.value, self.progress.bar_style = 0, "info"
        self.load_status.value = f"loading {html.escape(series.short_uid(seriesuid))} …"
        start = time.perf_counter()
        read = self._executor.submit(self._read, seriesuid)
        read.add_done_callback(
            lambda f: self._apply(f, token, time.perf_counter() - start, shown, from_cache=False)
        )
        return shown

    def _read(self, seriesuid: str) -> Scan:
        """Worker thread: read the scan, reorient it to LPS and cache it; touches no widget."""
        scan = self.source.load(seriesuid)
        shown = reorient_to_lps(scan)
        if shown is not scan:
            file_orientation = scan.orientation
            shown = Scan(shown.array, shown.origin, shown.spacing, shown.direction,
                         shown.seriesuid, shown.path,
                         {**shown.metadata, "file_orientation": file_orientation})  # fmt: skip
        self.cache.put(seriesuid, shown)
        return shown

    def _apply(
        self, read: Future, token: int, seconds: float, shown: Future, *, from_cache: bool
    ) -> None:
        """The one place a loaded scan reaches the widgets: only if ``token`` is still current.

        Runs on the thread that finished ``read`` (the worker, or the caller for the cache);
        holding the token lock means no newer pick can start applying at the same time, and a
        pick made meanwhile makes this one stale, so it is dropped.
        """
        result: Scan | None = None
        try:
            with self._token_lock:
                if token != self._token:
                    return  # a newer pick superseded this one
                if read.cancelled():
                    return
                error = read.exception()
                if error is not None:
                    self.progress.bar_style = "danger"
                    self.load_status.value = "failed"
                    self._show_error(error)
                    return
                result = self._show_scan(read.result(), seconds, from_cache=from_cache)
        finally:
            shown.set_result(result)

    @_guarded
    def _show_scan(self, scan: Scan, seconds: float, *, from_cache: bool) -> Scan | None:
        self._show_error(None)
        self.scan = scan
        self._base.clear()
        self._volume_model = None
        self.annotations, self.excluded = self.source.nodules(scan.seriesuid)
        self.findings = findings_table(scan, self.annotations, self.excluded)
        how = "from cache" if from_cache else f"read in {seconds:.2f} s"
        orient = scan.metadata.get("file_orientation")
        shown_as = f", file orientation {orient}, shown as LPS" if orient else ""
        self.progress.value, self.progress.bar_style = 1, "success"
        self.load_status.value = html.escape(
            f"{series.short_uid(scan.seriesuid, 16)}: {scan.shape[0]}×{scan.shape[1]}×{scan.shape[2]}"
            f" voxels{shown_as}, {how}, {len(self.cache)} in cache"
        )
        self._quiet = True
        try:
            for plane, axis in PLANE_AXIS.items():
                self.sliders[plane].max = scan.shape[axis] - 1
                self.sliders[plane].value = scan.shape[axis] // 2
            self.nodule_select.options = finding_labels(self.findings)
            self.nodule_select.index = None
        finally:
            self._quiet = False
        if len(self.annotations):
            self.jump_to(finding_voxel_zyx(scan, self.annotations.iloc[0]))
        else:
            self.redraw()
        if self.show_3d.value:
            self.render_3d()
        return scan

    # -- viewer ----------------------------------------------------------------------------
    @property
    def index_zyx(self) -> tuple[int, int, int]:
        """The crosshair voxel ``(z, y, x)``."""
        return (self.z_slider.value, self.y_slider.value, self.x_slider.value)

    def jump_to(self, index_zyx: tuple[int, int, int]) -> None:
        """Move the crosshair (all three planes) to ``index_zyx`` and redraw once."""
        self._quiet = True
        try:
            for plane, axis in PLANE_AXIS.items():
                self.sliders[plane].value = int(index_zyx[axis])
        finally:
            self._quiet = False
        self.redraw()

    def _on_slider(self, change: dict) -> None:
        if not self._quiet:
            self.redraw()

    @property
    def nodules(self) -> pd.DataFrame:
        """The shown scan's nodules: the "nodule" rows of `findings`, in order."""
        return self.findings.loc[self.findings["kind"] == "nodule"].reset_index(drop=True)

    @_guarded
    def _on_nodule_picked(self, change: dict) -> None:
        if self._quiet or change["new"] is None or self.scan is None:
            return
        self.jump_to(self.findings.iloc[change["new"]]["index_zyx"])

    def select_finding(self, row: int) -> tuple[int, int, int]:
        """Pick row ``row`` of `findings` (as a click on the list does); returns the crosshair."""
        self.nodule_select.index = row
        return self.index_zyx

    def select_nodule(self, i: int) -> tuple[int, int, int]:
        """Jump to nodule ``i`` (row ``i`` of `nodules`, never an excluded finding).

        Negative ``i`` counts from the end, as in Python; returns the new crosshair.
        """
        rows = self.findings.index[self.findings["kind"] == "nodule"]
        if not -len(rows) <= i < len(rows):
            raise IndexError(f"this scan has {len(rows)} nodule(s); no nodule {i}")
        return self.select_finding(int(rows[i]))

    def _plane_rgb(self, plane: str):
        index = self.index_zyx[PLANE_AXIS[plane]]
        key = (index, self.window_preset.value)
        cached = self._base.get(plane)
        if cached is not None and cached[0] == key:
            return cached[1]
        rgb = plane_rgb(self.scan, plane, index, window=self.window_preset.value,
                        nodules=self.annotations, excluded=self.excluded, indexed=True)  # fmt: skip
        self._base[plane] = (key, rgb)
        return rgb

    @_guarded
    def redraw(self) -> None:
        """Redraw the three planes and the probe at the crosshair."""
        if self.scan is None:
            return
        index = self.index_zyx
        for plane in PLANE_AXIS:
            rgb = draw_crosshair(self._plane_rgb(plane), *plane_point(self.scan, plane, index))
            self.images[plane].value = to_png(rgb)
        self.probe_html.value = html.escape(probe_text(probe(self.scan, index)))

    # -- 3D --------------------------------------------------------------------------------
    @_guarded
    def _on_show_3d(self, change: dict) -> None:
        self.view3d_box.layout.display = None if change["new"] else "none"
        if change["new"]:
            self.render_3d()

    @_guarded
    def render_3d(self) -> None:
        """Render the 3D view at the azimuth slider's angle (downsampling the scan once)."""
        from nodulekit.viz.volume import prepare_volume, render_volume

        if self.scan is None or not self.show_3d.value:
            return
        if self._volume_model is None or self._volume_model.source is not self.scan:
            status = self.load_status.value
            self.load_status.value = status + " · preparing the 3D view …"
            self._volume_model = prepare_volume(self.scan)
            self.load_status.value = status
        rgb = render_volume(self._volume_model, self.azimuth_slider.value,
                            nodules=self.annotations, excluded=self.excluded)  # fmt: skip
        self.view3d_image.value = to_png(rgb)

    def close(self) -> None:
        """Close the widget and stop its loading thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().close()
