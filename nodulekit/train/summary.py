"""What a finished training run says in words: the result lines of `nodulekit train`, the
candidate-level operating point and the recall per nodule-size band (also quoted by the demo).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _fmt(value: Any, spec: str = ".3f") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(number) else format(number, spec)


def result_lines(result: Any) -> list[str]:
    """What a finished run says on the command line (both entry points print these lines)."""
    run = Path(result.run_dir)
    files = [p.name for p in sorted(run.iterdir()) if p.is_file()] if run.is_dir() else []
    best = "n/a" if result.best_epoch is None else str(int(result.best_epoch) + 1)
    monitor = getattr(result, "monitor", "val_auc")
    label = "val Dice" if monitor == "val_dice" else "val AUC"
    lines = [
        f"run folder: {run} ({', '.join(files)})",
        f"best epoch: {best} (counting from 1)  best {label}: {_fmt(result.best_val_auc)}",
    ]
    m = dict(result.test_metrics or {})
    if not m:
        lines.append("held-out test: none (no test subsets, or the run was interrupted)")
        return lines
    if monitor == "val_dice":
        lines.append(
            f"held-out test patches: Dice {_fmt(m.get('dice'))} (nodule patches), "
            f"{_fmt(m.get('dice_global'))} (all voxels pooled)"
        )
        return lines
    lines.append(
        f"held-out test: ROC AUC {_fmt(m.get('auc'))}, average precision {_fmt(m.get('ap'))}"
    )
    lines.append("  " + operating_point(m))
    bands = size_band_recalls(m)
    if bands:
        lines.append(
            "  candidate recall by nodule size: " + ", ".join(f"{k} {v}" for k, v in bands.items())
        )
    return lines


def operating_point(metrics: dict[str, Any]) -> str:
    """``at threshold 0.420 chosen on validation: recall ..., precision ..., F1 ... (per
    candidate)``: candidate-level figures (a nodule has several candidates in LUNA16).

    Test metrics that record where their threshold came from (``threshold_source``) are quoted
    at that threshold (their ``*_best`` keys); older ones at the fixed threshold 0.5.
    """
    source = metrics.get("threshold_source")
    if source and "f1_best" in metrics:
        where, suffix = f"threshold {_fmt(metrics.get('threshold'))} chosen on {source}", "_best"
    else:
        where, suffix = "threshold 0.5", ""
    values = ", ".join(
        f"{name} {_fmt(metrics.get(key + suffix))}"
        for name, key in (("recall", "recall"), ("precision", "precision"), ("F1", "f1"))
    )
    return f"at {where}: {values} (per candidate)"


def size_band_recalls(metrics: dict[str, Any]) -> dict[str, str]:
    """Candidate recall per nodule-size band, with the band's count of positive candidates
    when recorded (``{"< 6 mm": "0.714 of 7 candidates", ...}``; ``positives_<band>``, or
    ``nodules_<band>`` in runs that wrote that name for the same count); empty when the
    metrics hold no bands. Candidates, not nodules: a nodule has several in LUNA16's list."""
    from nodulekit.train.metrics import SIZE_BAND_LABELS

    out = {}
    for key, label in SIZE_BAND_LABELS.items():
        if f"recall_{key}" in metrics:
            count = metrics.get(f"positives_{key}", metrics.get(f"nodules_{key}"))
            of = "" if count is None else f" of {int(count)} candidate" + "s" * (int(count) != 1)
            out[label] = f"{_fmt(metrics[f'recall_{key}'])}{of}"
    return out
