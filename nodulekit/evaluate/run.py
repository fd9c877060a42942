"""Evaluate a run or a submission and write its tables into one folder.

`evaluate_predictions` scores any LUNA16 submission file (FROC, CPM, error gallery rows);
`evaluate_checkpoint` first scores the candidates of the held-out subsets with a checkpoint,
then adds the classification metrics (with series-bootstrap intervals, per size band) and the
ROC/PR and calibration curves. Tables written into ``out``:

=============================  ========================================================
predictions.csv                the submission scored (checkpoint mode)
froc.csv                       the FROC curve: fp_per_scan, sensitivity, threshold
froc_points.csv                sensitivity and 95% CI at 1/8 ... 8 FP/scan
froc_band.csv                  the bootstrap band on a grid of FP/scan
froc_size_bands.csv            CPM and sensitivities per nodule size band
metrics.json                   CPM, counts, points (and the classification metrics)
classification.csv             metric, value, ci_low, ci_high (checkpoint mode)
size_bands.csv                 recall/AUC/AP per nodule size band (checkpoint mode)
roc/pr/calibration_curve.csv   the curves behind the figures (checkpoint mode)
errors.csv                     the error gallery's rows
=============================  ========================================================

The figures (froc.png, roc_pr.png, calibration.png, errors.png) are drawn from the returned
`Evaluation` by `nodulekit.viz.evaluate.save_evaluation_figures`: the figure layer sits above
this one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nodulekit._files import atomic_write, write_text_atomic
from nodulekit.errors import NodulekitError


@dataclass
class Evaluation:
    """What an evaluation produced: the FROC result, tables, and the files written."""

    froc: Any
    classification: pd.DataFrame | None = None
    size_bands: pd.DataFrame | None = None
    errors: pd.DataFrame | None = None
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    froc_size_bands: pd.DataFrame | None = None
    gallery_rows: pd.DataFrame | None = None
    gallery_crops: list = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """One line with the CPM (and AUC when candidates were classified)."""
        line = self.froc.summary()
        if self.classification is not None:
            auc = self.classification.loc["auc"]
            line += f"; candidate AUC {auc['value']:.3f} ({auc['ci_low']:.3f}-{auc['ci_high']:.3f})"
        return line


def _csv(table: pd.DataFrame, path: Path, files: list[Path], **kwargs: Any) -> None:
    with atomic_write(path, "w", permissions=None) as handle:
        table.to_csv(handle, **kwargs)
    files.append(path)


def scans_of_subsets(luna: Any, subsets: Iterable[int] | None) -> list[str]:
    """The series evaluated: those on disk in ``subsets``, or every series of the data set."""
    if subsets is None:
        return list(luna.seriesuids)
    subsets = sorted({int(s) for s in subsets})
    chosen = luna.scans[luna.scans["subset"].isin(subsets)]["seriesuid"].tolist()
    if not chosen:
        have = sorted(luna.scans["subset"].unique().tolist())
        raise NodulekitError(
            f"{luna.root}: no scan on disk in subset(s) {subsets}; subsets on disk: {have}"
        )
    return chosen


def write_froc(result: Any, out: Path, files: list[Path]) -> None:
    """froc.csv, froc_points.csv and froc_band.csv."""
    curve = pd.DataFrame(
        {
            "fp_per_scan": result.fp_per_scan,
            "sensitivity": result.sensitivity,
            "threshold": result.thresholds,
        }
    )
    _csv(curve, out / "froc.csv", files, index=False)
    _csv(result.operating_points, out / "froc_points.csv", files, index=False)
    if result.band is not None:
        _csv(result.band, out / "froc_band.csv", files, index=False)


def gallery(
    evaluation: Evaluation, luna: Any, out: Path | None, *, n_false_positives: int = 8
) -> None:
    """The error table (errors.csv) and crops of its rows whose scan is on disk (at most 12)."""
    from nodulekit.evaluate.gallery import error_crops, error_table

    table = error_table(evaluation.froc, luna.excluded, n_false_positives=n_false_positives)
    evaluation.errors = table
    if out is not None:
        _csv(table, out / "errors.csv", evaluation.files, index=False)
    on_disk = table[table["seriesuid"].isin(set(luna.scans["seriesuid"]))].head(12)
    on_disk = on_disk.sort_values("seriesuid", kind="stable").reset_index(drop=True)
    evaluation.gallery_rows = on_disk
    evaluation.gallery_crops = error_crops(on_disk, luna.load) if len(on_disk) else []


def evaluate_predictions(
    predictions: pd.DataFrame | str | os.PathLike,
    data: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    subsets: Iterable[int] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    errors: bool = True,
) -> Evaluation:
    """FROC/CPM of a LUNA16 submission against the tables of ``data`` (a LUNA16 root).

    ``subsets``: evaluate only the scans on disk in those subsets (default: every series of
    ``seriesuids.csv``, as the challenge did). Writes the FROC files (and the error gallery)
    into ``out`` when given.
    """
    from nodulekit.data import Luna16
    from nodulekit.evaluate.froc import froc
    from nodulekit.evaluate.predictions import check_predictions, read_predictions

    luna = Luna16(data, warn_missing=False)
    if isinstance(predictions, pd.DataFrame):
        table = check_predictions(predictions, known_uids=luna.seriesuids)
    else:
        table = read_predictions(predictions, known_uids=luna.seriesuids)
    scans = scans_of_subsets(luna, subsets)
    result = froc(table, luna.annotations, luna.excluded, scans, n_resamples=n_resamples, seed=seed)
    evaluation = Evaluation(froc=result)
    evaluation.froc_size_bands = _froc_bands(table, luna, scans)
    if out is not None:
        out = Path(out)
        write_froc(result, out, evaluation.files)
        _csv(evaluation.froc_size_bands, out / "froc_size_bands.csv", evaluation.files, index=False)
        _write_json(evaluation, out)
    if errors:
        gallery(evaluation, luna, out)
    return evaluation


def _froc_bands(predictions: pd.DataFrame, luna: Any, scans: list[str]) -> pd.DataFrame:
    """CPM per nodule size band (`froc_by_group`)."""
    from nodulekit.evaluate.froc import froc_by_group
    from nodulekit.evaluate.metrics import size_band

    ann = luna.annotations
    return froc_by_group(predictions, ann, luna.excluded, scans, size_band(ann["diameter_mm"]))


def _json_safe(value: Any) -> Any:
    """Plain JSON: numpy numbers as Python numbers, NaN as null."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    return value


def _write_json(evaluation: Evaluation, out: Path) -> None:
    result = evaluation.froc
    payload: dict[str, Any] = {
        "cpm": result.cpm,
        "cpm_ci": list(result.cpm_ci),
        "counts": result.counts,
        "operating_points": result.operating_points.to_dict(orient="records"),
    }
    if evaluation.classification is not None:
        c = evaluation.classification
        payload["classification"] = {name: c.loc[name].to_dict() for name in c.index} | {
            "attrs": {k: v for k, v in c.attrs.items() if k != "seed"}
        }
    if evaluation.size_bands is not None:
        payload["size_bands"] = evaluation.size_bands.to_dict(orient="records")
    if evaluation.froc_size_bands is not None:
        payload["froc_size_bands"] = evaluation.froc_size_bands.to_dict(orient="records")
    text = json.dumps(_json_safe(payload), indent=2)
    path = write_text_atomic(out / "metrics.json", text + "\n", permissions=None)
    evaluation.files.append(path)


def attach_diameters(candidates: pd.DataFrame, annotations: pd.DataFrame) -> np.ndarray:
    """Diameter (mm) of the annotated nodule each candidate lies in (nearest), NaN if none."""
    from nodulekit.evaluate.froc import match_marks

    scans = list(dict.fromkeys(candidates["seriesuid"].astype(str)))
    index = pd.Index(scans)
    marks = candidates[["seriesuid", "coordX", "coordY", "coordZ"]].assign(
        _scan=index.get_indexer(candidates["seriesuid"].astype(str))
    )
    nodules = annotations.assign(_scan=index.get_indexer(annotations["seriesuid"].astype(str)))
    nodules = nodules[nodules["_scan"] >= 0].reset_index(drop=True)
    f_rows, m_rows, d2 = match_marks(marks.reset_index(drop=True), nodules, len(scans))
    out = np.full(len(candidates), np.nan)
    order = np.argsort(-d2)  # nearest written last wins
    out[m_rows[order]] = nodules["diameter_mm"].to_numpy()[f_rows[order]]
    return out


def _held_out(config: dict, luna: Any, subsets: Iterable[int] | None) -> list[int]:
    if subsets is not None:
        return sorted({int(s) for s in subsets})
    test = config.get("test_subsets") or []
    if test:
        return sorted(int(s) for s in test)
    return [int(luna.scans["subset"].max())]


def _classification(
    candidates: pd.DataFrame,
    annotations: pd.DataFrame,
    out: Path | None,
    evaluation: Evaluation,
    *,
    threshold: float,
    n_resamples: int,
    seed: int,
) -> None:
    """Classification metrics, size bands and the ROC/PR and calibration figures."""
    from nodulekit.evaluate.metrics import (
        bootstrap_metrics,
        calibration_table,
        curve_bands,
        metrics_by_group,
        size_band,
    )

    y = candidates["class"].to_numpy(int)
    p = candidates["probability"].to_numpy(float)
    s = candidates["seriesuid"].to_numpy(str)
    table = bootstrap_metrics(y, p, s, threshold=threshold, n_resamples=n_resamples, seed=seed)
    evaluation.classification = table
    diameters = attach_diameters(candidates, annotations)
    evaluation.size_bands = metrics_by_group(
        y, p, s, size_band(diameters), threshold=threshold, n_resamples=n_resamples, seed=seed
    )
    if len(np.unique(y)) == 2:
        evaluation.curves = curve_bands(y, p, s, n_resamples=min(n_resamples, 300), seed=seed)
        evaluation.curves["calibration"] = calibration_table(y, p)
    if out is not None:
        _csv(table, out / "classification.csv", evaluation.files)
        _csv(evaluation.size_bands, out / "size_bands.csv", evaluation.files, index=False)
        for name, curve in evaluation.curves.items():
            _csv(curve, out / f"{name}_curve.csv", evaluation.files, index=False)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    subsets: Iterable[int] | None = None,
    crop_size_mm: float | None = None,
    crop_shape: tuple[int, int, int] | None = None,
    threshold: float = 0.5,
    batch_size: int = 128,
    device: str = "auto",
    n_resamples: int = 1000,
    seed: int = 0,
    cache_workers: int = 2,
    errors: bool = True,
) -> Evaluation:
    """Score the held-out subsets' candidates with ``checkpoint`` and evaluate them.

    ``subsets`` default to the checkpoint's ``test_subsets`` (else the last subset on disk).
    Crops come from the training crop cache (built if needed) with the checkpoint's geometry;
    ``crop_size_mm``/``crop_shape`` that differ from it are refused (`CheckpointError`).
    """
    from nodulekit.data import Luna16
    from nodulekit.evaluate.froc import froc
    from nodulekit.evaluate.predictions import write_predictions
    from nodulekit.evaluate.scoring import crop_geometry, load_model, score_cache
    from nodulekit.train.config import TrainConfig
    from nodulekit.train.pipeline import open_or_build_cache

    model, config = load_model(checkpoint, device=device)
    size_mm, shape = crop_geometry(
        config, checkpoint=checkpoint, size_mm=crop_size_mm, shape_zyx=crop_shape
    )
    luna = Luna16(data, warn_missing=False)
    chosen = _held_out(config, luna, subsets)
    scans = scans_of_subsets(luna, chosen)
    out_dir = Path(out) if out is not None else None
    cache = open_or_build_cache(
        TrainConfig(
            data=str(data),
            out=str(out_dir or Path(data) / ".nodulekit-eval"),
            crop_size_mm=size_mm,
            crop_shape=shape,
            cache_workers=cache_workers,
        )
    )
    rows = np.flatnonzero(cache.index["seriesuid"].isin(scans).to_numpy())
    if rows.size == 0:
        raise NodulekitError(f"{data}: no candidates in subset(s) {chosen} to score")
    probability = score_cache(model, cache, rows, batch_size=batch_size, device=device)
    candidates = cache.index.iloc[rows][["seriesuid", "coordX", "coordY", "coordZ", "class"]]
    candidates = candidates.assign(probability=probability).reset_index(drop=True)
    predictions = candidates.drop(columns="class")
    result = froc(
        predictions, luna.annotations, luna.excluded, scans, n_resamples=n_resamples, seed=seed
    )
    evaluation = Evaluation(froc=result)
    evaluation.froc_size_bands = _froc_bands(predictions, luna, scans)
    if out_dir is not None:
        evaluation.files.append(write_predictions(predictions, out_dir / "predictions.csv"))
        write_froc(result, out_dir, evaluation.files)
        _csv(evaluation.froc_size_bands, out_dir / "froc_size_bands.csv", evaluation.files,
             index=False)  # fmt: skip
    labelled = candidates[candidates["class"].isin([0, 1])]
    _classification(
        labelled, luna.annotations, out_dir, evaluation,
        threshold=threshold, n_resamples=n_resamples, seed=seed,
    )  # fmt: skip
    if errors:
        gallery(evaluation, luna, out_dir)
    if out_dir is not None:
        _write_json(evaluation, out_dir)
    return evaluation
