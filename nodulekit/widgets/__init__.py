"""ipywidgets front ends composed from the library; every control calls a plain function.

Names are imported on first use (module ``__getattr__``), so ``import nodulekit.widgets`` does
not pull in ipywidgets, matplotlib or SimpleITK.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_LAZY = {
    "ScanBrowser": "nodulekit.widgets.scan_browser",
    "PreprocessPreview": "nodulekit.widgets.preprocess_preview",
    "TrainingMonitor": "nodulekit.widgets.training_monitor",
}
# explain: the explanation explorer
_LAZY["ExplainExplorer"] = "nodulekit.widgets.explain_explorer"

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nodulekit.widgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
