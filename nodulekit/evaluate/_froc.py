"""The LUNA16 FROC and CPM, as the challenge's evaluation script computes them, vectorised.

The rules of ``noduleCADEvaluationLUNA16.py`` (Setio et al. 2017), reproduced exactly:

- a mark hits a finding when its distance to the finding's centre is *strictly* less than the
  radius (``diameter_mm / 2``; a diameter of -1, used in ``annotations_excluded.csv``, counts as
  10 mm);
- each nodule of ``annotations.csv`` is one FROC sample: detected with the *highest*
  probability among the marks that hit it, or missed; the other marks on it are ignored;
- marks on findings of ``annotations_excluded.csv`` are ignored;
- every other mark is a false positive; false positives per scan divide by the number of scans
  evaluated (``seriesuids.csv`` or a given list), scans without marks included;
- the curve is scikit-learn's ``roc_curve`` of those samples, rescaled to false positives per
  scan and sensitivity; sensitivities at 1/8 ... 8 FP/scan are read off it with ``np.interp``
  (the script's interpolation); the CPM is their mean;
- the band: scans resampled with replacement (1000 times), the curves interpolated, and the
  sorted replicates read at ``floor(0.025 R)`` and ``floor(0.975 R)`` as the script's
  ``compute_mean_ci`` does. A resample that draws only nodule-free scans has no sensitivity
  (the script divides 0 by 0 and its upper bound becomes NaN once such resamples pass 2.5%, as
  they do with a few scans, a third of them nodule-free): it is redrawn, so every one of the
  R replicates holds a nodule (the bootstrap conditional on the set holding one, as any
  FROC needs), and ``FrocResult.bootstrap`` says how many were redrawn.

Where the script loops over scans, nodules and marks in Python (minutes on LUNA16), this module
pairs marks and findings of the same scan with array operations (about a second).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nodulekit.evaluate._bootstrap import series_weights

FP_PER_SCAN = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
EXCLUDED_DIAMETER_MM = 10.0  # the script's radius for findings of unknown size (diameter -1)
MISSED_PROBABILITY = -1e9  # the script's minProbValue for a nodule without a mark


@dataclass
class FrocResult:
    """A FROC analysis.

    Attributes
    ----------
    fp_per_scan, sensitivity, thresholds : ndarray
        The FROC curve, one point per distinct probability (as the script's ``froc_*.txt``).
    operating_points : DataFrame
        ``fp_per_scan`` (the 7 LUNA16 points), ``sensitivity``, ``ci_low``, ``ci_high``.
    cpm, cpm_ci : float, (float, float)
        Competition performance metric (mean of the 7 sensitivities) and its bootstrap interval.
    marks : DataFrame
        The marks evaluated (predictions of the scans evaluated) with ``outcome`` (``tp``: the
        mark that counts for a nodule; ``double``: another mark on a detected nodule;
        ``excluded``: on an excluded finding; ``fp``), and ``nodule`` (row of ``nodules`` hit,
        -1 if none).
    nodules : DataFrame
        ``annotations.csv`` rows of the scans evaluated, with ``detected``, ``probability``
        (of the mark that counts, NaN if missed) and ``marks`` (how many hit it).
    band : DataFrame or None
        ``fp_per_scan`` grid and the bootstrap ``mean``, ``low``, ``high`` sensitivity.
    counts : dict
        ``scans``, ``nodules``, ``marks``, ``tp``, ``fn``, ``fp``, ``ignored_excluded``,
        ``ignored_double``.
    bootstrap : dict
        ``resamples`` (replicates behind the intervals), ``drawn`` (resamples drawn) and
        ``without_nodules`` (drawn resamples that held no nodule and were redrawn); empty
        without a bootstrap.
    """

    fp_per_scan: np.ndarray
    sensitivity: np.ndarray
    thresholds: np.ndarray
    operating_points: pd.DataFrame
    cpm: float
    cpm_ci: tuple[float, float]
    marks: pd.DataFrame
    nodules: pd.DataFrame
    band: pd.DataFrame | None = None
    counts: dict = field(default_factory=dict)
    bootstrap: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line: CPM with its interval and the counts behind it (every mark counted, at
        any probability: the bottom of the curve; one threshold's figures are
        `nodulekit.evaluate.nodule_recall`)."""
        c = self.counts
        redrawn = self.bootstrap.get("without_nodules", 0)
        note = f"; {redrawn} resamples without a nodule redrawn" if redrawn else ""
        ci = (
            ""
            if np.isnan(self.cpm_ci[0])
            else f" (95% CI {self.cpm_ci[0]:.3f}-{self.cpm_ci[1]:.3f}{note})"
        )
        return (
            f"CPM {self.cpm:.3f}{ci}; over all marks, whatever their probability: "
            f"{c['tp']}/{c['nodules']} nodules hit, {c['fp']} false positives on {c['scans']} "
            f"scans ({c['ignored_excluded']} marks on excluded findings ignored)"
        )


def _codes(uids: pd.Series, scans: list[str]) -> np.ndarray:
    return pd.Index(scans).get_indexer(uids.astype(str)).astype(np.int64)


def _cap_marks(marks: pd.DataFrame, max_marks: int) -> pd.DataFrame:
    """The script's ``maxNumberOfCADMarks``: keep marks above the (max+1)-th probability."""
    ranked = marks.groupby("_scan")["probability"]
    kth = ranked.transform(
        lambda p: np.sort(p.to_numpy())[::-1][max_marks] if len(p) > max_marks else -np.inf
    )
    return marks[marks["probability"] > kth]


def match_marks(
    marks: pd.DataFrame, findings: pd.DataFrame, n_scans: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (finding, mark) pair of one scan where the mark lies strictly inside the finding.

    ``marks`` and ``findings`` carry an integer ``_scan`` column (0..n_scans-1); ``findings``
    carries ``diameter_mm`` (negative: `EXCLUDED_DIAMETER_MM`). Returns ``(finding_rows,
    mark_rows, squared_distance_mm2)`` of the hits, positional rows.
    """
    mark_scan = marks["_scan"].to_numpy()
    order = np.argsort(mark_scan, kind="stable")
    bounds = np.searchsorted(mark_scan[order], np.arange(n_scans + 1))
    f_scan = findings["_scan"].to_numpy()
    counts = bounds[f_scan + 1] - bounds[f_scan]
    f_rows = np.repeat(np.arange(len(findings)), counts)
    within = np.arange(f_rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    m_rows = order[bounds[f_scan][f_rows] + within]
    xyz_m = marks[["coordX", "coordY", "coordZ"]].to_numpy(float)
    xyz_f = findings[["coordX", "coordY", "coordZ"]].to_numpy(float)
    d2 = ((xyz_m[m_rows] - xyz_f[f_rows]) ** 2).sum(axis=1)
    diameter = findings["diameter_mm"].to_numpy(float)
    diameter = np.where(diameter < 0, EXCLUDED_DIAMETER_MM, diameter)
    hit = d2 < ((diameter / 2.0) ** 2)[f_rows]
    return f_rows[hit], m_rows[hit], d2[hit]


def froc_curve(gt, prob, n_scans: int, exclude) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The script's ``computeFROC``: (FP per scan, sensitivity, thresholds) of FROC samples."""
    from sklearn.metrics import roc_curve

    gt, prob, exclude = np.asarray(gt, float), np.asarray(prob, float), np.asarray(exclude, bool)
    gt_local, prob_local = gt[~exclude], prob[~exclude]
    detected, total = gt_local.sum(), gt.sum()
    if total == 0:
        raise ValueError("the scans evaluated hold no nodule: the FROC is undefined")
    if detected == 0:  # no hit at all: roc_curve would divide by zero
        return np.zeros(1), np.zeros(1), np.array([np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no negatives: handled just below, as the script does
        fpr, tpr, thresholds = roc_curve(gt_local, prob_local)
    if gt.sum() == len(gt):  # no false positives at all
        fps = np.zeros(len(fpr))
    else:
        fps = fpr * (len(prob_local) - detected) / n_scans
    return fps, tpr * detected / total, thresholds


def read_operating_points(
    fps: np.ndarray, sens: np.ndarray, points: Sequence[float] = FP_PER_SCAN, method: str = "interp"
) -> np.ndarray:
    """Sensitivity at ``points`` FP/scan: ``np.interp`` (the evaluation script's figure and
    band), or ``"nearest"``: the curve point closest to each (the leaderboard's ``getCPM``)."""
    if method == "interp":
        return np.interp(points, fps, sens)
    if method != "nearest":
        raise ValueError(f"method must be 'interp' or 'nearest', not {method!r}")
    out = np.zeros(len(points))
    for i, point in enumerate(points):  # getCPM: first point of the smallest distance
        best = max(fps)
        for j, fp in enumerate(fps):
            if abs(fp - point) < best:
                out[i], best = sens[j], abs(fp - point)
    return out


def _script_ci(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The script's ``compute_mean_ci``: sorted replicates at floor(tail R), floor((1-tail) R)."""
    ordered = np.sort(values, axis=0)
    n = len(ordered)
    tail = (1.0 - confidence) / 2.0
    return ordered[math.floor(tail * n)], ordered[min(math.floor((1 - tail) * n), n - 1)]


def _weights_with_nodules(
    lesions: np.ndarray, n_resamples: int, seed: int | None
) -> tuple[np.ndarray, int]:
    """``n_resamples`` rows of `series_weights` whose resample holds a nodule, and how many
    resamples were drawn to get them (the first ones of one seeded stream: rows without a
    nodule are skipped, i.e. redrawn). ``lesions``: nodules per scan, at least one in all."""
    n_draw = n_resamples
    while True:
        weights = series_weights(len(lesions), n_draw, seed=seed)
        usable = np.flatnonzero(weights @ lesions > 0)
        if usable.size >= n_resamples:
            kept = usable[:n_resamples]
            return weights[kept], int(kept[-1]) + 1
        n_draw *= 2  # a resample holds a nodule with probability >= 1 - 1/e: rarely needed


def _bootstrap(gt, prob, exclude, scan, weights, *, grid, points, method, chunk=50):
    """Sensitivities at ``points`` and on ``grid`` for every bootstrap replicate of scans
    (a row of ``weights``: how often each scan is drawn; each replicate holds a nodule)."""
    n_resamples, n_scans = weights.shape
    weights = weights.astype(np.float64)
    lesions = np.bincount(scan[gt == 1], minlength=n_scans).astype(float)
    total = weights @ lesions
    keep = ~exclude
    order = np.argsort(-prob[keep], kind="stable")
    g, p, s = gt[keep][order], prob[keep][order], scan[keep][order]
    ends = np.flatnonzero(np.r_[p[1:] != p[:-1], True])
    # only the curve up to 8 FP/scan matters: stop where every replicate has passed it
    fp_unweighted = np.cumsum(1 - g)
    need = max(points) * n_scans * 3 + 50
    cut = min(len(p), int(np.searchsorted(fp_unweighted, need)) + 1)
    at_points = np.empty((n_resamples, len(points)))
    on_grid = np.empty((n_resamples, len(grid)))
    for start in range(0, n_resamples, chunk):
        w = weights[start : start + chunk]
        for length in (cut, len(p)):
            e = ends[ends < length]
            tp = np.cumsum(w[:, s[:length]] * g[:length], axis=1)[:, e]
            fp = np.cumsum(w[:, s[:length]] * (1 - g[:length]), axis=1)[:, e]
            if length == len(p) or (fp[:, -1] >= max(points) * n_scans).all():
                break
        for k in range(len(w)):
            r = start + k
            fps = np.r_[0.0, fp[k]] / n_scans
            if fp[k, -1] == 0 and length == len(p):
                fps = np.zeros_like(fps)
            sens = np.r_[0.0, tp[k]] / total[r]
            at_points[r] = read_operating_points(fps, sens, points, method)
            on_grid[r] = np.interp(grid, fps, sens)
    return at_points, on_grid


def _select(
    predictions: pd.DataFrame, annotations: pd.DataFrame, excluded: pd.DataFrame, scans: list
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Marks, nodules and all findings (nodules first, then excluded) of the scans evaluated,
    each with its scan number in ``_scan``."""
    tables = []
    for table in (predictions, annotations, excluded):
        coded = table.assign(_scan=_codes(table["seriesuid"], scans))
        tables.append(coded[coded["_scan"] >= 0].reset_index(drop=True))
    marks, nodules, other = tables
    return marks, nodules, pd.concat([nodules, other], ignore_index=True)


def _outcomes(
    prob: np.ndarray, n_nodules: int, f_rows: np.ndarray, m_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per nodule: best probability and hit count; per mark: outcome and the nodule it hits.

    Findings ``f_rows < n_nodules`` are nodules, the others excluded findings. A mark's outcome
    is ``tp`` (the counting mark of a nodule: highest probability, the first of ties),
    ``double`` (another mark on a nodule), ``excluded`` or ``fp``, in that priority.
    """
    on_nodule = f_rows < n_nodules
    nf, nm = f_rows[on_nodule], m_rows[on_nodule]
    best = np.full(n_nodules, -np.inf)
    np.maximum.at(best, nf, prob[nm])
    n_hits = np.bincount(nf, minlength=n_nodules)
    outcome = np.full(len(prob), "fp", dtype=object)
    outcome[m_rows[~on_nodule]] = "excluded"
    outcome[nm] = "double"
    nodule_of_mark = np.full(len(prob), -1)
    nodule_of_mark[nm] = nf
    is_best = prob[nm] == best[nf]
    outcome[nm[is_best][np.unique(nf[is_best], return_index=True)[1]]] = "tp"
    return best, n_hits, outcome, nodule_of_mark


def froc(
    predictions: pd.DataFrame,
    annotations: pd.DataFrame,
    excluded: pd.DataFrame | None = None,
    seriesuids: Sequence[str] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
    max_marks_per_scan: int | None = None,
    method: str = "interp",
) -> FrocResult:
    """LUNA16 FROC analysis of ``predictions`` (see the module docstring for the rules).

    Parameters
    ----------
    predictions : DataFrame
        ``seriesuid, coordX, coordY, coordZ, probability`` (world mm); checked tables from
        `nodulekit.evaluate.read_predictions`. Marks on scans outside ``seriesuids`` are
        left out, as the script does.
    annotations, excluded : DataFrame
        ``annotations.csv`` and ``annotations_excluded.csv`` (``nodulekit.data.Luna16``).
    seriesuids : sequence of str, optional
        The scans evaluated (``seriesuids.csv``; default: every series of the annotations and
        the predictions). The FP-per-scan divisor is their number.
    n_resamples : int
        Bootstrap replicates of scans for the intervals (0: none).
    max_marks_per_scan : int, optional
        The script's ``maxNumberOfCADMarks`` (default: no cap).
    method : {"interp", "nearest"}
        How sensitivities are read at the 7 points (see `read_operating_points`).
    """
    excluded = excluded if excluded is not None else annotations.iloc[:0]
    if seriesuids is None:
        seriesuids = pd.unique(pd.concat([annotations["seriesuid"], predictions["seriesuid"]]))
    scans = list(dict.fromkeys(str(u) for u in seriesuids))
    n_scans = len(scans)
    if n_scans == 0:
        raise ValueError("no scans to evaluate: seriesuids is empty")
    marks, nodules, findings = _select(predictions, annotations, excluded, scans)
    if max_marks_per_scan is not None and max_marks_per_scan > 0:
        marks = _cap_marks(marks, int(max_marks_per_scan)).reset_index(drop=True)
    f_rows, m_rows, _ = match_marks(marks, findings, n_scans)
    prob = marks["probability"].to_numpy(float)
    best, n_hits, outcome, nodule_of_mark = _outcomes(prob, len(nodules), f_rows, m_rows)
    detected = n_hits > 0
    fp = outcome == "fp"

    gt = np.r_[np.ones(len(nodules)), np.zeros(int(fp.sum()))]
    froc_prob = np.r_[np.where(detected, best, MISSED_PROBABILITY), prob[fp]]
    exclude = np.r_[~detected, np.zeros(int(fp.sum()), bool)]
    scan = np.r_[nodules["_scan"].to_numpy(), marks["_scan"].to_numpy()[fp]]
    fps, sens, thresholds = froc_curve(gt, froc_prob, n_scans, exclude)
    at_points = read_operating_points(fps, sens, FP_PER_SCAN, method)
    cpm = float(np.mean(at_points))

    band, low, high, cpm_ci = None, np.full(7, np.nan), np.full(7, np.nan), (np.nan, np.nan)
    bootstrap: dict = {}
    if n_resamples:
        grid = np.unique(np.r_[np.geomspace(FP_PER_SCAN[0], FP_PER_SCAN[-1], 200), FP_PER_SCAN])
        lesions = np.bincount(scan[gt == 1], minlength=n_scans)
        weights, drawn = _weights_with_nodules(lesions, n_resamples, seed)
        bootstrap = {"resamples": n_resamples, "drawn": drawn,
                     "without_nodules": drawn - n_resamples}  # fmt: skip
        boot_points, boot_grid = _bootstrap(
            gt, froc_prob, exclude, scan, weights, grid=grid, points=FP_PER_SCAN, method=method
        )
        low, high = _script_ci(boot_points, confidence)
        cpm_low, cpm_high = _script_ci(boot_points.mean(axis=1), confidence)
        cpm_ci = (float(cpm_low), float(cpm_high))
        g_low, g_high = _script_ci(boot_grid, confidence)
        band = pd.DataFrame(
            {
                "fp_per_scan": grid,
                "mean": np.nanmean(boot_grid, axis=0),
                "low": g_low,
                "high": g_high,
            }
        )
    marks_out = marks.drop(columns="_scan").assign(outcome=outcome, nodule=nodule_of_mark)
    nodules_out = nodules.drop(columns="_scan").assign(
        detected=detected, probability=np.where(detected, best, np.nan), marks=n_hits
    )
    counts = {
        "scans": n_scans,
        "nodules": len(nodules),
        "marks": len(marks),
        "tp": int(detected.sum()),
        "fn": int((~detected).sum()),
        "fp": int(fp.sum()),
        "ignored_excluded": int((outcome == "excluded").sum()),
        "ignored_double": int((outcome == "double").sum()),
    }
    points = pd.DataFrame(
        {"fp_per_scan": FP_PER_SCAN, "sensitivity": at_points, "ci_low": low, "ci_high": high}
    )
    return FrocResult(
        fps, sens, thresholds, points, cpm, cpm_ci, marks_out, nodules_out, band, counts, bootstrap
    )


def froc_by_group(
    predictions: pd.DataFrame,
    annotations: pd.DataFrame,
    excluded: pd.DataFrame | None,
    seriesuids: Sequence[str],
    groups: Sequence[str] | np.ndarray,
    *,
    method: str = "interp",
) -> pd.DataFrame:
    """CPM and the 7 sensitivities for each group of nodules (e.g. `size_band` of diameters).

    For one group, the nodules of the other groups become excluded findings: a mark on them is
    neither a hit nor a false positive, so every group is scored against the same false
    positives. Groups named ``""``, and groups without a nodule in the scans evaluated, are
    skipped.
    """
    excluded = excluded if excluded is not None else annotations.iloc[:0]
    groups = np.asarray(groups, dtype=object)
    evaluated = annotations["seriesuid"].astype(str).isin(set(map(str, seriesuids))).to_numpy()
    rows = []
    for name in dict.fromkeys(g for g in groups[evaluated] if isinstance(g, str) and g):
        inside = groups == name
        others = pd.concat([excluded, annotations[~inside]], ignore_index=True)
        result = froc(predictions, annotations[inside], others, seriesuids, n_resamples=0,
                      method=method)  # fmt: skip
        row = {"group": name, "nodules": result.counts["nodules"], "found": result.counts["tp"]}
        row.update(
            zip(
                [f"sens@{p:g}" for p in FP_PER_SCAN],
                result.operating_points["sensitivity"],
                strict=True,
            )
        )
        row["cpm"] = result.cpm
        rows.append(row)
    return pd.DataFrame(rows)
