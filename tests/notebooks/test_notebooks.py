"""The course notebooks: their shape (fast, static) and a run top to bottom at CI size (slow)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from tests.notebooks.runner import (
    CI_PARAMETERS,
    artifacts_dir,
    copy_notebooks,
    notebook_paths,
    problems,
    run_notebook,
)

PATHS = notebook_paths()
NAMES = [p.name for p in PATHS]
MAX_FUNCTION_LINES = 5
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def python_of(cell: dict) -> str:
    """A code cell's source with IPython magics and shell lines blanked, ready for `ast`."""
    lines = source(cell).splitlines()
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)


def test_the_eight_chapters_are_there():
    for prefix in ("00_", "01_", "02_", "03_", "04_", "05_", "06_", "07_"):
        assert any(n.startswith(prefix) for n in NAMES), f"notebooks/{prefix}*.ipynb is missing"
    assert set(CI_PARAMETERS) == set(NAMES), "tests/notebooks/runner.py: CI_PARAMETERS per notebook"


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_opens_with_a_title_and_what_you_will_learn(path):
    first = load(path)["cells"][0]
    assert first["cell_type"] == "markdown", f"{path.name}: first cell must be markdown"
    assert source(first).lstrip().startswith("# "), f"{path.name}: first cell starts with '# Title'"
    assert "you will learn" in source(first).lower(), f"{path.name}: say what the reader will learn"


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_has_a_parameters_cell_with_every_ci_parameter(path):
    cells = load(path)["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    names = {
        t.id
        for node in ast.parse(python_of(tagged[0])).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }
    assert "DATA_DIR" in names, f"{path.name}: the parameters cell sets DATA_DIR"
    assert "NODULEKIT_DATA" in source(tagged[0]), f"{path.name}: DATA_DIR reads NODULEKIT_DATA"
    missing = set(CI_PARAMETERS[path.name]) - names
    assert not missing, f"{path.name}: CI sets {sorted(missing)}, the parameters cell does not"


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_ends_with_a_link_to_the_next_chapter(path):
    last = load(path)["cells"][-1]
    links = LINK.findall(source(last))
    later = [n for n in NAMES if n > path.name]
    expected = later[0] if later else None
    if expected:
        assert expected in links, f"{path.name}: last cell links to {expected}, found {links}"
    else:
        assert links, f"{path.name}: last cell links somewhere to go next"


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_relative_links_resolve(path):
    for cell in load(path)["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for target in LINK.findall(source(cell)):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (path.parent / target).exists(), f"{path.name}: link to missing {target}"


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_defines_no_long_function(path):
    for i, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse(python_of(cell))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                lines = node.end_lineno - node.lineno  # body lines, without the `def` line
                assert lines <= MAX_FUNCTION_LINES, (
                    f"{path.name} cell {i}: {node.name} has {lines} lines; "
                    "move it into the nodulekit package"
                )


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_has_exercises_with_checks(path):
    cells = load(path)["cells"]
    text = "\n".join(source(c) for c in cells)
    if path.name.startswith("00_"):
        return  # the setup chapter checks the environment instead
    assert "exercise" in text.lower(), f"{path.name}: add two or three exercises"
    checks = [c for c in cells if c["cell_type"] == "code" and "check_" in source(c)]
    assert len(checks) >= 2, f"{path.name}: each exercise needs a check cell (check_...)"


# -- run them ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One copy of the notebooks for the whole run: 00 makes the synthetic set, the rest reuse it."""
    return copy_notebooks(tmp_path_factory.mktemp("course"))


@pytest.mark.slow
@pytest.mark.timeout(360)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, workdir):
    out_dir = artifacts_dir() / "notebooks"
    seconds = run_notebook(name, workdir, out_dir)  # raises PapermillExecutionError on a failure
    found = problems(out_dir / name)
    assert not found, f"{name} ran in {seconds:.0f} s with problems:\n" + "\n".join(found)


def test_problems_finds_errors_tracebacks_and_widget_errors(tmp_path):
    state = {
        "m1": {"state": {"_dom_classes": ["nk-error"], "value": "<div>bad scan</div>"}},
        "m2": {"state": {"_dom_classes": ["nk-error"], "value": ""}},
    }
    notebook = {
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}},
        "cells": [
            {"cell_type": "code", "outputs": [{"output_type": "stream", "text": "fine\n"}]},
            {"cell_type": "code", "outputs": [{"output_type": "error", "ename": "ValueError",
                                               "evalue": "boom", "traceback": []}]},
            {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stderr",
                                               "text": "Traceback (most recent call last):\n"}]},
            {"cell_type": "code", "outputs": [{"output_type": "display_data",
                                               "data": {"text/plain": ["Error displaying widget"]}}]},
        ],
    }  # fmt: skip
    path = tmp_path / "executed.ipynb"
    path.write_text(json.dumps(notebook))
    found = problems(path)
    assert found[0] == "cell 1: ValueError: boom"
    assert any("cell 2" in p and "Traceback" in p for p in found)
    assert any("cell 3" in p and "Error displaying widget" in p for p in found)
    assert found[-1] == "widget error box: <div>bad scan</div>"
    assert len(found) == 4


# -- the teacher's page and the answers -------------------------------------------------------
TEACHING = Path(__file__).resolve().parents[2] / "docs" / "teaching.md"


def test_teaching_page_covers_every_chapter():
    text = TEACHING.read_text(encoding="utf-8")
    for name in NAMES:
        assert f"`{name.removesuffix('.ipynb')}`" in text, f"docs/teaching.md: no row for {name}"
    for words in ("Binder", "laptop", "GPU", "Prerequisites", "estimate"):
        assert words in text, f"docs/teaching.md: say something about {words!r}"


def test_answers_are_out_of_the_students_way():
    answers = TEACHING.parent / "answers" / "README.md"
    assert answers.is_file(), "docs/answers/README.md holds the exercises' answers"
    assert "Students: stop here" in answers.read_text(encoding="utf-8")
    for path in PATHS:
        text = "\n".join(source(c) for c in load(path)["cells"])
        assert "answers/" not in text, f"{path.name} points students at the answers"
