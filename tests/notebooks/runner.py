"""Run the course notebooks small (CI parameters) and find what went wrong in their outputs.

Shared by the notebook tests, the browser tests and ``benchmarks/bench_notebooks.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

#: papermill parameters that make each notebook run in well under two minutes on 2 CPU cores.
#: DATA_DIR stays "" (the default): the notebooks find or make the synthetic set in their folder.
CI_PARAMETERS: dict[str, dict[str, Any]] = {
    "00_setup_and_data.ipynb": {"N_SYNTHETIC_SCANS": 4},
    "01_exploring_scans.ipynb": {},
    "02_preprocessing.ipynb": {"WORKERS": 2},
    # one torch thread: on 2 shared cores, torch's default (2 threads) trains ~6x slower
    "03_training.ipynb": {"EPOCHS": 2, "BATCH_SIZE": 16, "SAMPLES_PER_EPOCH": 256, "THREADS": 1},
    # part two: RUN_DIR is 03's run folder, so its best.pt is reused when 03 ran first (as in
    # CI); a chapter run alone trains the same tiny model there. 100 bootstrap resamples.
    "04_evaluation.ipynb": {
        "RUN_DIR": "runs/03_training",
        "EPOCHS": 2,
        "BATCH_SIZE": 16,
        "SAMPLES_PER_EPOCH": 256,
        "THREADS": 1,
        "N_RESAMPLES": 100,
    },
    "05_explanations.ipynb": {
        "RUN_DIR": "runs/03_training",
        "EPOCHS": 2,
        "BATCH_SIZE": 16,
        "SAMPLES_PER_EPOCH": 256,
        "THREADS": 1,
        "N_CHECK_CROPS": 6,
        "IG_STEPS": 8,
    },
    # one scan, few candidates, one explained finding; the real DICOM sample stays off (minutes)
    "06_detection_and_report.ipynb": {
        "RUN_DIR": "runs/03_training",
        "EPOCHS": 2,
        "BATCH_SIZE": 16,
        "SAMPLES_PER_EPOCH": 256,
        "THREADS": 1,
        "MAX_CANDIDATES": 12,
        "TOP": 5,
        "EXPLAINED": 1,
        "SANITY": False,
        "USE_SAMPLE": False,
    },
    # a tiny U-Net for one epoch: the chapter's plumbing, not its Dice; no real-scan comparison
    "07_segmentation.ipynb": {
        "EPOCHS": 1,
        "BATCH_SIZE": 16,
        "SAMPLES_PER_EPOCH": 64,
        "MODEL_OPTIONS": {"channels": [4, 8]},
        "THREADS": 1,
        "COMPARE_ON_SAMPLE": False,
    },
}

#: text that means something failed, wherever it appears in an output
FAILURE_MARKERS = ("Traceback (most recent call last)", "Error displaying widget")


def notebook_paths() -> list[Path]:
    """The numbered chapters, in reading order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def artifacts_dir() -> Path:
    """``$NODULEKIT_ARTIFACTS`` (default ``artifacts/`` in the repository), created."""
    path = Path(os.environ.get("NODULEKIT_ARTIFACTS", ROOT / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def copy_notebooks(dest: Path) -> Path:
    """Copy the notebooks folder (chapters and ``_setup.py``, no generated data) to ``dest``."""
    ignore = shutil.ignore_patterns("nodulekit-data", "output", ".ipynb_checkpoints", "__pycache__")
    shutil.copytree(NOTEBOOKS, dest, ignore=ignore, dirs_exist_ok=True)
    return dest


def _texts(output: dict[str, Any]) -> list[str]:
    if output.get("output_type") == "stream":
        return [output.get("text", "")]
    data = output.get("data", {})
    return [
        v if isinstance(v, str) else "".join(v) for k, v in data.items() if k.startswith("text/")
    ]


def _widget_errors(notebook: dict[str, Any]) -> list[str]:
    """Non-empty ``nk-error`` boxes in the saved widget state (errors a widget caught)."""
    state = notebook.get("metadata", {}).get("widgets", {})
    models = state.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    found = []
    for model in models.values():
        s = model.get("state", {})
        if "nk-error" in s.get("_dom_classes", []) and s.get("value"):
            found.append(f"widget error box: {s['value'][:300]}")
    return found


def problems(notebook_path: Path) -> list[str]:
    """Every error output, traceback or widget error of an executed notebook."""
    notebook = json.loads(Path(notebook_path).read_text(encoding="utf-8"))
    found = []
    for i, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {i}: {output.get('ename')}: {output.get('evalue')}")
            found += [
                f"cell {i}: {marker!r} in output"
                for text in _texts(output)
                for marker in FAILURE_MARKERS
                if marker in text
            ]
    return found + _widget_errors(notebook)


def run_notebook(
    name: str, workdir: Path, out_dir: Path, *, parameters: dict[str, Any] | None = None
) -> float:
    """Execute ``workdir/name`` with papermill (fresh ``python3`` kernel, cwd ``workdir``) into
    ``out_dir/name``; return the seconds it took. Raises papermill's error on a failing cell."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    params = CI_PARAMETERS.get(name, {}) if parameters is None else parameters
    start = time.perf_counter()
    with inline_matplotlib():
        papermill.execute_notebook(
            str(workdir / name),
            str(out_dir / name),
            parameters=params,
            kernel_name="python3",
            cwd=str(workdir),
            progress_bar=False,
            execution_timeout=300,
        )
    return time.perf_counter() - start


@contextlib.contextmanager
def inline_matplotlib() -> Iterator[None]:
    """Kernels started inside get Jupyter's inline backend, not CI's ``MPLBACKEND=Agg``
    (with Agg, ``plt.show()`` in a notebook draws nothing and warns)."""
    old = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = old
