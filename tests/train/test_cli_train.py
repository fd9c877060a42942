"""``nodulekit train`` and ``python -m nodulekit.train``: one typer command, options generated
1:1 from TrainConfig, checks before the crop cache, and a run on a tiny set."""

from __future__ import annotations

import dataclasses
import shutil
from types import SimpleNamespace

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import nodulekit.train.__main__ as train_main
from nodulekit.cli import app
from nodulekit.train.__main__ import option_name
from nodulekit.train.config import TrainConfig


def _options(command) -> dict[str, list[str]]:
    return {p.name: [*p.opts, *p.secondary_opts] for p in command.params if p.name != "help"}


def test_every_config_field_is_one_option_of_both_entry_points():
    cli = typer.main.get_command(app).commands["train"]
    module = typer.main.get_command(train_main.make_app())
    for command in (cli, module):
        options = _options(command)
        assert set(options) == {f.name for f in dataclasses.fields(TrainConfig)}
        for f in dataclasses.fields(TrainConfig):
            assert option_name(f.name) in options[f.name]
    assert _options(cli) == _options(module)


@pytest.fixture
def parsed(monkeypatch):
    """The config the command would train with; nothing runs."""
    seen = {}
    monkeypatch.setattr(train_main, "run", lambda config: seen.update(c=config))
    return seen


def test_parsing_gives_the_same_config_as_the_python_api(parsed):
    args = ["train", "--data", "root", "--out", "run", "--epochs", "3", "--batch-size", "8",
            "--lr", "0.01", "--val-subsets", "7", "8", "--test-subsets", "--no-augment",
            "--crop-shape", "16", "16", "16", "--model-options", '{"channels": [4, 8]}',
            "--resume", "run/last.pt", "--quiet", "--overwrite"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert parsed["c"] == TrainConfig(
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
        quiet=True,
        overwrite=True,
    )
    assert CliRunner().invoke(app, ["train"]).exit_code == 0
    assert parsed["c"] == TrainConfig()
    CliRunner().invoke(app, ["train", "--val-subsets", "7,8", "--test-subsets", "none"])
    assert (parsed["c"].val_subsets, parsed["c"].test_subsets) == ((7, 8), ())


def test_python_m_parses_the_same_way(parsed):
    assert train_main.main(["--data", "root", "--crop-shape", "16", "16", "16"]) == 0
    assert parsed["c"] == TrainConfig(data="root", crop_shape=(16, 16, 16))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crop-shape", "2", "2", "2"], "crop_shape must be 3 ints >= 4"),
        (["--model-options", "{channels"], "is not JSON"),
        (["--val-subsets", "eight"], "write whole numbers"),
        (["--epochs", "0"], "epochs must be at least 1"),
    ],
)
def test_bad_values_exit_with_a_usage_error(args, message):
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_help_is_typers_and_lists_the_options(capsys):
    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    assert "Usage: nodulekit train [OPTIONS]" in result.output
    for option in ("--val-subsets", "--resume", "--no-augment", "--quiet", "--batch-size"):
        assert option in result.output
    assert train_main.main(["--help"]) == 0
    assert "Usage: python -m nodulekit.train [OPTIONS]" in capsys.readouterr().out


def test_result_lines_count_epochs_from_one_and_quote_the_validation_threshold(tmp_path):
    metrics = {"auc": 0.95, "ap": 0.8, "recall": 0.5, "precision": 0.9, "f1": 0.6429,
               "threshold": 0.42, "recall_best": 0.875, "precision_best": 0.7,
               "f1_best": 0.7778, "threshold_source": "validation",
               "recall_lt6mm": 0.5, "nodules_lt6mm": 4, "recall_6to10mm": 1.0,
               "nodules_6to10mm": 3, "recall_gt10mm": 1.0, "nodules_gt10mm": 1}  # fmt: skip
    result = SimpleNamespace(run_dir=tmp_path, best_epoch=0, best_val_auc=0.91234,
                             test_metrics=metrics)  # fmt: skip
    lines = train_main.result_lines(result)
    assert "best epoch: 1 (counting from 1)  best val AUC: 0.912" in lines[1]
    assert lines[3] == (
        "  at threshold 0.420 chosen on validation: recall 0.875, precision 0.700, F1 0.778 "
        "(per candidate)"
    )
    assert lines[4] == (
        "  candidate recall by nodule size: < 6 mm 0.500 of 4 candidates, "
        "6-10 mm 1.000 of 3 candidates, >= 10 mm 1.000 of 1 candidate"
    )
    del metrics["threshold_source"]  # a run from before thresholds were chosen on validation
    assert train_main.result_lines(result)[3].startswith("  at threshold 0.5: recall 0.500")
    result.test_metrics = {}
    assert "held-out test: none" in train_main.result_lines(result)[-1]


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
    assert f"crop cache: {root / '.nodulekit-cache'} (shared by the runs on this data)" in (
        result.output
    )
    assert "held-out test: ROC AUC" in result.output
    assert "epoch 1/2" in result.output and "epoch 2/2" in result.output  # a line per epoch
    assert "best val AUC" in result.output


def test_one_subset_is_refused_before_the_cache_is_built(tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("subset1", "subset2"))
    result = CliRunner().invoke(app, ["train", "--data", str(root), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "only subsets [0] are on disk" in result.output
    assert not (root / ".nodulekit-cache").exists() and not (tmp_path / "r").exists()


def test_an_out_folder_that_cannot_be_written_is_refused_before_the_cache(tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["train", "--data", str(root), "--out", str(blocker / "run")])
    assert result.exit_code == 2
    assert f"--out {blocker / 'run'}: {blocker} is not a folder you can write" in result.output
    assert not (root / ".nodulekit-cache").exists()
