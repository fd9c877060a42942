"""`nodulekit train --task segment`: the same loop, the same files, resume and determinism."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app
from nodulekit.data.synthetic import make_synthetic_luna16
from nodulekit.models import build_model
from nodulekit.models.unet import NoduleUNet
from nodulekit.train.callbacks import StopAfter
from nodulekit.train.checkpoint import load_checkpoint
from nodulekit.train.config import TrainConfig
from nodulekit.train.handlers import ProgressLine
from nodulekit.train.pipeline import train

TINY = {"channels": [4, 8]}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_synthetic_luna16(
        tmp_path_factory.mktemp("segtrain") / "data",
        n_scans=3,
        size="tiny",
        seed=5,
        progress=False,
    )


def _config(root, out, **changes) -> TrainConfig:
    values = dict(
        data=str(root),
        out=str(out),
        task="segment",
        model_options=TINY,
        epochs=2,
        batch_size=8,
        samples_per_epoch=16,
        patience=0,
        quiet=True,
        threads=1,
    )
    return TrainConfig(**{**values, **changes})


def test_a_segment_task_switches_the_default_model_and_refuses_a_classifier():
    assert TrainConfig(task="segment").model == "unet"
    assert TrainConfig(task="segment", model="unet3d").model == "unet3d"
    with pytest.raises(
        ValueError, match=r"model must be one of \['unet', 'unet3d'\], not 'resnet'"
    ):
        TrainConfig(task="segment", model="resnet")
    with pytest.raises(ValueError, match="give --task segment"):
        TrainConfig(model="unet")
    with pytest.raises(ValueError, match="task must be 'classify' or 'segment'"):
        TrainConfig(task="detect")
    assert isinstance(build_model("unet"), NoduleUNet)
    assert build_model("unet3d").dims == 3


def test_the_progress_line_prints_the_monitored_dice():
    line = ProgressLine(2, monitor="val_dice").line(
        {"epoch": 0, "train_loss": 0.5, "val_dice": 0.8125, "seconds": 1.0}
    )
    assert "val Dice 0.8125" in line and "AUC" not in line


def test_command_writes_val_dice_and_best_checkpoint_and_says_the_model(root, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        ["train", "--task", "segment", "--data", str(root), "--out", str(out), "--epochs", "1",
         "--batch-size", "8", "--samples-per-epoch", "16", "--model-options",
         json.dumps(TINY), "--threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv")
    assert "val_dice" in metrics.columns and metrics["val_dice"].between(0, 1).all()
    assert "val_auc" not in metrics.columns  # no empty classifier columns
    assert "val Dice" in result.output and "best val Dice" in result.output
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["model"] == "unet"
    checkpoint = load_checkpoint(out / "best.pt")
    assert checkpoint["config"]["task"] == "segment"


def test_same_seed_same_metrics_and_resume_continues_exactly(root, tmp_path):
    whole = train(_config(root, tmp_path / "whole"))
    again = train(_config(root, tmp_path / "again"))
    columns = ["train_loss", "val_loss", "val_dice"]
    pd.testing.assert_frame_equal(whole.metrics[columns], again.metrics[columns])

    train(_config(root, tmp_path / "split"), callbacks=[StopAfter(1)])
    resumed = train(_config(root, tmp_path / "split", resume=str(tmp_path / "split" / "last.pt")))
    assert resumed.metrics["epoch"].tolist() == [0, 1]
    pd.testing.assert_frame_equal(
        resumed.metrics[columns], whole.metrics[columns], check_exact=False, rtol=1e-5
    )
