"""Validation metrics for imbalanced binary classification (scikit-learn underneath).

Accuracy alone hides a model that never finds a nodule, so the loop reports ROC AUC, average
precision, and recall/precision/F1 both at threshold 0.5 and at the threshold with the best F1,
plus the best recall reachable with precision >= 0.85.
"""

from __future__ import annotations

import math

import numpy as np


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Metrics of probabilities against 0/1 labels; NaN where a metric is undefined.

    Examples
    --------
    >>> m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    >>> m["auc"], m["recall"], m["precision"]
    (0.75, 0.5, 0.5)
    """
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y = np.asarray(labels).astype(int).ravel()
    p = np.asarray(probabilities, dtype=float).ravel()
    nan = float("nan")
    out = {
        "auc": nan,
        "ap": nan,
        "recall": nan,
        "precision": nan,
        "f1": nan,
        "threshold": nan,
        "recall_best": nan,
        "precision_best": nan,
        "f1_best": nan,
        "recall_at_p85": nan,
    }
    if y.size == 0:
        return out
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, (p >= 0.5).astype(int), average="binary", zero_division=0
    )
    out.update(recall=float(recall), precision=float(precision), f1=float(f1))
    if len(np.unique(y)) < 2:
        return out
    out["auc"] = float(roc_auc_score(y, p))
    out["ap"] = float(average_precision_score(y, p))
    curve_p, curve_r, thresholds = precision_recall_curve(y, p)
    curve_p, curve_r = curve_p[:-1], curve_r[:-1]  # the last point has no threshold
    f1s = np.where(curve_p + curve_r > 0, 2 * curve_p * curve_r / (curve_p + curve_r + 1e-12), 0)
    best = int(np.argmax(f1s))
    out.update(
        threshold=float(thresholds[best]),
        recall_best=float(curve_r[best]),
        precision_best=float(curve_p[best]),
        f1_best=float(f1s[best]),
    )
    ok = curve_p >= 0.85
    out["recall_at_p85"] = float(curve_r[ok].max()) if ok.any() else 0.0
    return out


def is_better(score: float, best: float | None) -> bool:
    """True if ``score`` beats ``best`` (NaN never does; anything beats None)."""
    if best is None:
        return True
    return not math.isnan(score) and (math.isnan(best) or score > best)
