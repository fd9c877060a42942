"""``nodulekit train``: options generated 1:1 from TrainConfig, and a run on a tiny set."""

from __future__ import annotations

import dataclasses
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app
from nodulekit.train.config import TrainConfig, build_parser, option_name, parse_config


def test_every_config_field_has_a_cli_option():
    options = {a.dest: a.option_strings for a in build_parser()._actions if a.dest != "help"}
    for f in dataclasses.fields(TrainConfig):
        assert option_name(f.name) in options[f.name]
    assert set(options) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_parsing_gives_the_same_config_as_the_python_api():
    config = parse_config(
        [
            "--data",
            "root",
            "--out",
            "run",
            "--epochs",
            "3",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--val-subsets",
            "7",
            "8",
            "--test-subsets",
            "--no-augment",
            "--crop-shape",
            "16",
            "16",
            "16",
            "--model-options",
            '{"channels": [4, 8]}',
            "--resume",
            "run/last.pt",
        ]
    )
    assert config == TrainConfig(
        data="root",
        out="run",
        epochs=3,
        batch_size=8,
        lr=0.01,
        val_subsets=(7, 8),
        test_subsets=(),
        augment=False,
        crop_shape=(16, 16, 16),
        model_options={"channels": [4, 8]},
        resume="run/last.pt",
    )
    assert parse_config([]) == TrainConfig()


def test_bad_values_exit_with_a_usage_error():
    result = CliRunner().invoke(app, ["train", "--crop-shape", "8", "8"])
    assert result.exit_code == 2
    assert "crop_shape must be 3 ints" in result.output


def test_help_lists_the_options():
    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    assert "--val-subsets" in result.output and "--resume" in result.output


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from nodulekit.data import make_synthetic_luna16

    return make_synthetic_luna16(
        tmp_path_factory.mktemp("tiny") / "data",
        n_scans=3,
        size="tiny",
        n_subsets=3,
        progress=False,
        negatives_per_nodule=6,
    )


@pytest.mark.slow
def test_no_candidates_is_a_clear_error(tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("candidates*.csv"))
    result = CliRunner().invoke(app, ["train", "--data", str(root), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "has no candidates table (candidates_V2.csv or candidates.csv)" in result.output


@pytest.mark.slow
def test_train_writes_metrics_and_best_checkpoint(tiny_root, tmp_path):
    from nodulekit.train.checkpoint import load_checkpoint

    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(root),
        "--out",
        str(run),
        "--epochs",
        "2",
        "--samples-per-epoch",
        "32",
        "--batch-size",
        "16",
        "--crop-shape",
        "12",
        "12",
        "12",
        "--model-options",
        '{"channels": [4, 8]}',
        "--val-subsets",
        "2",
        "--test-subsets",
        "1",
        "--threads",
        "1",
        "--cache-workers",
        "0",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [0, 1] and "val_auc" in metrics
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["config"]["crop_shape"] == [12, 12, 12]
    assert len(ckpt["data_fingerprint"]) == 16
    assert (root / ".nodulekit-cache").is_dir()
    assert "held-out test: AUC" in result.output
