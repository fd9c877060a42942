"""A name a package exports means one thing, whatever was imported before.

Importing a submodule binds it on its package under its own name; a function exported under
that same name lazily (``nodulekit.evaluate.froc`` once lived in ``evaluate/froc.py``) then
turns into the module after anything imports the submodule, and ``froc(...)`` fails with
"'module' object is not callable".
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest

PACKAGES = [
    "nodulekit.data",
    "nodulekit.preprocess",
    "nodulekit.models",
    "nodulekit.train",
    "nodulekit.evaluate",
    "nodulekit.explain",
    "nodulekit.viz",
    "nodulekit.widgets",
    "nodulekit.report",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_exported_names_are_not_replaced_by_submodules(name):
    package = importlib.import_module(name)
    for sub in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{name}.{sub.name}")  # what any later code may do
    replaced = [n for n in package.__all__ if isinstance(getattr(package, n), types.ModuleType)]
    assert not replaced, f"{name}.{replaced} became modules: a submodule shares the name"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_is_listed_and_is_its_modules_object(name):
    """``__all__`` is what ``dir()`` lists, and each name is the object of the module that
    defines it: the module ``_LAZY`` maps it to, or (eager packages) the one
    `inspect.getmodule` finds for a class or function."""
    package = importlib.import_module(name)
    lazy = getattr(package, "_LAZY", None)  # name -> defining module, for lazy packages
    if lazy is not None:
        assert sorted(package.__all__) == sorted(lazy)
    listed = dir(package)
    for export in package.__all__:
        assert export in listed, f"{name}.{export} missing from dir()"
        obj = getattr(package, export)
        if lazy is not None:
            module = lazy[export]
        elif inspect.isclass(obj) or inspect.isfunction(obj):
            module = inspect.getmodule(obj).__name__
        else:  # a constant: no module of its own to compare with
            continue
        assert module.startswith("nodulekit."), f"{name}.{export} comes from {module}"
        assert getattr(importlib.import_module(module), export) is obj, f"{name}.{export}"


def test_evaluate_functions_stay_functions_after_their_modules_load():
    import nodulekit.evaluate.run  # noqa: F401  (imports the FROC and nodule-recall modules)
    from nodulekit.evaluate import froc, nodule_recall

    assert not isinstance(froc, types.ModuleType) and callable(froc)
    assert not isinstance(nodule_recall, types.ModuleType) and callable(nodule_recall)
