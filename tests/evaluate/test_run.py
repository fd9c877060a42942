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
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["counts"]["scans"] == 1  # the held-out subset 1 holds one scan
    # one run, one operating point: the validation's, as test_metrics.json quotes it
    tested = json.loads((checkpoint.parent / "test_metrics.json").read_text(encoding="utf-8"))
    assert metrics["threshold_source"] == "validation"
    assert metrics["threshold"] == pytest.approx(tested["threshold"])
    assert f"threshold {tested['threshold']:.4g} (validation)" in result.output
    assert metrics["bootstrap"]["resamples"] == 50
    # per nodule at the same threshold: a nodule is found by a mark >= it inside its radius
    at = metrics["nodule_recall"]
    assert (at["threshold"], at["threshold_source"]) == (metrics["threshold"], "validation")
    ann = pd.read_csv(root / "annotations.csv", dtype={"seriesuid": str})
    ann = ann[ann["seriesuid"].isin(set(predictions["seriesuid"].astype(str)))]
    marks = predictions[predictions["probability"] >= at["threshold"]]
    xyz = ["coordX", "coordY", "coordZ"]
    found = sum(
        bool((((marks.loc[marks["seriesuid"].astype(str) == n["seriesuid"], xyz]
                - n[xyz].to_numpy(float)) ** 2).sum(axis=1) < (n["diameter_mm"] / 2) ** 2).any())
        for _, n in ann.iterrows()
    )  # fmt: skip
    assert (at["nodules"], at["found"]) == (len(ann), found)
    assert f"{found}/{len(ann)} nodules found" in result.output
    table = pd.read_csv(out / "nodule_recall.csv")
    assert table["band"].tolist() == ["< 6 mm", "6-10 mm", ">= 10 mm", "all"]
    assert table["nodules"].iloc[:3].sum() == len(ann) == table["nodules"].iloc[3]
    given = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--out",
              str(tmp_path / "given"), "--resamples", "20", "--device", "cpu",
              "--threshold", "0.25"],
    )  # fmt: skip
    assert given.exit_code == 0, given.output
    assert "threshold 0.25 (given)" in given.output
    assert json.loads((tmp_path / "given" / "metrics.json").read_text(encoding="utf-8"))[
        "threshold_source"
    ] == ("given")
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


@pytest.fixture
def three_subsets(tmp_path):
    from nodulekit.data import make_synthetic_luna16

    return make_synthetic_luna16(
        tmp_path / "d", n_scans=3, size="tiny", n_subsets=3, progress=False
    )


def _checkpoint(path, **config_and_metrics):
    from nodulekit.models import build_model
    from nodulekit.train.checkpoint import save_checkpoint

    metrics = config_and_metrics.pop("metrics", {})
    config = {"model": "cnn", "model_options": {"channels": [4, 8]}, "crop_size_mm": 32.0,
              "crop_shape": [12, 12, 12], **config_and_metrics}  # fmt: skip
    model = build_model("cnn", channels=[4, 8])
    return save_checkpoint(path, model=model, epoch=0, config=config, metrics=metrics)


def test_a_run_without_test_subsets_is_not_scored_on_its_validation(three_subsets, tmp_path):
    checkpoint = _checkpoint(tmp_path / "best.pt", val_subsets=[2], test_subsets=[])
    result = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(checkpoint), "--data", str(three_subsets),
              "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "held out no test subset" in result.output and "--subsets" in result.output


def test_subsets_the_run_saw_give_a_warning(three_subsets):
    from nodulekit.data import Luna16
    from nodulekit.evaluate.run import _held_out

    luna = Luna16(three_subsets, warn_missing=False)
    config = {"val_subsets": [2], "test_subsets": [1]}
    with pytest.warns(UserWarning, match=r"validation \[2\]; training \[0\]"):
        assert _held_out(config, luna, [0, 2]) == [0, 2]
    assert _held_out(config, luna, None) == [1]


def test_the_threshold_is_the_validations(tmp_path):
    from nodulekit.evaluate.run import _operating_point, validation_threshold

    tuned = _checkpoint(tmp_path / "a.pt", metrics={"val_threshold": 0.37})
    assert validation_threshold(tuned) == pytest.approx(0.37)
    assert _operating_point(tuned, None) == (pytest.approx(0.37), "validation")
    assert _operating_point(tuned, 0.8) == (0.8, "given")
    untuned = _checkpoint(tmp_path / "b.pt", metrics={"val_threshold": float("nan")})
    value, source = _operating_point(untuned, None)
    assert value == 0.5 and source.startswith("0.5, not tuned")


def test_the_crop_cache_follows_the_run_and_never_the_read_only_data(tmp_path, monkeypatch):
    import nodulekit.evaluate.run as run
    from nodulekit.preprocess.cache import user_cache_dir

    data = tmp_path / "data"
    data.mkdir()
    config = {"data": str(data), "cache": str(tmp_path / "crops")}
    assert run._cache_dir(config, data) == tmp_path / "crops"
    assert run._cache_dir({"data": "/elsewhere", "cache": "/x"}, data) == data / ".nodulekit-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    monkeypatch.setattr(run.os, "access", lambda *args: False)  # read-only data
    assert run._cache_dir({}, data) == user_cache_dir(data)
    assert str(user_cache_dir(data)).startswith(str(tmp_path / "home-cache"))


def test_a_submission_without_out_reads_no_scan_for_crops(three_subsets, monkeypatch):
    import nodulekit.evaluate.gallery as gallery
    from nodulekit.data import Luna16
    from nodulekit.evaluate.run import evaluate_predictions

    def no_crops(*args, **kwargs):
        raise AssertionError("crops cut although no figure is drawn")

    monkeypatch.setattr(gallery, "error_crops", no_crops)
    uid = Luna16(three_subsets, warn_missing=False).seriesuids[0]
    marks = pd.DataFrame(
        {
            "seriesuid": [uid],
            "coordX": [500.0],
            "coordY": [500.0],
            "coordZ": [500.0],
            "probability": [0.9],
        }
    )  # a false positive
    result = evaluate_predictions(marks, three_subsets, n_resamples=20)
    assert len(result.errors) >= 1 and result.gallery_crops == []
    assert result.threshold is None and result.threshold_source.startswith("none")


def test_the_evaluation_carries_the_marks_it_wrote(run_and_data, tmp_path):
    from nodulekit.evaluate import evaluate_checkpoint, read_predictions

    checkpoint, root = run_and_data
    evaluation = evaluate_checkpoint(checkpoint, root, out=tmp_path, n_resamples=0, device="cpu")
    written = read_predictions(tmp_path / "predictions.csv")
    pd.testing.assert_frame_equal(evaluation.predictions, written, check_dtype=False, atol=1e-12)
