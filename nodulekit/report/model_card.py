"""What the report says about the model: its figures with intervals and the data it learned from.

Everything here is *read*, never computed: the checkpoint's config, epoch, validation metrics
and data fingerprint (`nodulekit.train.checkpoint.load_checkpoint`), the run folder's
``test_metrics.json`` (held-out test at the validation's threshold, written by the training
loop) and an evaluation folder's ``metrics.json`` (LUNA16 CPM, sensitivities at the FROC
points and classification metrics with bootstrap intervals, written by
`nodulekit.evaluate.run`). Whatever is absent is said to be "not available"; nothing is
estimated in its place.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOT_AVAILABLE = "not available"

#: where an evaluation folder is looked for, relative to the checkpoint's run folder
EVALUATION_FOLDERS = ("evaluation", "evaluate", "eval")

#: classification metrics quoted from an evaluation, in this order, with their words
CLASSIFICATION_NAMES = {
    "auc": "ROC AUC (candidates)",
    "ap": "average precision (candidates)",
    "sensitivity": "candidate recall at the validation threshold",
    "recall": "candidate recall at the validation threshold",
    "specificity": "candidate specificity at the validation threshold",
    "precision": "candidate precision at the validation threshold",
}


@dataclass
class ModelFacts:
    """Rows of ``(what, value, interval, source)`` text for the report's model section."""

    figures: list[tuple[str, str, str, str]] = field(default_factory=list)
    training: list[tuple[str, str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    #: the operating threshold chosen on validation (None when no file records one)
    threshold: float | None = None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: Any, digits: int = 3) -> str:
    number = _number(value)
    return NOT_AVAILABLE if number is None else f"{number:.{digits}f}"


def _interval(low: Any, high: Any) -> str:
    low, high = _number(low), _number(high)
    if low is None or high is None:
        return NOT_AVAILABLE
    return f"{low:.3f} – {high:.3f} (95%)"


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def find_evaluation(checkpoint: Path, evaluation: str | os.PathLike | None) -> Path | None:
    """The ``metrics.json`` of an evaluation: the folder given, else one beside the run."""
    if evaluation is not None:
        path = Path(evaluation)
        path = path / "metrics.json" if path.is_dir() else path
        if not path.is_file():
            from nodulekit.errors import NodulekitError

            raise NodulekitError(
                f"{evaluation}: no metrics.json; give the --out folder of `nodulekit evaluate`"
            )
        return path
    run = checkpoint.parent
    for name in EVALUATION_FOLDERS:
        if (run / name / "metrics.json").is_file():
            return run / name / "metrics.json"
    return None


def _evaluation_rows(metrics: dict, source: str) -> list[tuple[str, str, str, str]]:
    rows = []
    if "cpm" in metrics:
        ci = metrics.get("cpm_ci") or [None, None]
        rows.append(("LUNA16 CPM (mean sensitivity at 1/8 … 8 false marks per scan)",
                     _fmt(metrics["cpm"]), _interval(*ci[:2]), source))  # fmt: skip
    for point in metrics.get("operating_points") or []:
        fp = _number(point.get("fp_per_scan"))
        if fp in (1.0, 4.0):
            rows.append((f"sensitivity at {fp:g} false mark(s) per scan", _fmt(point.get("sensitivity")),
                         _interval(point.get("ci_low"), point.get("ci_high")), source))  # fmt: skip
    classification = metrics.get("classification") or {}
    seen = set()
    for key, words in CLASSIFICATION_NAMES.items():
        entry = classification.get(key)
        if isinstance(entry, dict) and words not in seen:
            seen.add(words)
            rows.append((words, _fmt(entry.get("value")),
                         _interval(entry.get("ci_low"), entry.get("ci_high")), source))  # fmt: skip
    return rows


def _test_rows(test: dict, source: str) -> list[tuple[str, str, str, str]]:
    where = test.get("threshold_source") or "0.5 (fixed)"
    rows = [("held-out test ROC AUC", _fmt(test.get("auc")), NOT_AVAILABLE, source)]
    suffix = "_best" if "recall_best" in test else ""
    threshold = _fmt(test.get("threshold"))
    for key, words in (("recall", "candidate recall"), ("precision", "candidate precision")):
        label = f"held-out test {words} at threshold {threshold} (chosen on {where})"
        rows.append((label, _fmt(test.get(key + suffix)), NOT_AVAILABLE, source))
    return rows


def _training_rows(payload: dict, config: dict) -> list[tuple[str, str]]:
    data = config.get("data")
    subsets = {
        "validation subsets": config.get("val_subsets"),
        "test subsets (held out)": config.get("test_subsets"),
    }
    rows = [
        ("model", str(config.get("model", NOT_AVAILABLE))),
        ("data set (folder name)", Path(str(data)).name if data else NOT_AVAILABLE),
        ("data fingerprint", str(payload.get("data_fingerprint") or NOT_AVAILABLE)),
        *((k, ", ".join(map(str, v)) if v else NOT_AVAILABLE) for k, v in subsets.items()),
        ("crops", f"{_fmt(config.get('crop_size_mm'), 0)} mm in "
                  f"{'x'.join(map(str, config.get('crop_shape') or [])) or '?'} voxels"),
        ("epochs trained (best epoch kept)", str(int(payload.get("epoch", -1)) + 1)),
    ]  # fmt: skip
    return rows


def model_facts(
    checkpoint: str | os.PathLike,
    payload: dict,
    *,
    evaluation: str | os.PathLike | None = None,
) -> ModelFacts:
    """The model section's rows from the checkpoint ``payload`` and the files beside it."""
    checkpoint = Path(checkpoint)
    config = dict(payload.get("config") or {})
    facts = ModelFacts(training=_training_rows(payload, config))
    metrics_path = find_evaluation(checkpoint, evaluation)
    if metrics_path is not None:
        metrics = _read_json(metrics_path) or {}
        facts.figures += _evaluation_rows(metrics, f"evaluation ({metrics_path.parent.name}/)")
        facts.sources.append(str(metrics_path.name))
    test = _read_json(checkpoint.parent / "test_metrics.json")
    if test is not None:
        facts.figures += _test_rows(test, "run's test_metrics.json")
        facts.sources.append("test_metrics.json")
    validation = payload.get("metrics") or {}
    facts.threshold = _number((test or {}).get("threshold"))
    if facts.threshold is None:
        facts.threshold = _number(validation.get("val_threshold"))
    if _number(validation.get("val_auc")) is not None:
        facts.figures.append(("validation ROC AUC (best epoch)", _fmt(validation["val_auc"]),
                              NOT_AVAILABLE, "checkpoint"))  # fmt: skip
    return facts
