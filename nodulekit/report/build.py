"""`build_report`: one self-contained HTML file per scan, for a clinician reading a model's output.

The report composes the layers below it and computes nothing of its own: marks from
`nodulekit.evaluate.detect.detect_scan` (or a predictions table), sizes from the detector or
the U-Net, heat maps and their trust status from `nodulekit.explain`, pictures from
`nodulekit.viz`, the model's figures from the files that training and evaluation wrote.
No patient name, ID or birth date is ever read into it: `nodulekit.data.read_scan` keeps DICOM
identifiers out, and the series UID of a DICOM series that is not de-identified is withheld.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nodulekit.report import page
from nodulekit.report.findings import (
    COORDS,
    findings_table,
    load_segmenter,
    marks_of_scan,
    read_lobes,
)
from nodulekit.report.model_card import NOT_AVAILABLE, model_facts

PLANES = ("axial", "coronal", "sagittal")
#: edge (mm) of the cube shown around a finding with and without its heat map
KEY_REGION_MM = 48.0

INTENDED_USE = (
    "<p><b>Research and teaching software, not a medical device.</b> This report shows what a "
    "machine-learning model trained on public research data (LUNA16 / LIDC-IDRI) marks in one "
    "CT scan, so that its output can be studied, taught and questioned. It is not cleared or "
    "approved for clinical use and must not be used for diagnosis, screening, triage or "
    "treatment decisions.</p><p>What the model never claims:</p><ul>"
    "<li>that a finding is cancer, or that it is benign: it was trained to tell nodule-like "
    "regions from other structures, not malignancy;</li>"
    "<li>that the scan holds no other nodule: it misses nodules (see its sensitivity below), "
    "and it only looks inside the lungs for nodules of about 3 to 30 mm;</li>"
    "<li>that the probability is a risk: it is the model's score that a region looks like an "
    "annotated nodule of its training data;</li>"
    "<li>that a size is a measurement for follow-up guidelines (Fleischner, Lung-RADS): sizes "
    "are estimates;</li>"
    "<li>that a heat map shows why: it shows where the model's evidence lay, and only as far as "
    "its trust status says.</li></ul>"
)


@dataclass
class Report:
    """What `build_report` wrote: the file, the findings listed, the heat map's trust status."""

    path: Path
    findings: pd.DataFrame
    method: str
    trust_status: str
    trust_passed: bool | None


def _read(scan: Any) -> Any:
    if isinstance(scan, (str, os.PathLike)):
        from nodulekit.data import read_scan

        return read_scan(scan)
    return scan


def scan_label(scan: Any) -> str:
    """How the report names the scan: its series UID, withheld for identified DICOM."""
    metadata = getattr(scan, "metadata", None) or {}
    if metadata.get("identifying_tags"):
        return "series UID withheld (the DICOM files are not de-identified)"
    return str(getattr(scan, "seriesuid", "") or "unnamed scan")


def _context_pngs(scan: Any, row: Any) -> list[tuple[str, bytes]]:
    from nodulekit.preprocess.orient import reorient_to_lps
    from nodulekit.viz.slices import PLANE_AXIS, plane_rgb, to_png

    lps = reorient_to_lps(scan)
    point = np.array([row.coordX, row.coordY, row.coordZ], float)
    index_zyx = np.asarray(lps.world_to_voxel(point), float).ravel()
    circle = None
    if np.isfinite(row.diameter_mm) and row.diameter_mm > 0:
        circle = pd.DataFrame([dict(zip(COORDS, point, strict=True), diameter_mm=row.diameter_mm)])
    out = []
    for plane in PLANES:
        axis = PLANE_AXIS[plane]
        index = int(np.clip(np.rint(index_zyx[axis]), 0, lps.shape[axis] - 1))
        image = plane_rgb(lps, plane, index, nodules=circle,
                          crosshair_zyx=tuple(index_zyx), indexed=True)  # fmt: skip
        out.append((plane, to_png(image)))
    return out


def key_region(
    scan: Any, model_crop: Any, amap: np.ndarray, *, region_mm: float = KEY_REGION_MM
) -> tuple[Any, np.ndarray]:
    """A ``region_mm`` cube around a finding in 1 mm voxels, and the model crop's map pasted
    onto it (`nodulekit.preprocess.Crop.paste_into`; zero outside the crop the model saw)."""
    from nodulekit.data.scan import Scan
    from nodulekit.preprocess.crop import crop

    n = max(8, int(np.rint(region_mm)))
    region = crop(scan, model_crop.center_xyz_mm, float(region_mm), (n, n, n))
    grid = Scan(np.rint(region.array).astype(np.int16), region.origin, region.spacing,
                region.direction, str(getattr(scan, "seriesuid", "")))  # fmt: skip
    return region, model_crop.paste_into(grid, amap, fill=0.0)


def explain_findings(
    scan: Any,
    model: Any,
    config: dict,
    findings: pd.DataFrame,
    *,
    method: str = "gradcam",
    sanity: bool = True,
    device: str = "auto",
) -> tuple[list[page.FindingView], str, bool | None]:
    """Pictures of each finding with and without its heat map, and the method's trust status
    (`nodulekit.explain.CandidateExplanations`; sanity-checked on these crops when ``sanity``)."""
    from nodulekit.evaluate.scoring import crop_geometry
    from nodulekit.explain.explorer import CandidateExplanations
    from nodulekit.preprocess.crop import crop
    from nodulekit.viz.explain import colorbar_label, colorbar_rgb, explain_rgb, map_scale
    from nodulekit.viz.slices import to_png

    if findings.empty:
        return [], "no finding to explain", None
    size_mm, shape = crop_geometry(config)
    crops = [crop(scan, c, size_mm, shape) for c in findings[COORDS].to_numpy(float)]
    table = findings[[*COORDS, "probability"]].assign(seriesuid=str(scan.seriesuid))
    explanations = CandidateExplanations(
        model, table, crops=np.stack([c.array for c in crops]), size_mm=size_mm,
        shape_zyx=shape, device=device, config=config,
    )  # fmt: skip
    report = explanations.check(method, n_crops=min(8, len(crops))) if sanity else None
    by_row = {int(r): i for i, r in enumerate(explanations.table["row"])}
    views = []
    for k, row in enumerate(findings.itertuples(index=False)):
        attribution = explanations.attribution(by_row[k], method)
        amap, signed = attribution.maps[0], attribution.signed
        region, heat = key_region(scan, crops[k], amap)
        vmin, vmax = map_scale(amap, signed)
        views.append(page.FindingView(
            rank=int(row.rank),
            context_png=_context_pngs(scan, row),
            plain_png=to_png(explain_rgb(region, heat, signed=signed, opacity=0.0, zoom=3)),
            heat_png=to_png(explain_rgb(region, heat, signed=signed, opacity=0.55, zoom=3)),
            colorbar_png=to_png(colorbar_rgb(signed)),
            legend=f"colour scale {vmin:.3g} … {vmax:.3g}: {colorbar_label(signed)}",
        ))  # fmt: skip
    return views, explanations.status(method), None if report is None else report.passed


def _model_section(facts: Any) -> str:
    figures = (
        page.table(["figure", "value", "interval", "from"], facts.figures, numeric=(1,))
        if facts.figures
        else "<p>Validation figures: not available (no evaluation folder, no "
        "test_metrics.json, no validation metrics in the checkpoint).</p>"
    )
    note = (
        '<p class="muted">Intervals are bootstrap 95% intervals over series, from '
        '<code>nodulekit evaluate</code>; "not available" means no file holds one. Figures on '
        "synthetic or small data say little about real scans.</p>"
    )
    return figures + note + "<h3>Data it was trained on</h3>" + page.table(["", ""], facts.training)


def _provenance(checkpoint: Path, method: str, sanity: bool, segmentation: Any) -> str:
    from nodulekit import __version__
    from nodulekit.train.checkpoint import read_checksum, sha256_of

    digest = read_checksum(checkpoint) or sha256_of(checkpoint)
    rows = [
        ("made by", f"nodulekit {__version__}"),
        ("made on (UTC)", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M")),
        ("checkpoint", f"{checkpoint.name} (SHA-256 {digest[:16]}…)"),
        ("heat map method", f"{method} (sanity check {'run on these findings' if sanity else 'not run'})"),
        ("segmentation", Path(segmentation).name if segmentation else "none (sizes from the detector)"),
    ]  # fmt: skip
    return page.table(["", ""], rows)


def build_report(
    scan: Any,
    *,
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    predictions: pd.DataFrame | str | os.PathLike | None = None,
    segmentation: str | os.PathLike | None = None,
    lobes: Any | None = None,
    evaluation: str | os.PathLike | None = None,
    top: int = 10,
    explained: int = 5,
    method: str = "gradcam",
    sanity: bool = True,
    max_candidates: int = 200,
    device: str = "auto",
) -> Report:
    """Write one self-contained HTML report of a scan's findings and return what it holds.

    Parameters
    ----------
    scan : Scan or path
        A `Scan`, or a ``.mhd``/``.nii.gz`` file or DICOM folder (`nodulekit.data.read_scan`).
    checkpoint : path
        The classifier's checkpoint (a run's ``best.pt``): scores the marks, gives the heat
        maps, and its run folder holds the figures quoted (``test_metrics.json``, an
        ``evaluation/metrics.json``).
    out : path
        The ``.html`` file to write (atomically; folders are created).
    predictions : DataFrame or path, optional
        Marks already made (``seriesuid, coordX, coordY, coordZ, probability``); default:
        full-scan detection with the checkpoint.
    segmentation : path, optional
        A U-Net checkpoint: diameters from its segmentation instead of the blob scale.
    lobes : Mask or path, optional
        A lobe label map (`nodulekit.report.anatomy.LOBE_LABELS`); without it the lobe is
        "lobe not determined".
    evaluation : path, optional
        The ``--out`` folder of ``nodulekit evaluate`` (default: ``evaluation/`` beside the
        checkpoint when present).
    top, explained : int
        Findings listed, and findings shown with their heat maps.
    method : str
        The attribution method (`nodulekit.explain.available_methods`).
    sanity : bool
        Run the cascading-randomisation check on the findings' crops (a few seconds on a CPU).
    """
    from nodulekit._files import write_text_atomic
    from nodulekit.evaluate.scoring import load_model
    from nodulekit.train.checkpoint import load_checkpoint

    scan = _read(scan)
    checkpoint = Path(checkpoint)
    payload = load_checkpoint(checkpoint)  # read and verified once
    model, config = load_model(checkpoint, device=device, payload=payload)
    facts = model_facts(checkpoint, payload, evaluation=evaluation)
    marks = marks_of_scan(scan, model_and_config=(model, config), predictions=predictions,
                          max_candidates=max_candidates, device=device)  # fmt: skip
    segmenter = load_segmenter(segmentation, device=device) if segmentation else None
    lobe_map = read_lobes(lobes) if isinstance(lobes, (str, os.PathLike)) else lobes
    findings = findings_table(scan, marks, top=top, lobes=lobe_map, segmenter=segmenter,
                              device=device)  # fmt: skip
    views, status, passed = explain_findings(
        scan, model, config, findings.head(max(0, int(explained))), method=method,
        sanity=sanity, device=device,
    )  # fmt: skip
    blocks = "".join(
        page.finding_block(v, r, method, status, passed)
        for v, r in zip(views, findings.itertuples(index=False), strict=False)
    )
    spacing = ", ".join(f"{s:.2f}" for s in scan.spacing)
    header = (
        f'<p class="limits"><b>Research and teaching software, not a medical device.</b> '
        f"Scan: {page.esc(scan_label(scan))}; {page.esc(' x '.join(map(str, scan.shape)))} "
        f"voxels (z, y, x) of {page.esc(spacing)} mm (x, y, z).</p>"
    )
    sections = [
        ("Findings, most probable first", page.findings_section(findings, facts.threshold)),
        ("Key slices and heat maps", blocks or "<p>No finding to show.</p>"),
        ("The model's validation figures", _model_section(facts)),
        ("Intended use and limits", INTENDED_USE),
        ("How this report was made", _provenance(checkpoint, method, sanity, segmentation)),
    ]
    text = page.page("Pulmonary nodule findings (nodulekit)", sections, header=header)
    path = write_text_atomic(Path(out), text, permissions=None)
    return Report(Path(path), findings, method, status, passed)


__all__ = ["INTENDED_USE", "NOT_AVAILABLE", "Report", "build_report", "explain_findings"]
