"""ipywidgets front ends composed from the library; every control calls a plain function.

Names are imported on first use (module ``__getattr__``), so ``import nodulekit.widgets`` does
not pull in ipywidgets, matplotlib or SimpleITK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nodulekit._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - what editors and type checkers see
    from nodulekit.widgets.explain_explorer import ExplainExplorer
    from nodulekit.widgets.preprocess_preview import PreprocessPreview
    from nodulekit.widgets.scan_browser import ScanBrowser
    from nodulekit.widgets.training_monitor import TrainingMonitor

#: public name -> module that defines it
_LAZY = {
    "ScanBrowser": "nodulekit.widgets.scan_browser",
    "PreprocessPreview": "nodulekit.widgets.preprocess_preview",
    "TrainingMonitor": "nodulekit.widgets.training_monitor",
}
# explain: the explanation explorer
_LAZY["ExplainExplorer"] = "nodulekit.widgets.explain_explorer"

__all__ = [
    "ExplainExplorer",
    "PreprocessPreview",
    "ScanBrowser",
    "TrainingMonitor",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
