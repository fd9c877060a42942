"""Per-nodule figures at one operating point: nodules found and false positives per scan.

Candidate-level recall (`nodulekit.evaluate.metrics`, ``test_metrics.json``) counts positive
*candidates*: LUNA16's ``candidates_V2.csv`` holds several per nodule, so a nodule with three
candidates counts three times. What a reader of a scan cares about is the nodules. With the
marks matched to the annotated nodules by the LUNA16 rules (`nodulekit.evaluate.froc`),
at a threshold ``t``:

- a nodule is *found* when at least one mark with ``probability >= t`` lies inside its radius
  (its best mark reaches ``t``);
- a *false positive* is a mark with ``probability >= t`` that hits neither a nodule nor an
  excluded finding (a second mark on a nodule is not one, as in the FROC);
- false positives per scan divide by every scan evaluated, nodule-free ones included.

Recall per size band uses the bands of the training metrics (< 6, 6-10, >= 10 mm;
`nodulekit.train.metrics.SIZE_BANDS_MM`): one point of the FROC curve, read at the threshold
chosen on validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nodulekit.train.metrics import SIZE_BAND_LABELS, SIZE_BANDS_MM


@dataclass
class NoduleRecall:
    """Nodules found and false positives at one threshold (`nodule_recall`).

    Attributes
    ----------
    threshold : float
        The operating point (``probability >= threshold`` is a mark).
    source : str
        Where the threshold came from (``"validation"``, ``"given"``...).
    table : DataFrame
        One row per size band and a last row ``all``: ``band``, ``nodules``, ``found``,
        ``recall`` (NaN for a band without nodules); ``false_positives``, ``scans`` and
        ``fp_per_scan`` on the ``all`` row only (false positives belong to no band).
    found, nodules, false_positives, scans : int
    """

    threshold: float
    source: str
    table: pd.DataFrame
    found: int
    nodules: int
    false_positives: int
    scans: int

    @property
    def recall(self) -> float:
        """Share of the annotated nodules found (NaN without nodules)."""
        return self.found / self.nodules if self.nodules else float("nan")

    @property
    def fp_per_scan(self) -> float:
        """False positives per scan evaluated."""
        return self.false_positives / self.scans if self.scans else float("nan")

    def summary(self) -> str:
        """``at the validation threshold 0.901: 5/6 nodules found (< 6 mm 3/4, ...),
        1.33 false positives per scan (4 on 3 scans)``; bands without nodules left out."""
        bands = self.table[(self.table["band"] != "all") & (self.table["nodules"] > 0)]
        per_band = ", ".join(f"{r.band} {r.found}/{r.nodules}" for r in bands.itertuples())
        where = (
            f"the validation threshold {self.threshold:.3f}"
            if self.source == "validation"
            else f"threshold {self.threshold:.3f} ({self.source})"
        )
        return (
            f"at {where}: "
            f"{self.found}/{self.nodules} nodules found" + (f" ({per_band})" if per_band else "")
            + f", {self.fp_per_scan:.2f} false positives per scan "
            f"({self.false_positives} on {self.scans} scans)"
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for metrics.json (NaN as NaN; the writer turns it into null)."""
        bands = self.table[self.table["band"] != "all"][["band", "nodules", "found", "recall"]]
        return {
            "threshold": self.threshold,
            "threshold_source": self.source,
            "nodules": self.nodules,
            "found": self.found,
            "recall": self.recall,
            "false_positives": self.false_positives,
            "scans": self.scans,
            "fp_per_scan": self.fp_per_scan,
            "bands": [
                {"band": r.band, "nodules": int(r.nodules), "found": int(r.found),
                 "recall": float(r.recall)}
                for r in bands.itertuples()
            ],
        }  # fmt: skip


def nodule_recall(result: Any, threshold: float, *, source: str = "given") -> NoduleRecall:
    """Nodules found (per size band) and false positives per scan at ``threshold``.

    ``result`` is a `nodulekit.evaluate.FrocResult` (its ``nodules`` carry
    ``diameter_mm`` and the ``probability`` of their best mark; its ``marks`` their
    ``outcome``). ``source`` says where the threshold came from, for the summary.
    """
    threshold = float(threshold)
    if math.isnan(threshold):
        raise ValueError("nodule recall needs a threshold; NaN was given")
    nodules = result.nodules
    found = nodules["probability"].fillna(-np.inf).to_numpy(float) >= threshold
    diameter = nodules["diameter_mm"].to_numpy(float)
    rows = []
    for key, (low, high) in SIZE_BANDS_MM.items():
        band = (diameter >= low) & (diameter < high)
        rows.append(_row(SIZE_BAND_LABELS[key], band, found))
    marks = result.marks
    false_positives = int(((marks["outcome"] == "fp") & (marks["probability"] >= threshold)).sum())
    scans = int(result.counts["scans"])
    rows.append(
        _row("all", np.ones(len(nodules), bool), found)
        | {"false_positives": false_positives, "scans": scans,
           "fp_per_scan": false_positives / scans if scans else float("nan")}
    )  # fmt: skip
    table = pd.DataFrame(rows)
    table[["false_positives", "scans"]] = table[["false_positives", "scans"]].astype("Int64")
    return NoduleRecall(threshold, source, table, int(found.sum()), len(nodules),
                        false_positives, scans)  # fmt: skip


def _row(name: str, band: np.ndarray, found: np.ndarray) -> dict[str, Any]:
    n = int(band.sum())
    hits = int((band & found).sum())
    return {"band": name, "nodules": n, "found": hits, "recall": hits / n if n else float("nan")}
