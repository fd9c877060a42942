"""Candidate classification metrics with 95% intervals from a bootstrap over series.

Every figure here counts *candidates*: a positive is a candidate on a nodule, and LUNA16's
candidates_V2.csv holds several per nodule, so recall is the share of positive candidates
called positive, not the share of nodules found (that is `nodulekit.evaluate.nodule_recall`).

The point estimates come from scikit-learn (and `nodulekit.train.metrics.binary_metrics`, the
metrics the training loop reports); the intervals come from one vectorised pass over 1000
bootstrap replicates that resample *series*, never candidates: candidates of one scan are not
independent, and resampling them would give intervals that are too narrow.

=====================  =======================================================
metric                 definition at threshold ``t`` (``probability >= t``)
=====================  =======================================================
accuracy               (TP + TN) / N
balanced_accuracy      (recall + specificity) / 2
precision              TP / (TP + FP), 0 when nothing is called positive
recall (sensitivity)   TP / (TP + FN)
specificity            TN / (TN + FP)
f1                     2 precision recall / (precision + recall)
auc, ap                ROC AUC and average precision (threshold-free)
=====================  =======================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nodulekit.evaluate._bootstrap import percentile_interval, series_weights
from nodulekit.train.metrics import SIZE_BAND_NAMES, binary_metrics
from nodulekit.train.metrics import size_band as size_band  # the ONE definition, re-exported

THRESHOLD_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
)
METRICS = (*THRESHOLD_METRICS, "auc", "ap")
PERCENT_METRICS = {"accuracy", "balanced_accuracy", "precision", "recall", "specificity"}


def _arrays(labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(int).ravel()
    p = np.asarray(probabilities, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.size}) and probabilities ({p.size}) differ in length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1; found {sorted(set(y.tolist()) - {0, 1})[:5]}")
    if np.isnan(p).any():
        raise ValueError(f"probabilities hold {int(np.isnan(p).sum())} NaN value(s)")
    return y, p


def confusion_counts(labels, probabilities, threshold: float = 0.5) -> dict[str, int]:
    """TP, FP, TN, FN when ``probability >= threshold`` is called a nodule.

    Examples
    --------
    >>> confusion_counts([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    {'tp': 1, 'fp': 1, 'tn': 1, 'fn': 1}
    """
    from sklearn.metrics import confusion_matrix

    y, p = _arrays(labels, probabilities)
    tn, fp, fn, tp = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1]).ravel()
    return {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)}


def rates_from_counts(tp, fp, tn, fn) -> dict[str, np.ndarray]:
    """The threshold metrics from (arrays of) confusion counts; NaN where a class is absent."""
    tp, fp, tn, fn = (np.asarray(v, dtype=float) for v in (tp, fp, tn, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        n = tp + fp + tn + fn
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        specificity = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        return {
            "accuracy": np.where(n > 0, (tp + tn) / n, np.nan),
            "balanced_accuracy": (recall + specificity) / 2,
            "precision": precision,
            "recall": recall,
            "specificity": specificity,
            "f1": f1,
        }


def classification_metrics(labels, probabilities, threshold: float = 0.5) -> dict[str, float]:
    """Every metric of the table above at ``threshold``, plus the confusion counts.

    Examples
    --------
    >>> m = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
    >>> m["accuracy"], m["specificity"], m["auc"], m["tp"]
    (0.5, 0.5, 0.75, 1)
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    y, p = _arrays(labels, probabilities)
    counts = confusion_counts(y, p, threshold)
    rates = {k: float(v) for k, v in rates_from_counts(**counts).items()}
    if y.size and len(np.unique(y)) == 2:  # scikit-learn where it is defined
        predicted = (p >= threshold).astype(int)
        rates["accuracy"] = float(accuracy_score(y, predicted))
        rates["balanced_accuracy"] = float(balanced_accuracy_score(y, predicted))
    ranking = binary_metrics(y, p)  # the training loop's definition of AUC and AP
    return {
        **rates,
        "auc": ranking["auc"],
        "ap": ranking["ap"],
        "threshold": float(threshold),
        **counts,
    }


def choose_threshold(
    labels,
    probabilities,
    *,
    target_recall: float | None = None,
    target_precision: float | None = None,
) -> float:
    """A decision threshold: for a target recall, a target precision, or Youden's J (default).

    ``target_recall``: the highest threshold whose recall is at least the target (the fewest
    false positives that still find that share of nodules). ``target_precision``: the lowest
    threshold whose precision is at least the target (the most nodules at that precision);
    ``inf`` when no threshold reaches it. Otherwise the threshold maximising
    ``recall + specificity - 1`` (on ties, the highest such threshold).

    Examples
    --------
    >>> y, p = [0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.4, 0.8, 0.9]
    >>> choose_threshold(y, p, target_recall=1.0), choose_threshold(y, p, target_precision=1.0)
    (0.4, 0.8)
    >>> choose_threshold(y, p)
    0.8
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, p = _arrays(labels, probabilities)
    if len(np.unique(y)) < 2:
        raise ValueError("choosing a threshold needs both nodules and non-nodules")
    if target_recall is not None and target_precision is not None:
        raise ValueError("give target_recall or target_precision, not both")
    if target_recall is not None or target_precision is not None:
        target = target_recall if target_recall is not None else target_precision
        if not 0 < float(target) <= 1:
            raise ValueError(f"a target recall or precision lies in (0, 1], not {target}")
        precision, recall, thresholds = precision_recall_curve(y, p)
        precision, recall = precision[:-1], recall[:-1]
        if target_recall is not None:
            return float(thresholds[recall >= target_recall].max())
        ok = precision >= target_precision
        return float(thresholds[ok].min()) if ok.any() else float("inf")
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    j = np.round(tpr - fpr, 12)  # ties: the highest threshold (fewest false positives)
    best = int(np.argmax(j[1:])) + 1  # the first point (threshold inf) calls nothing positive
    return float(thresholds[best])


def _weighted_ranking(y: np.ndarray, p: np.ndarray, weights: np.ndarray):
    """ROC AUC and average precision for every row of per-sample ``weights`` ``(R, N)``."""
    order = np.argsort(-p, kind="stable")
    y_sorted, p_sorted = y[order], p[order]
    last_of_tie = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    w = weights[:, order].astype(float)
    tp = np.cumsum(w * y_sorted, axis=1)[:, last_of_tie]
    fp = np.cumsum(w * (1 - y_sorted), axis=1)[:, last_of_tie]
    tp_all, fp_all = tp[:, -1:], fp[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.c_[np.zeros(len(w)), tp / tp_all]
        fpr = np.c_[np.zeros(len(w)), fp / fp_all]
        auc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)
        precision = tp / (tp + fp)
        ap = np.sum(np.diff(tpr, axis=1) * np.nan_to_num(precision), axis=1)
    invalid = (tp_all[:, 0] == 0) | (fp_all[:, 0] == 0)
    auc[invalid], ap[tp_all[:, 0] == 0] = np.nan, np.nan
    return auc, ap


def bootstrap_metrics(
    labels,
    probabilities,
    series: Sequence[str] | np.ndarray,
    *,
    threshold: float = 0.5,
    n_resamples: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
    chunk: int = 100,
    called: np.ndarray | None = None,
) -> pd.DataFrame:
    """Metrics with bootstrap intervals, resampling whole series (seedable, vectorised).

    Returns a table indexed by metric with columns ``value`` (on the data as given),
    ``ci_low`` and ``ci_high`` (percentile interval at ``confidence``). A resample without a
    positive candidate (only nodule-free series drawn) has no recall, balanced accuracy, AUC
    or AP: it is left out of those intervals, and ``attrs["resamples_without_positives"]``
    counts such resamples. ``called``: a decision per candidate instead of
    ``probabilities >= threshold`` (e.g. each at its own cross-validation fold's threshold);
    AUC and AP still rank the probabilities.
    """
    y, p = _arrays(labels, probabilities)
    series = np.asarray(series).astype(str).ravel()
    if series.size != y.size:
        raise ValueError(f"series ({series.size}) and labels ({y.size}) differ in length")
    point = classification_metrics(y, p, threshold)
    uids, series_index = np.unique(series, return_inverse=True)
    weights = series_weights(len(uids), n_resamples, seed=seed)
    # per-series confusion counts: the threshold metrics of a replicate are W @ counts
    called = p >= threshold if called is None else np.asarray(called, dtype=bool).ravel()
    per_series = np.zeros((len(uids), 4))
    for k, mask in enumerate((called & (y == 1), called & (y == 0), ~called & (y == 0))):
        per_series[:, k] = np.bincount(series_index, weights=mask, minlength=len(uids))
    per_series[:, 3] = np.bincount(series_index, weights=(~called) & (y == 1), minlength=len(uids))
    decided = rates_from_counts(*per_series.sum(axis=0))  # = point's when called is p >= t
    point.update({name: float(decided[name]) for name in THRESHOLD_METRICS})
    tp, fp, tn, fn = (weights @ per_series).T
    samples = rates_from_counts(tp, fp, tn, fn)
    auc, ap = [], []
    for start in range(0, n_resamples, chunk):
        a, b = _weighted_ranking(y, p, weights[start : start + chunk][:, series_index])
        auc.append(a)
        ap.append(b)
    samples["auc"], samples["ap"] = (
        np.concatenate([*auc, np.empty(0)]),
        np.concatenate([*ap, np.empty(0)]),
    )
    rows = []
    for name in METRICS:
        low, high = percentile_interval(samples[name], confidence)
        rows.append({"metric": name, "value": point[name], "ci_low": low, "ci_high": high})
    table = pd.DataFrame(rows).set_index("metric").astype(float)
    table.attrs.update(
        unit="candidates (a positive is a candidate on a nodule; several per nodule)",
        threshold=float(threshold),
        n_series=len(uids),
        n_positive=int(y.sum()),
        n_negative=int((1 - y).sum()),
        n_resamples=int(n_resamples),
        resamples_without_positives=int(((tp + fn) == 0).sum()),
        confidence=float(confidence),
        seed=seed,
    )
    return table


def class_balance(n_positive: int, n_negative: int) -> str:
    """Negatives per positive as papers print it: ``"1:500"``.

    Examples
    --------
    >>> class_balance(12, 6000), class_balance(30, 45), class_balance(0, 10)
    ('1:500', '1:1.5', '0:10')
    """
    if n_positive == 0:
        return f"0:{n_negative}"
    ratio = n_negative / n_positive
    return f"1:{ratio:.0f}" if ratio >= 10 else f"1:{ratio:.2g}"


def _format(name: str, value: float, low: float, high: float) -> str:
    if np.isnan(value):
        return "n/a"
    if name in PERCENT_METRICS:
        return f"{100 * value:.1f}% ({100 * low:.1f}-{100 * high:.1f}%)"
    return f"{value:.3f} ({low:.3f}-{high:.3f})"


def paper_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """The `bootstrap_metrics` table as papers print it, class balance beside every row.

    Columns: ``metric``, ``value (95% CI)`` (percentages for the rates), ``class balance``,
    ``n`` (candidates), ``series``.
    """
    attrs = metrics.attrs
    balance = class_balance(attrs["n_positive"], attrs["n_negative"])
    pct = f"{round(100 * attrs.get('confidence', 0.95))}% CI"
    rows = [
        {
            "metric": name.replace("_", " "),
            f"value ({pct})": _format(name, *metrics.loc[name, ["value", "ci_low", "ci_high"]]),
            "class balance": balance,
            "n": attrs["n_positive"] + attrs["n_negative"],
            "series": attrs["n_series"],
        }
        for name in metrics.index
    ]
    return pd.DataFrame(rows)


def format_table(metrics: pd.DataFrame) -> str:
    """A printable summary: a header line with the class balance, then the paper table."""
    a = metrics.attrs
    head = (
        f"{a['n_positive'] + a['n_negative']} candidates in {a['n_series']} series: "
        f"{a['n_positive']} positive (on a nodule), {a['n_negative']} negative "
        f"(class balance {class_balance(a['n_positive'], a['n_negative'])}); "
        f"threshold {a['threshold']:.3g}; intervals: {a['n_resamples']} bootstrap "
        "resamples of series"
    )
    if a.get("resamples_without_positives"):
        head += (
            f" ({a['resamples_without_positives']} without a positive candidate, left out of "
            "recall, balanced accuracy, AUC and AP)"
        )
    return head + "\n" + paper_table(metrics).drop(columns=["n", "series"]).to_string(index=False)


def metrics_by_group(
    labels,
    probabilities,
    series,
    groups,
    *,
    threshold: float = 0.5,
    n_resamples: int = 1000,
    seed: int | None = 0,
    called: np.ndarray | None = None,
) -> pd.DataFrame:
    """Candidate recall, AUC and AP per group of nodules (size band, nodule type) against all
    negatives (``called``: a decision per candidate, as in `bootstrap_metrics`).

    ``groups`` names the group of each positive (e.g. `size_band` of its diameter, or its
    type); negatives' entries are ignored: every group is scored against all non-nodules, so
    its AUC answers "how well does the model rank nodules of this kind above non-nodules".
    Groups with an empty name are skipped. ``positive_candidates`` counts the group's positive
    candidates (several per nodule in LUNA16), not its nodules.
    """
    y, p = _arrays(labels, probabilities)
    series = np.asarray(series).astype(str)
    groups = np.asarray(groups, dtype=object)
    rows = []
    names = sorted({g for g in groups[y == 1] if isinstance(g, str) and g}, key=_band_order)
    for name in names:
        keep = (y == 0) | (groups == name)
        table = bootstrap_metrics(
            y[keep], p[keep], series[keep], threshold=threshold, n_resamples=n_resamples,
            seed=seed, called=None if called is None else np.asarray(called)[keep],
        )  # fmt: skip
        row = {"group": name, "positive_candidates": int(y[keep].sum())}
        for metric in ("recall", "auc", "ap"):
            row[metric] = table.loc[metric, "value"]
            row[f"{metric}_ci_low"] = table.loc[metric, "ci_low"]
            row[f"{metric}_ci_high"] = table.loc[metric, "ci_high"]
        rows.append(row)
    return pd.DataFrame(rows)


def _band_order(name: str) -> tuple[int, str]:
    order = list(SIZE_BAND_NAMES)
    return (order.index(name) if name in order else len(order), name)


def curve_bands(
    labels,
    probabilities,
    series,
    *,
    n_resamples: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
    n_points: int = 101,
    chunk: int = 100,
) -> dict[str, pd.DataFrame]:
    """ROC and precision-recall curves with bootstrap bands (series resampled).

    Returns ``{"roc": DataFrame(fpr, tpr, low, high), "pr": DataFrame(recall, precision, low,
    high)}``: the curves of the data as given, read on a grid of ``n_points``, and the
    percentile band of the replicates on the same grid.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, p = _arrays(labels, probabilities)
    if len(np.unique(y)) < 2:
        raise ValueError("curves need both nodules and non-nodules")
    grid = np.linspace(0, 1, n_points)
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    roc_point = np.interp(grid, fpr, tpr)
    pr_point = np.interp(grid, recall[::-1], precision[::-1])
    _, series_index = np.unique(np.asarray(series).astype(str), return_inverse=True)
    weights = series_weights(int(series_index.max()) + 1, n_resamples, seed=seed)
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    roc_boot = np.full((n_resamples, n_points), np.nan)
    pr_boot = np.full((n_resamples, n_points), np.nan)
    for start in range(0, n_resamples, chunk):
        w = weights[start : start + chunk][:, series_index[order]].astype(float)
        tp = np.cumsum(w * ys, axis=1)[:, ends]
        fp = np.cumsum(w * (1 - ys), axis=1)[:, ends]
        for k in range(len(w)):
            if tp[k, -1] == 0 or fp[k, -1] == 0:
                continue
            r_tpr, r_fpr = np.r_[0, tp[k]] / tp[k, -1], np.r_[0, fp[k]] / fp[k, -1]
            roc_boot[start + k] = np.interp(grid, r_fpr, r_tpr)
            with np.errstate(invalid="ignore", divide="ignore"):
                r_prec = np.nan_to_num(tp[k] / (tp[k] + fp[k]), nan=1.0)
            pr_boot[start + k] = np.interp(grid, np.r_[0, r_tpr[1:]], np.r_[1, r_prec])
    roc_low, roc_high = percentile_interval(roc_boot, confidence)
    pr_low, pr_high = percentile_interval(pr_boot, confidence)
    return {
        "roc": pd.DataFrame({"fpr": grid, "tpr": roc_point, "low": roc_low, "high": roc_high}),
        "pr": pd.DataFrame({"recall": grid, "precision": pr_point, "low": pr_low, "high": pr_high}),
    }


def calibration_table(labels, probabilities, *, n_bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data: per probability bin, the mean predicted probability, the
    observed fraction of nodules and the count (scikit-learn's ``calibration_curve`` bins)."""
    from sklearn.calibration import calibration_curve

    y, p = _arrays(labels, probabilities)
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0, 1, n_bins + 1)
    counts = np.bincount(np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, n_bins - 1),
                         minlength=n_bins)  # fmt: skip
    counts = counts[counts > 0]
    brier = float(np.mean((p - y) ** 2))
    table = pd.DataFrame({"predicted": predicted, "observed": observed, "count": counts})
    table.attrs["brier"] = brier
    return table
