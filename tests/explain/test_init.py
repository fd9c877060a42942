"""The lazy exports of `nodulekit.explain` and `nodulekit.widgets` are what editors see."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys

import pytest


def type_checking_names(module) -> dict[str, str]:
    """``name -> module`` imported inside the module's ``if TYPE_CHECKING:`` block."""
    tree = ast.parse(inspect.getsource(module))
    names = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for item in ast.walk(node):
                if isinstance(item, ast.ImportFrom):
                    names.update({alias.name: item.module for alias in item.names})
    return names


@pytest.mark.parametrize("package", ["nodulekit.explain", "nodulekit.widgets"])
def test_the_type_checking_block_names_every_lazy_export(package):
    module = importlib.import_module(package)
    assert type_checking_names(module) == module._LAZY
    assert sorted(module.__all__) == sorted(module._LAZY)  # ruff and editors read __all__
    for name, where in module._LAZY.items():
        assert getattr(importlib.import_module(where), name) is getattr(module, name)


def test_importing_the_packages_stays_cheap():
    code = (
        "import sys, nodulekit.explain, nodulekit.widgets; "
        "print(sorted(m for m in ('torch', 'captum', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
