"""Evaluate a run or a submission and write its tables into one folder.

`evaluate_predictions` scores any LUNA16 submission file (FROC, CPM, error gallery rows);
`evaluate_checkpoint` first scores the candidates of the held-out subsets with a checkpoint,
then adds the classification metrics of the candidates (with series-bootstrap intervals, per
size band), the ROC/PR and calibration curves, and the per-nodule view at the threshold:
nodules found per size band and false positives per scan. Candidate figures count positive
*candidates* (several per nodule in LUNA16's candidates_V2.csv); the FROC, CPM and
nodule_recall count annotated *nodules*. Tables written into ``out``:

=============================  ========================================================
predictions.csv                the submission scored (checkpoint mode)
froc.csv                       the FROC curve: fp_per_scan, sensitivity, threshold
froc_points.csv                sensitivity and 95% CI at 1/8 ... 8 FP/scan
froc_band.csv                  the bootstrap band on a grid of FP/scan
froc_size_bands.csv            CPM and sensitivities per nodule size band
metrics.json                   CPM, counts, points (and the classification metrics)
classification.csv             metric, value, ci_low, ci_high (checkpoint mode)
size_bands.csv                 candidate recall/AUC/AP per nodule size band (checkpoint mode)
nodule_recall.csv              nodules found per size band and false positives per scan at
                               the threshold (checkpoint mode; `nodule_recall`)
roc/pr/calibration_curve.csv   the curves behind the figures (checkpoint mode)
errors.csv                     the error gallery's rows
=============================  ========================================================

The figures (froc.png, roc_pr.png, calibration.png, errors.png) are drawn from the returned
`Evaluation` by `nodulekit.viz.evaluate.save_evaluation_figures`: the figure layer sits above
this one.
"""

from __future__ import annotations

import json
import math
import os
import warnings
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
    threshold: float | None = None
    threshold_source: str = "none: FROC and CPM sweep every threshold"
    nodule_recall: Any = None
    #: the marks evaluated (seriesuid, coordX, coordY, coordZ, probability)
    predictions: pd.DataFrame | None = None

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
    evaluation: Evaluation,
    luna: Any,
    out: Path | None,
    *,
    n_false_positives: int = 8,
    crops: bool | None = None,
) -> None:
    """The error table (errors.csv) and crops of its rows whose scan is on disk (at most 12).

    ``crops`` (default: when ``out`` is given, i.e. figures will be drawn) cuts the crops of
    the error gallery figure: up to 12 full scans are read for them.
    """
    from nodulekit.evaluate.gallery import error_crops, error_table

    table = error_table(evaluation.froc, luna.excluded, n_false_positives=n_false_positives)
    evaluation.errors = table
    if out is not None:
        _csv(table, out / "errors.csv", evaluation.files, index=False)
    on_disk = table[table["seriesuid"].isin(set(luna.scans["seriesuid"]))].head(12)
    on_disk = on_disk.sort_values("seriesuid", kind="stable").reset_index(drop=True)
    evaluation.gallery_rows = on_disk
    if crops is None:
        crops = out is not None
    evaluation.gallery_crops = error_crops(on_disk, luna.load) if crops and len(on_disk) else []


def evaluate_predictions(
    predictions: pd.DataFrame | str | os.PathLike,
    data: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    subsets: Iterable[int] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    errors: bool = True,
    gallery_crops: bool | None = None,
) -> Evaluation:
    """FROC/CPM of a LUNA16 submission against the tables of ``data`` (a LUNA16 root).

    ``subsets``: evaluate only the scans on disk in those subsets (default: every series of
    ``seriesuids.csv``, as the challenge did). Writes the FROC files (and the error gallery)
    into ``out`` when given. ``gallery_crops``: cut the error gallery's crops (default: when
    ``out`` is given). A submission has no validation split: FROC and CPM use no threshold,
    and metrics.json says so (``threshold`` null).
    """
    from nodulekit.data import Luna16
    from nodulekit.evaluate._froc import froc
    from nodulekit.evaluate.predictions import check_predictions, read_predictions

    luna = Luna16(data, warn_missing=False)
    if isinstance(predictions, pd.DataFrame):
        table = check_predictions(predictions, known_uids=luna.seriesuids)
    else:
        table = read_predictions(predictions, known_uids=luna.seriesuids)
    scans = scans_of_subsets(luna, subsets)
    result = froc(table, luna.annotations, luna.excluded, scans, n_resamples=n_resamples, seed=seed)
    evaluation = Evaluation(froc=result, predictions=table)
    evaluation.froc_size_bands = _froc_bands(table, luna, scans)
    if out is not None:
        out = Path(out)
        write_froc(result, out, evaluation.files)
        _csv(evaluation.froc_size_bands, out / "froc_size_bands.csv", evaluation.files, index=False)
        _write_json(evaluation, out)
    if errors:
        gallery(evaluation, luna, out, crops=gallery_crops)
    return evaluation


def _froc_bands(predictions: pd.DataFrame, luna: Any, scans: list[str]) -> pd.DataFrame:
    """CPM per nodule size band (`froc_by_group`)."""
    from nodulekit.evaluate._froc import froc_by_group
    from nodulekit.train.metrics import size_band

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
        "bootstrap": result.bootstrap,
        "operating_points": result.operating_points.to_dict(orient="records"),
        "threshold": evaluation.threshold,
        "threshold_source": evaluation.threshold_source,
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
    if evaluation.nodule_recall is not None:
        payload["nodule_recall"] = evaluation.nodule_recall.to_dict()
    text = json.dumps(_json_safe(payload), indent=2)
    path = write_text_atomic(out / "metrics.json", text + "\n", permissions=None)
    evaluation.files.append(path)


def attach_diameters(candidates: pd.DataFrame, annotations: pd.DataFrame) -> np.ndarray:
    """Diameter (mm) of the annotated nodule each candidate lies in (nearest), NaN if none."""
    from nodulekit.evaluate._froc import match_marks

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


def _held_out(
    config: dict, luna: Any, subsets: Iterable[int] | None, checkpoint: Any = "checkpoint"
) -> list[int]:
    """The subsets to evaluate: ``subsets``, else the run's test subsets; never, silently,
    the run's validation or training subsets (refused, or a warning naming them)."""
    from nodulekit.train.data import choose_splits

    present = sorted(int(v) for v in luna.scans["subset"].unique())
    try:
        val, test = choose_splits(present, config.get("val_subsets"), config.get("test_subsets"))
    except NodulekitError:  # too few subsets here to tell the run's splits
        val, test = (), tuple(config.get("test_subsets") or ())
    if subsets is None:
        if not test:
            raise NodulekitError(
                f"{checkpoint}: its run held out no test subset (test_subsets="
                f"{config.get('test_subsets')!r}, validation on {list(val)}): evaluating it "
                "would score data it was tuned on; pass --subsets with subsets the run neither "
                "trained nor validated on"
            )
        return sorted(int(s) for s in test)
    chosen = sorted({int(s) for s in subsets})
    seen_val = [s for s in chosen if s in val]
    seen_train = [s for s in chosen if s not in val and s not in test and s in present]
    if seen_val or seen_train:
        warnings.warn(
            f"{checkpoint}: evaluating on subset(s) the run saw: "
            + "; ".join(
                f"{name} {seen}"
                for name, seen in (("validation", seen_val), ("training", seen_train))
                if seen
            )
            + f". Figures on them flatter the model; its test subsets are {list(test)}",
            UserWarning,
            stacklevel=3,
        )
    return chosen


def validation_threshold(
    checkpoint: str | os.PathLike, *, payload: dict | None = None
) -> float | None:
    """The best-F1 threshold chosen on validation at the checkpoint's epoch (``val_threshold``
    in its metrics; else ``threshold`` of the run folder's test_metrics.json); None if none.
    ``payload``: the checkpoint already loaded (`load_checkpoint`), else it is read here."""
    from nodulekit.train.checkpoint import load_checkpoint

    if payload is None:
        payload = load_checkpoint(checkpoint, map_location="cpu")
    value = (payload.get("metrics") or {}).get("val_threshold")
    tested = Path(checkpoint).with_name("test_metrics.json")
    if value is None and tested.is_file():
        value = json.loads(tested.read_text(encoding="utf-8")).get("threshold")
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _operating_point(
    checkpoint: Any, threshold: float | None, payload: dict | None = None
) -> tuple[float, str]:
    if threshold is not None:
        return float(threshold), "given"
    chosen = validation_threshold(checkpoint, payload=payload)
    if chosen is None:
        return 0.5, "0.5, not tuned: the checkpoint records no validation threshold"
    return chosen, "validation"


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
    threshold: float | None = None,
    batch_size: int = 128,
    device: str = "auto",
    n_resamples: int = 1000,
    seed: int = 0,
    cache_workers: int = 2,
    errors: bool = True,
    gallery_crops: bool | None = None,
) -> Evaluation:
    """Score the held-out subsets' candidates with ``checkpoint`` and evaluate them.

    ``subsets`` default to the run's test subsets; a run without any is refused (pass
    ``subsets``), and ``subsets`` the run trained or validated on give a warning.
    ``threshold`` (accuracy, recall, precision, F1...) defaults to the validation's best-F1
    threshold of the checkpoint's epoch, as in the run's test_metrics.json (metrics.json says
    ``threshold_source``: "validation" or "given"); at the same threshold, nodule_recall.csv
    and metrics.json's ``nodule_recall`` give the nodules found per size band and the false
    positives per scan (`nodulekit.evaluate.nodule_recall`). Crops come from the run's crop cache
    (``config["cache"]``; else ``<data>/.nodulekit-cache`` when the data is writable, else the
    user's own cache folder), built if needed with the checkpoint's geometry;
    ``crop_size_mm``/``crop_shape`` that differ from it are refused (`CheckpointError`).
    """
    from nodulekit.data import Luna16
    from nodulekit.evaluate._froc import froc
    from nodulekit.evaluate._nodule_recall import nodule_recall
    from nodulekit.evaluate.predictions import write_predictions
    from nodulekit.evaluate.scoring import crop_geometry, load_model, score_cache
    from nodulekit.train.checkpoint import load_checkpoint
    from nodulekit.train.config import TrainConfig
    from nodulekit.train.pipeline import open_or_build_cache

    payload = load_checkpoint(checkpoint)  # read and verified once: the model and the threshold
    model, config = load_model(checkpoint, device=device, payload=payload)
    size_mm, shape = crop_geometry(
        config, checkpoint=checkpoint, size_mm=crop_size_mm, shape_zyx=crop_shape
    )
    luna = Luna16(data, warn_missing=False)
    chosen = _held_out(config, luna, subsets, checkpoint)
    scans = scans_of_subsets(luna, chosen)
    threshold, source = _operating_point(checkpoint, threshold, payload)
    out_dir = Path(out) if out is not None else None
    cache_dir = _cache_dir(config, data)
    cache = open_or_build_cache(
        TrainConfig(
            data=str(data),
            out=str(cache_dir),
            cache=str(cache_dir),
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
    evaluation = Evaluation(
        froc=result, threshold=threshold, threshold_source=source, predictions=predictions
    )
    evaluation.froc_size_bands = _froc_bands(predictions, luna, scans)
    evaluation.nodule_recall = nodule_recall(result, threshold, source=source)
    if out_dir is not None:
        evaluation.files.append(write_predictions(predictions, out_dir / "predictions.csv"))
        write_froc(result, out_dir, evaluation.files)
        _csv(evaluation.froc_size_bands, out_dir / "froc_size_bands.csv", evaluation.files,
             index=False)  # fmt: skip
        _csv(evaluation.nodule_recall.table, out_dir / "nodule_recall.csv", evaluation.files,
             index=False)  # fmt: skip
    labelled = candidates[candidates["class"].isin([0, 1])]
    _classification(
        labelled, luna.annotations, out_dir, evaluation,
        threshold=threshold, n_resamples=n_resamples, seed=seed,
    )  # fmt: skip
    if errors:
        gallery(evaluation, luna, out_dir, crops=gallery_crops)
    if out_dir is not None:
        _write_json(evaluation, out_dir)
    return evaluation


def _cache_dir(config: dict, data: str | os.PathLike) -> Path:
    """The run's crop cache when it was built from this data root; else training's default
    (`nodulekit.train.pipeline.crop_cache_dir`: ``<data>/.nodulekit-cache`` when this user
    can use it, else the user's own folder)."""
    from nodulekit.train.pipeline import crop_cache_dir

    same_data = config.get("data") and Path(config["data"]).resolve() == Path(data).resolve()
    return crop_cache_dir(data, config.get("cache") if same_data else None)
