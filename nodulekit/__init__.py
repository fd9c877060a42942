"""nodulekit: learn, debug and explain pulmonary-nodule detection on LUNA16 chest CT.

``import nodulekit`` is cheap: it imports no numpy, torch or SimpleITK and changes nothing
global. The names below are loaded on first use.

>>> import nodulekit
>>> nodulekit.__version__
'0.1.0'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "Scan": "nodulekit.data",
    "read_scan": "nodulekit.data",
    "write_scan": "nodulekit.data",
    "Luna16": "nodulekit.data",
    "make_synthetic_luna16": "nodulekit.data",
    "NodulekitError": "nodulekit.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nodulekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
