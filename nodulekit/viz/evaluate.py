"""Evaluation figures: ROC and PR with bootstrap bands, calibration, FROC, the error gallery.

ROC, PR and calibration are per *candidate* (several per nodule in LUNA16) and say so; the
FROC is per *nodule*, with the operating point of the chosen threshold marked on it.

Pure functions: tables from `nodulekit.evaluate` in, a matplotlib Figure out (not registered
with pyplot; nothing global changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

FP_TICKS = (0.125, 0.25, 0.5, 1, 2, 4, 8)


def _figure(figsize: tuple[float, float], ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(1, ncols)


def roc_pr_figure(
    bands: dict[str, pd.DataFrame],
    *,
    auc: float | None = None,
    ap: float | None = None,
    prevalence: float | None = None,
    title: str | None = None,
) -> Figure:
    """ROC and precision-recall curves of the candidates with their bootstrap bands.

    Parameters
    ----------
    bands : dict
        `nodulekit.evaluate.metrics.curve_bands` output (``"roc"`` and ``"pr"`` tables).
    auc, ap : float, optional
        Printed in the legends.
    prevalence : float, optional
        Share of positive candidates; drawn as the PR curve of a random classifier.
    """
    fig, (roc_ax, pr_ax) = _figure((9.0, 4.0), 2)
    roc, pr = bands["roc"], bands["pr"]
    roc_ax.fill_between(roc["fpr"], roc["low"], roc["high"], alpha=0.25, label="95% band")
    roc_ax.plot(roc["fpr"], roc["tpr"], lw=2, label="ROC" + (f" (AUC {auc:.3f})" if auc else ""))
    roc_ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="chance")
    roc_ax.set(xlabel="false positive rate (1 - specificity)", ylabel="recall (sensitivity)")
    roc_ax.set_title("ROC (candidates)")
    pr_ax.fill_between(pr["recall"], pr["low"], pr["high"], alpha=0.25, label="95% band")
    pr_ax.plot(pr["recall"], pr["precision"], lw=2, label="PR" + (f" (AP {ap:.3f})" if ap else ""))
    if prevalence is not None:
        pr_ax.axhline(prevalence, color="0.6", ls="--", lw=1, label=f"chance ({prevalence:.3g})")
    pr_ax.set(xlabel="recall (sensitivity)", ylabel="precision")
    pr_ax.set_title("precision-recall (candidates)")
    for ax in (roc_ax, pr_ax):
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is roc_ax else "upper right")
    if title:
        fig.suptitle(title)
    return fig


def calibration_figure(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Reliability diagram: observed share of positive candidates (on a nodule) against
    predicted probability per bin, with the bin counts below
    (`nodulekit.evaluate.metrics.calibration_table`)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 5.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfectly calibrated")
    brier = table.attrs.get("brier")
    label = "model" + (f" (Brier {brier:.3f})" if brier is not None else "")
    top.plot(table["predicted"], table["observed"], marker="o", label=label)
    top.set(ylabel="observed share of positive candidates", xlim=(0, 1), ylim=(0, 1.02))
    top.legend(fontsize=8, loc="upper left")
    top.grid(alpha=0.3)
    bottom.bar(table["predicted"], table["count"], width=0.05, color="0.4")
    bottom.set(xlabel="predicted probability", ylabel="candidates", yscale="log")
    top.set_title(title or "calibration (candidates)")
    return fig


def froc_figure(
    result: Any, *, label: str = "model", title: str | None = None, at: Any = None
) -> Figure:
    """The FROC curve (log2 FP/scan axis) with its bootstrap band and the 7 LUNA16 points.

    ``result`` is a `nodulekit.evaluate.FrocResult`; ``at`` (a
    `nodulekit.evaluate.NoduleRecall`) marks the operating point of its
    threshold: nodules found against false positives per scan (drawn at the axis' edge when
    it lies outside 1/8 ... 8 FP/scan).
    """
    fig, ax = _figure((6.0, 4.2))
    fps, sens = np.asarray(result.fp_per_scan), np.asarray(result.sensitivity)
    grid = np.geomspace(FP_TICKS[0], FP_TICKS[-1], 400)
    ax.plot(grid, np.interp(grid, fps, sens), lw=2, label=f"{label} (CPM {result.cpm:.3f})")
    if result.band is not None:
        band = result.band
        ax.fill_between(band["fp_per_scan"], band["low"], band["high"], alpha=0.2,
                        label="95% band (scans resampled)")  # fmt: skip
    points = result.operating_points
    ax.plot(points["fp_per_scan"], points["sensitivity"], "o", color="C3", label="LUNA16 points")
    for x, y in zip(points["fp_per_scan"], points["sensitivity"], strict=True):
        ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center",
                    fontsize=7)  # fmt: skip
    if at is not None:
        where = "validation threshold" if at.source == "validation" else "threshold"
        ax.plot(np.clip(at.fp_per_scan, FP_TICKS[0], FP_TICKS[-1]), at.recall, "*", ms=13,
                color="C2", label=f"{where} {at.threshold:.3f}: {at.found}/{at.nodules} "
                f"nodules, {at.fp_per_scan:.2f} FP/scan")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(FP_TICKS, [str(t) if t >= 1 else f"1/{int(1 / t)}" for t in FP_TICKS])
    ax.set(xlim=(FP_TICKS[0], FP_TICKS[-1]), ylim=(0, 1.08))
    ax.set(xlabel="average false positives per scan", ylabel="sensitivity")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    c = result.counts
    ax.set_title(title or f"FROC: {c['nodules']} nodules, {c['scans']} scans")
    return fig


def _row_text(row: Any) -> str:
    kind = row.kind
    prob = "no mark" if np.isnan(row.probability) else f"p={row.probability:.3f}"
    size = "" if np.isnan(row.diameter_mm) else f", {row.diameter_mm:.1f} mm"
    if isinstance(row.nearest_kind, str) and row.nearest_kind:
        near = f"nearest {row.nearest_kind} {row.nearest_mm:.1f} mm away"
        if not np.isnan(row.nearest_diameter_mm) and row.nearest_diameter_mm > 0:
            near += f" ({row.nearest_diameter_mm:.1f} mm)"
    else:
        near = "no annotation in this scan"
    return f"{kind}: {prob}{size}\n{near}\n{row.seriesuid[-12:]}"


def error_gallery_figure(
    table: pd.DataFrame, crops: Sequence[Any], *, window: str = "lung"
) -> Figure:
    """One row per error: axial, coronal and sagittal planes through its centre, labelled.

    ``table`` is `nodulekit.evaluate.gallery.error_table`; ``crops`` the matching
    `nodulekit.evaluate.gallery.error_crops`.
    """
    from matplotlib.figure import Figure

    from nodulekit.viz.preprocess import crop_planes

    if len(table) != len(crops):
        raise ValueError(f"{len(table)} table rows but {len(crops)} crops; give one crop per row")
    n = max(len(table), 1)
    fig = Figure(figsize=(8.5, 2.4 * n), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, 4, width_ratios=(1.4, 1, 1, 1)))
    for i, (row, crop) in enumerate(zip(table.itertuples(index=False), crops, strict=True)):
        text_ax = axes[i, 0]
        text_ax.axis("off")
        color = "C3" if row.kind == "false positive" else "C0"
        text_ax.text(0, 0.5, _row_text(row), va="center", fontsize=8, color=color)
        sx, sy, sz = crop.spacing
        nz, ny, nx = crop.shape
        extents = [(0, nx * sx, ny * sy, 0), (0, nx * sx, 0, nz * sz), (0, ny * sy, 0, nz * sz)]
        names = ("axial", "coronal", "sagittal")
        for ax, plane, extent, name in zip(
            axes[i, 1:], crop_planes(crop, window=window), extents, names, strict=True
        ):
            ax.imshow(plane, cmap="gray", vmin=0, vmax=255, extent=extent)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
    if len(table) == 0:
        axes[0, 0].text(0, 0.5, "no errors to show", fontsize=10)
        for ax in axes[0]:
            ax.axis("off")
    return fig


def save_evaluation_figures(evaluation: Any, out: Any, *, dpi: int = 110) -> list:
    """Write froc.png (and roc_pr.png, calibration.png, errors.png when the evaluation has
    them) into ``out``; returns the paths. ``evaluation``: `nodulekit.evaluate.run.Evaluation`."""
    from pathlib import Path

    from nodulekit._files import write_bytes_atomic
    from nodulekit.viz.training import figure_png

    out = Path(out)
    figures = {
        "froc.png": froc_figure(evaluation.froc, at=getattr(evaluation, "nodule_recall", None))
    }
    curves = evaluation.curves
    if "roc" in curves and evaluation.classification is not None:
        c = evaluation.classification
        attrs = c.attrs
        prevalence = attrs["n_positive"] / max(attrs["n_positive"] + attrs["n_negative"], 1)
        figures["roc_pr.png"] = roc_pr_figure(
            curves, auc=c.loc["auc", "value"], ap=c.loc["ap", "value"], prevalence=prevalence
        )
    if "calibration" in curves:
        figures["calibration.png"] = calibration_figure(curves["calibration"])
    if evaluation.gallery_crops:
        figures["errors.png"] = error_gallery_figure(
            evaluation.gallery_rows, evaluation.gallery_crops
        )
    return [
        write_bytes_atomic(out / name, figure_png(fig, dpi=dpi), permissions=None)
        for name, fig in figures.items()
    ]
