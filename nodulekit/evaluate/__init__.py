"""Evaluation: classification metrics with intervals, the LUNA16 FROC and CPM, detection.

Names load on first use (torch is imported only by the functions that score with a model):

>>> from nodulekit.evaluate import froc, read_predictions   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nodulekit._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - what editors and type checkers see
    from nodulekit.evaluate._froc import FP_PER_SCAN, FrocResult, froc, froc_by_group
    from nodulekit.evaluate._nodule_recall import NoduleRecall, nodule_recall
    from nodulekit.evaluate.crossval import CrossValidation, cross_validate
    from nodulekit.evaluate.detect import candidate_points, detect_scan
    from nodulekit.evaluate.detect_all import detect_dataset
    from nodulekit.evaluate.gallery import error_crops, error_table
    from nodulekit.evaluate.metrics import (
        bootstrap_metrics,
        calibration_table,
        choose_threshold,
        class_balance,
        classification_metrics,
        confusion_counts,
        curve_bands,
        format_table,
        metrics_by_group,
        paper_table,
        size_band,
    )
    from nodulekit.evaluate.predictions import (
        check_predictions,
        read_predictions,
        write_predictions,
    )
    from nodulekit.evaluate.run import Evaluation, evaluate_checkpoint, evaluate_predictions
    from nodulekit.evaluate.scoring import crop_geometry, load_model, score_crops

_LAZY = {
    "classification_metrics": "nodulekit.evaluate.metrics",
    "bootstrap_metrics": "nodulekit.evaluate.metrics",
    "choose_threshold": "nodulekit.evaluate.metrics",
    "confusion_counts": "nodulekit.evaluate.metrics",
    "paper_table": "nodulekit.evaluate.metrics",
    "format_table": "nodulekit.evaluate.metrics",
    "class_balance": "nodulekit.evaluate.metrics",
    "size_band": "nodulekit.evaluate.metrics",
    "metrics_by_group": "nodulekit.evaluate.metrics",
    "froc": "nodulekit.evaluate._froc",
    "froc_by_group": "nodulekit.evaluate._froc",
    "detect_scan": "nodulekit.evaluate.detect",
    "candidate_points": "nodulekit.evaluate.detect",
    "detect_dataset": "nodulekit.evaluate.detect_all",
    "FrocResult": "nodulekit.evaluate._froc",
    "FP_PER_SCAN": "nodulekit.evaluate._froc",
    "read_predictions": "nodulekit.evaluate.predictions",
    "check_predictions": "nodulekit.evaluate.predictions",
    "write_predictions": "nodulekit.evaluate.predictions",
    "curve_bands": "nodulekit.evaluate.metrics",
    "calibration_table": "nodulekit.evaluate.metrics",
    "error_table": "nodulekit.evaluate.gallery",
    "error_crops": "nodulekit.evaluate.gallery",
    "evaluate_predictions": "nodulekit.evaluate.run",
    "evaluate_checkpoint": "nodulekit.evaluate.run",
    "Evaluation": "nodulekit.evaluate.run",
    "load_model": "nodulekit.evaluate.scoring",
    "crop_geometry": "nodulekit.evaluate.scoring",
    "score_crops": "nodulekit.evaluate.scoring",
    "nodule_recall": "nodulekit.evaluate._nodule_recall",
    "NoduleRecall": "nodulekit.evaluate._nodule_recall",
    "cross_validate": "nodulekit.evaluate.crossval",
    "CrossValidation": "nodulekit.evaluate.crossval",
}

__all__ = [  # the same names as _LAZY (a test checks)
    "FP_PER_SCAN",
    "CrossValidation",
    "Evaluation",
    "FrocResult",
    "NoduleRecall",
    "bootstrap_metrics",
    "calibration_table",
    "candidate_points",
    "check_predictions",
    "choose_threshold",
    "class_balance",
    "classification_metrics",
    "confusion_counts",
    "crop_geometry",
    "cross_validate",
    "curve_bands",
    "detect_dataset",
    "detect_scan",
    "error_crops",
    "error_table",
    "evaluate_checkpoint",
    "evaluate_predictions",
    "format_table",
    "froc",
    "froc_by_group",
    "load_model",
    "metrics_by_group",
    "nodule_recall",
    "paper_table",
    "read_predictions",
    "score_crops",
    "size_band",
    "write_predictions",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
