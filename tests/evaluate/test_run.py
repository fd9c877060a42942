"""End to end: a tiny synthetic set, a tiny checkpoint, `nodulekit evaluate` both ways."""

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory):
    from nodulekit.data import make_synthetic_luna16

    base = tmp_path_factory.mktemp("evaluate")
    root = make_synthetic_luna16(
        base / "data", n_scans=3, size="tiny", n_subsets=3, progress=False, negatives_per_nodule=6
    )
    args = [
        "train", "--data", str(root), "--out", str(base / "run"), "--epochs", "1",
        "--samples-per-epoch", "32", "--batch-size", "16", "--crop-shape", "12", "12", "12",
        "--model-options", '{"channels": [4, 8]}', "--val-subsets", "2", "--test-subsets", "1",
        "--threads", "1", "--cache-workers", "0", "--device", "cpu",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return base / "run" / "best.pt", root


@pytest.mark.slow
def test_evaluate_a_checkpoint_then_its_predictions(run_and_data, tmp_path):
    checkpoint, root = run_and_data
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--out", str(out),
            "--resamples", "50", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "CPM" in result.output and "class balance 1:" in result.output
    for name in ("predictions.csv", "froc.csv", "froc_points.csv", "froc.png", "metrics.json",
                 "classification.csv", "roc_pr.png", "calibration.png", "errors.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["scans"] == 1  # the held-out subset 1 holds one scan
    # the same file scored as a submission gives the same CPM
    again = CliRunner().invoke(
        app, ["evaluate", "--predictions", str(out / "predictions.csv"), "--data", str(root),
              "--subsets", "1", "--resamples", "50"],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert f"CPM {metrics['cpm']:.3f}" in again.output


@pytest.mark.slow
def test_a_checkpoint_with_other_crop_geometry_is_refused(run_and_data, tmp_path):
    checkpoint, root = run_and_data
    result = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(checkpoint), "--data", str(root),
              "--crop-size-mm", "40", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "trained on crops of 32 mm in 12x12x12 voxels" in result.output
    assert "asked for 40 mm" in result.output


def test_evaluate_needs_exactly_one_source(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "--checkpoint or --predictions" in result.output


def test_bad_submission_is_one_clear_line(tmp_path):
    from nodulekit.data import make_synthetic_luna16

    root = make_synthetic_luna16(tmp_path / "d", n_scans=1, size="tiny", progress=False)
    bad = tmp_path / "p.csv"
    bad.write_text("seriesuid,coordX,coordY,coordZ,probability\nnot.a.uid,1,2,3,0.5\n")
    result = CliRunner().invoke(app, ["evaluate", "--predictions", str(bad), "--data", str(root)])
    assert result.exit_code == 2
    assert "not.a.uid on line 2" in result.output and str(bad) in result.output
    shutil.rmtree(root)
