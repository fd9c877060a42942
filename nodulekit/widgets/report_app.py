"""`ReportApp`: pick a scan, see its findings ranked, scroll the slices with the heat map, read
the trust status, download the report. The page ``nodulekit app`` serves (Voilà, no code shown).

Everything it shows comes from library calls a script can make: marks from
`nodulekit.report.findings.marks_of_scan` (full-scan detection), the ranked findings from
`nodulekit.report.findings.findings_table`, the maps and their trust from
`nodulekit.widgets.ExplainExplorer` (over `nodulekit.explain.CandidateExplanations`), the
whole-slice picture from `nodulekit.viz.plane_png`, the report from
`nodulekit.report.build_report`.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from nodulekit.widgets.explain_explorer import ExplainExplorer

COORDS = ["coordX", "coordY", "coordZ"]


def finding_label(row: Any) -> str:
    """One line of the findings list: rank, probability, side, size, place."""
    size = f"~{row.diameter_mm:.0f} mm" if np.isfinite(row.diameter_mm) else "size n/a"
    return (
        f"{int(row.rank)}. p={row.probability:.3f} · {row.side} · {size} · "
        f"({row.coordX:.0f}, {row.coordY:.0f}, {row.coordZ:.0f}) mm"
    )


class ReportApp(widgets.VBox):
    """The clinician's page: scans, ranked findings, slices with heat maps, the report.

    Parameters
    ----------
    data : path
        A LUNA16 root (its scans on disk are offered).
    checkpoint : path
        The classifier's checkpoint.
    reports : path, optional
        Folder for the reports made (default ``./nodulekit-reports``).
    top : int
        Findings listed per scan.
    method : str
        Heat-map method shown first.
    check : bool
        Run the heat map's sanity check when a scan is opened (else a button does), and in
        the reports made.
    """

    def __init__(
        self,
        data: str | os.PathLike,
        checkpoint: str | os.PathLike,
        *,
        reports: str | os.PathLike | None = None,
        top: int = 10,
        method: str = "gradcam",
        check: bool = True,
        device: str = "auto",
    ) -> None:
        from nodulekit.data import Luna16
        from nodulekit.evaluate.scoring import crop_geometry, load_model

        self.data, self.checkpoint = Path(data), Path(checkpoint)
        self.reports = Path(reports) if reports else Path.cwd() / "nodulekit-reports"
        self.top, self.method, self.check, self.device = int(top), method, bool(check), device
        self.luna = Luna16(self.data, warn_missing=False)
        self.model, self.config = load_model(self.checkpoint, device=device)
        self.size_mm, self.shape_zyx = crop_geometry(self.config)
        self.scan: Any = None
        self.marks = pd.DataFrame()
        self.findings = pd.DataFrame()
        self.explorer: ExplainExplorer | None = None
        uids = [str(u) for u in self.luna.scans["seriesuid"]]
        self.scan_choice = widgets.Dropdown(
            options=[(f"scan {k + 1}: …{u[-12:]}", u) for k, u in enumerate(uids)],
            value=None, description="scan", layout=widgets.Layout(width="340px"),
        )  # fmt: skip
        self.status = widgets.HTML()
        self.finding_list = widgets.Select(
            options=[], rows=10, layout=widgets.Layout(width="340px")
        )
        self.scan_slice = widgets.IntSlider(0, 0, 1, description="axial slice")
        self.scan_image = widgets.Image(format="png", layout=widgets.Layout(width="340px"))
        self.explorer_box = widgets.VBox()
        self.report_button = widgets.Button(description="Make the report", icon="file")
        self.download = widgets.HTML()
        self.scan_choice.observe(lambda _: self.open_scan(), names="value")
        self.finding_list.observe(lambda _: self.go_to_finding(), names="value")
        self.scan_slice.observe(lambda _: self.draw_slice(), names="value")
        self.report_button.on_click(lambda _: self.make_report())
        notice = widgets.HTML(
            "<b>Research and teaching software, not a medical device.</b> "
            "Findings are a model's marks, not a diagnosis."
        )
        left = widgets.VBox([
            widgets.HTML("<b>Findings</b> (most probable first)"), self.finding_list,
            self.scan_image, self.scan_slice,
        ])  # fmt: skip
        right = widgets.VBox(
            [self.explorer_box, widgets.HBox([self.report_button, self.download])],
            layout=widgets.Layout(margin="0 0 0 12px"),
        )
        body = widgets.HBox([left, right], layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([notice, self.scan_choice, self.status, body])
        self.add_class("nk-report-app")
        if uids:
            self.scan_choice.value = uids[0]
        else:
            self.status.value = f"<i>no scan on disk under {html.escape(str(self.data))}</i>"

    @classmethod
    def from_environment(cls, **kwargs: Any) -> ReportApp:
        """The app that ``nodulekit app`` asked for (its environment variables)."""
        from nodulekit.report.app import CHECKPOINT_VARIABLE, REPORTS_VARIABLE, ROOT_VARIABLE

        missing = [v for v in (ROOT_VARIABLE, CHECKPOINT_VARIABLE) if not os.environ.get(v)]
        if missing:
            raise RuntimeError(f"start the app with `nodulekit app ROOT` (unset: {missing})")
        return cls(os.environ[ROOT_VARIABLE], os.environ[CHECKPOINT_VARIABLE],
                   reports=os.environ.get(REPORTS_VARIABLE), **kwargs)  # fmt: skip

    def open_scan(self) -> None:
        """Detect the chosen scan's findings and show the first one."""
        from nodulekit.explain.explorer import CandidateExplanations
        from nodulekit.report.findings import findings_table, marks_of_scan

        uid = self.scan_choice.value
        if uid is None:
            return
        self.status.value = "<i>finding candidates in the lungs and scoring them…</i>"
        self.download.value = ""
        self.scan = self.luna.load(uid)
        self.marks = marks_of_scan(self.scan, model_and_config=(self.model, self.config),
                                   device=self.device)  # fmt: skip
        self.findings = findings_table(self.scan, self.marks, top=self.top)
        self.scan_slice.max = max(0, self._lps().shape[0] - 1)
        table = self.findings[[*COORDS, "probability"]].assign(seriesuid=uid)
        explanations = CandidateExplanations(
            self.model, table, data_root=self.data, size_mm=self.size_mm,
            shape_zyx=self.shape_zyx, device=self.device,
        )  # fmt: skip
        if self.check and len(table):
            self.status.value = "<i>checking whether the heat maps can be trusted…</i>"
            explanations.check(self.method, n_crops=min(8, len(table)))
        zoom = max(3, 200 // max(self.shape_zyx))  # each plane about 200 pixels wide
        self.explorer = (
            ExplainExplorer(explanations, method=self.method, zoom=zoom) if len(table) else None
        )
        self.explorer_box.children = [self.explorer.children[1]] if self.explorer else []
        options = [(finding_label(r), k) for k, r in enumerate(self.findings.itertuples())]
        self.finding_list.options = options
        self.status.value = f"{len(self.findings)} finding(s) listed of {len(self.marks)} marks"
        if options:
            self.finding_list.value = None
            self.finding_list.value = 0
        else:
            self.draw_slice()

    def _lps(self) -> Any:
        from nodulekit.preprocess.orient import reorient_to_lps

        return reorient_to_lps(self.scan)

    def finding_index_zyx(self, k: int) -> np.ndarray:
        """The voxel (z, y, x) of finding ``k`` in the scan reoriented to LPS (what is shown)."""
        point = self.findings.loc[k, COORDS].to_numpy(float)
        return np.asarray(self._lps().world_to_voxel(point), float).ravel()

    def go_to_finding(self) -> None:
        """Show finding ``finding_list.value``: its heat map, and the scan at its slice."""
        k = self.finding_list.value
        if k is None or self.explorer is None:
            return
        rows = self.explorer.explanations.table["row"].tolist()
        self.explorer.candidates.value = rows.index(int(k))
        z = int(np.clip(np.rint(self.finding_index_zyx(int(k))[0]), 0, self.scan_slice.max))
        if self.scan_slice.value == z:
            self.draw_slice()
        self.scan_slice.value = z

    def draw_slice(self) -> None:
        """The whole axial slice, with the chosen finding circled and crossed."""
        from nodulekit.viz.slices import plane_png

        if self.scan is None:
            return
        k = self.finding_list.value
        nodules, cross = None, None
        if k is not None and len(self.findings):
            row = self.findings.loc[int(k)]
            cross = tuple(self.finding_index_zyx(int(k)))
            if np.isfinite(row["diameter_mm"]):
                nodules = pd.DataFrame([row[[*COORDS, "diameter_mm"]].astype(float)])
        self.scan_image.value = plane_png(self._lps(), "axial", int(self.scan_slice.value),
                                          nodules=nodules, crosshair_zyx=cross)  # fmt: skip

    def make_report(self) -> Path | None:
        """Write the scan's HTML report and offer it for download."""
        from nodulekit.report import build_report

        if self.scan is None:
            return None
        self.download.value = "<i>writing the report…</i>"
        uid = str(self.scan_choice.value)
        result = build_report(
            self.scan, checkpoint=self.checkpoint, out=self.reports / f"report-{uid}.html",
            predictions=self.marks, top=self.top, method=self.method, sanity=self.check,
            device=self.device,
        )  # fmt: skip
        data = base64.b64encode(result.path.read_bytes()).decode("ascii")
        self.download.value = (
            f'<a class="nk-download" download="{html.escape(result.path.name)}" '
            f'href="data:text/html;base64,{data}">Download the report</a> '
            f"<small>(also saved as {html.escape(str(result.path))})</small>"
        )
        return result.path
