"""nodulekit: learn, debug and explain pulmonary-nodule detection on LUNA16 chest CT.

``import nodulekit`` is cheap: it imports no numpy, torch or SimpleITK and changes nothing
global. The names below are loaded on first use.

>>> import nodulekit
>>> nodulekit.__version__
'0.1.0'
"""

from __future__ import annotations

from nodulekit._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
