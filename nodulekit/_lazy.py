"""Lazy exports (PEP 562): a package names its public objects and imports each on first use.

Every subpackage whose modules are heavy (torch, matplotlib, Captum, ipywidgets) declares
``_LAZY = {name: module}`` and ``__all__``, then::

    __getattr__, __dir__ = lazy_exports(__name__, _LAZY)

so that ``import nodulekit.viz`` loads neither matplotlib nor Pillow, yet
``from nodulekit.viz import plane_png`` works. An exported name must not also be a submodule's
name (importing the submodule would bind the module over it; `tests/test_exports.py` checks).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``table`` maps each lazily exported name to
    the module that defines it; ``dir()`` lists those names and the package's own."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        module = sys.modules[package]
        return sorted(set(getattr(module, "__all__", ())) | set(table))

    return __getattr__, __dir__
