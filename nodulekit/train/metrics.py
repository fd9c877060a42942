"""Validation metrics for imbalanced binary classification (scikit-learn underneath).

Accuracy alone hides a model that never finds a nodule, so the loop reports ROC AUC, average
precision, and recall/precision/F1 both at threshold 0.5 and at the operating points chosen on
the validation split (best F1; highest recall at precision >= 0.85). The test split is scored
at the validation's operating points: nothing is tuned on test.
"""

from __future__ import annotations

import math

import numpy as np

#: The ONE definition of nodule size bands (diameter in mm), half-open ``[low, high)`` as in
#: LUNA16 reports: ``<6``, ``6-10`` (6 <= d < 10), ``10-20`` (10 <= d < 20), ``>=20``. A
#: 10.0 mm nodule is in ``10-20 mm``. Small nodules are where models fail.
SIZE_BAND_NAMES: tuple[str, ...] = ("<6 mm", "6-10 mm", "10-20 mm", ">=20 mm")
SIZE_BAND_EDGES_MM: tuple[float, ...] = (0.0, 6.0, 10.0, 20.0, float("inf"))

#: The coarser bands of the training/test metrics (``recall_<key>``), on the same edges:
#: ``gt10mm`` is ``10-20 mm`` and ``>=20 mm`` together (d >= 10).
SIZE_BANDS_MM: dict[str, tuple[float, float]] = {
    "lt6mm": (0.0, 6.0),
    "6to10mm": (6.0, 10.0),
    "gt10mm": (10.0, float("inf")),
}
#: how those bands read on screen and in tables
SIZE_BAND_LABELS: dict[str, str] = {"lt6mm": "< 6 mm", "6to10mm": "6-10 mm", "gt10mm": ">= 10 mm"}


def size_band(diameter_mm) -> np.ndarray:
    """Size band name of each diameter (`SIZE_BAND_NAMES`, half-open ``[low, high)``).

    NaN or negative diameters (unknown size, non-nodules) give ``""``.

    Examples
    --------
    >>> size_band([3.5, 6.0, 9.99, 10.0, 20.0, 23.4, float("nan")]).tolist()
    ['<6 mm', '6-10 mm', '6-10 mm', '10-20 mm', '>=20 mm', '>=20 mm', '']
    """
    d = np.asarray(diameter_mm, dtype=float)
    out = np.full(d.shape, "", dtype=object)
    for name, low, high in zip(
        SIZE_BAND_NAMES, SIZE_BAND_EDGES_MM[:-1], SIZE_BAND_EDGES_MM[1:], strict=True
    ):
        out[(d >= low) & (d < high)] = name
    return out


#: the keys of `binary_metrics`, in order
METRIC_KEYS = (
    "auc",
    "ap",
    "recall",
    "precision",
    "f1",
    "threshold",
    "recall_best",
    "precision_best",
    "f1_best",
    "recall_at_p85",
    "threshold_p85",
    "precision_at_p85",
)


def _at(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(recall, precision, F1) when ``p >= threshold`` says nodule; 0 where undefined."""
    if math.isnan(threshold):
        return 0.0, float("nan"), 0.0
    said = p >= threshold
    tp = float(np.sum(said & (y == 1)))
    fp, fn = float(np.sum(said & (y != 1))), float(np.sum(~said & (y == 1)))
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0  # as scikit-learn computes it
    return recall, precision, f1


def choose_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Operating points chosen on these (validation) predictions.

    ``threshold``: the one with the best F1; ``threshold_p85``: the one with the highest
    recall among those with precision >= 0.85. NaN where undefined (one class only, or no
    threshold reaches precision 0.85).

    Examples
    --------
    >>> choose_thresholds(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    {'threshold': 0.4, 'threshold_p85': 0.9}
    """
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(labels).astype(int).ravel()
    p = np.asarray(probabilities, dtype=float).ravel()
    out = {"threshold": float("nan"), "threshold_p85": float("nan")}
    if y.size == 0 or len(np.unique(y)) < 2:
        return out
    curve_p, curve_r, thresholds = precision_recall_curve(y, p)
    curve_p, curve_r = curve_p[:-1], curve_r[:-1]  # the last point has no threshold
    f1s = np.where(curve_p + curve_r > 0, 2 * curve_p * curve_r / (curve_p + curve_r + 1e-12), 0)
    out["threshold"] = float(thresholds[int(np.argmax(f1s))])
    ok = np.flatnonzero(curve_p >= 0.85)
    if ok.size:
        out["threshold_p85"] = float(thresholds[ok[int(np.argmax(curve_r[ok]))]])
    return out


def binary_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    *,
    thresholds: dict[str, float] | None = None,
) -> dict[str, float]:
    """Metrics of probabilities against 0/1 labels; NaN where a metric is undefined.

    The names mean the same on every split:

    - ``auc``, ``ap``: ROC AUC and average precision (no threshold);
    - ``recall``, ``precision``, ``f1``: at the fixed threshold 0.5;
    - ``threshold``: the best-F1 threshold *of validation*; ``recall_best``,
      ``precision_best``, ``f1_best``: at that threshold;
    - ``threshold_p85``: the validation threshold with the highest recall at precision >=
      0.85; ``recall_at_p85``, ``precision_at_p85``: at that threshold (0 recall when
      validation never reached precision 0.85).

    Without ``thresholds`` these predictions are the validation split and choose them
    (`choose_thresholds`); for the test split pass the validation's, so nothing is tuned on
    test.

    Examples
    --------
    >>> m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    >>> m["auc"], m["recall"], m["precision"]
    (0.75, 0.5, 0.5)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels).astype(int).ravel()
    p = np.asarray(probabilities, dtype=float).ravel()
    nan = float("nan")
    out = dict.fromkeys(METRIC_KEYS, nan)
    if y.size == 0:
        return out
    out["recall"], out["precision"], out["f1"] = _at(y, p, 0.5)
    two_classes = len(np.unique(y)) == 2
    if two_classes:
        out["auc"] = float(roc_auc_score(y, p))
        out["ap"] = float(average_precision_score(y, p))
    chosen = dict(thresholds) if thresholds is not None else choose_thresholds(y, p)
    if thresholds is None and not two_classes:
        return out
    out["threshold"], out["threshold_p85"] = chosen["threshold"], chosen["threshold_p85"]
    if not math.isnan(out["threshold"]):
        out["recall_best"], out["precision_best"], out["f1_best"] = _at(y, p, out["threshold"])
    out["recall_at_p85"], out["precision_at_p85"], _ = _at(y, p, out["threshold_p85"])
    return out


def recall_by_size(
    labels: np.ndarray,
    probabilities: np.ndarray,
    diameters_mm: np.ndarray,
    threshold: float,
) -> dict[str, float]:
    """Candidate recall at ``threshold`` per nodule size band (`SIZE_BANDS_MM`), and counts.

    Counts positive *candidates*, not nodules: LUNA16's candidates_V2.csv holds several
    candidates per nodule, each scored on its own (the per-nodule view is
    `nodulekit.evaluate.nodule_recall`). Keys ``recall_lt6mm``, ``recall_6to10mm``,
    ``recall_gt10mm`` (NaN for an empty band) and ``positives_lt6mm``... (how many positive
    candidates of known diameter each band holds; runs before 2026-11 wrote these counts as
    ``nodules_lt6mm``...). A NaN ``threshold`` (validation chose none) gives NaN recalls. Bands
    are half-open ``[low, high)`` as in `size_band`: ``d < 6``, ``6 <= d < 10`` and
    ``d >= 10`` mm.

    Examples
    --------
    >>> r = recall_by_size(np.array([1, 1, 1, 0]), np.array([0.9, 0.2, 0.8, 0.9]),
    ...                    np.array([4.0, 7.0, 12.0, np.nan]), threshold=0.5)
    >>> r["recall_lt6mm"], r["recall_6to10mm"], r["recall_gt10mm"], r["positives_6to10mm"]
    (1.0, 0.0, 1.0, 1)
    """
    y = np.asarray(labels).astype(int).ravel()
    found = np.asarray(probabilities, dtype=float).ravel() >= threshold
    unknown = math.isnan(threshold)  # no operating point: no recall to report
    d = np.asarray(diameters_mm, dtype=float).ravel()
    out: dict[str, float] = {}
    for name, (low, high) in SIZE_BANDS_MM.items():
        band = (y == 1) & (d >= low) & (d < high)
        known = band.any() and not unknown
        out[f"recall_{name}"] = float(found[band].mean()) if known else float("nan")
        out[f"positives_{name}"] = int(band.sum())
    return out


def is_better(score: float, best: float | None) -> bool:
    """True if ``score`` beats ``best`` (NaN never does; anything beats None)."""
    if best is None:
        return True
    return not math.isnan(score) and (math.isnan(best) or score > best)
