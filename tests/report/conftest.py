"""A tiny synthetic scan, a randomly initialised checkpoint and the run files beside it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

#: the evaluation figures planted beside the checkpoint (metrics.json of nodulekit evaluate)
EVALUATION = {
    "cpm": 0.6125,
    "cpm_ci": [0.5011, 0.7022],
    "counts": {},
    "operating_points": [
        {"fp_per_scan": 1.0, "sensitivity": 0.6667, "ci_low": 0.5123, "ci_high": 0.8012},
        {"fp_per_scan": 4.0, "sensitivity": 0.8333, "ci_low": 0.7001, "ci_high": 0.9502},
    ],
    "classification": {"auc": {"value": 0.9012, "ci_low": 0.8501, "ci_high": 0.9433}},
}
TEST_METRICS = {
    "auc": 0.8771,
    "recall_best": 0.75,
    "precision_best": 0.25,
    "threshold": 0.42,
    "threshold_source": "validation",
}


def tiny_checkpoint(folder: Path, *, data: str = "/data/luna16-synthetic") -> Path:
    """A randomly initialised small CNN saved as a nodulekit checkpoint (12^3 crops of 32 mm)."""
    from nodulekit.models import build_model
    from nodulekit.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = {"model": "cnn", "model_options": {"channels": [4, 8]}, "crop_size_mm": 32.0,
              "crop_shape": [12, 12, 12], "data": data, "val_subsets": [8], "test_subsets": [9]}  # fmt: skip
    return save_checkpoint(
        folder / "best.pt", model=build_model("cnn", channels=[4, 8]), epoch=3, config=config,
        metrics={"val_auc": 0.8123, "val_threshold": 0.42}, data_fingerprint="f00dfeedc0ffee12",
    )  # fmt: skip


@pytest.fixture(scope="package")
def tiny(tmp_path_factory) -> SimpleNamespace:
    """One tiny synthetic scan and a run folder: best.pt, test_metrics.json, evaluation/."""
    from nodulekit.data import Luna16, make_synthetic_luna16

    base = tmp_path_factory.mktemp("report")
    root = make_synthetic_luna16(base / "data", n_scans=1, size="tiny", progress=False)
    luna = Luna16(root)
    uid = str(luna.scans["seriesuid"].iloc[0])
    run = base / "run"
    run.mkdir()
    checkpoint = tiny_checkpoint(run)
    (run / "test_metrics.json").write_text(json.dumps(TEST_METRICS))
    (run / "evaluation").mkdir()
    (run / "evaluation" / "metrics.json").write_text(json.dumps(EVALUATION))
    return SimpleNamespace(
        root=root, uid=uid, scan=luna.load(uid), path=luna.scan_path(uid), checkpoint=checkpoint,
        annotations=luna.annotations_for(uid), base=base,
    )  # fmt: skip


@pytest.fixture(scope="package")
def built(tiny) -> SimpleNamespace:
    """The report of the tiny scan (detection, 5 findings, 2 explained, sanity-checked)."""
    from nodulekit.report import build_report

    torch.set_num_threads(1)
    result = build_report(
        tiny.path, checkpoint=tiny.checkpoint, out=tiny.base / "out" / "report.html",
        top=5, explained=2, device="cpu",
    )  # fmt: skip
    return SimpleNamespace(result=result, html=result.path.read_text(encoding="utf-8"))
