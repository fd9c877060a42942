"""Evaluation: classification metrics with intervals, the LUNA16 FROC and CPM, detection.

Names load on first use (torch is imported only by the functions that score with a model):

>>> from nodulekit.evaluate import froc, read_predictions   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

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
    "froc": "nodulekit.evaluate.froc",
    "FrocResult": "nodulekit.evaluate.froc",
    "FP_PER_SCAN": "nodulekit.evaluate.froc",
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
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nodulekit.evaluate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
