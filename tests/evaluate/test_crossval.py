"""Cross-validation by subset: 6 tiny synthetic scans in 3 subsets, 3 folds of one epoch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nodulekit.errors import NodulekitError, OutputExistsError
from nodulekit.evaluate.crossval import cross_validate, fold_plan, pooled_metrics

TINY = {
    "epochs": 1,
    "samples_per_epoch": 32,
    "batch_size": 16,
    "crop_shape": (12, 12, 12),
    "model_options": {"channels": [4, 8]},
    "threads": 1,
    "cache_workers": 0,
    "device": "cpu",
    "quiet": True,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from nodulekit.data import make_synthetic_luna16

    return make_synthetic_luna16(
        tmp_path_factory.mktemp("crossval") / "data",
        n_scans=6,
        size="tiny",
        n_subsets=3,
        progress=False,
        negatives_per_nodule=6,
    )


@pytest.fixture(scope="module")
def done(data, tmp_path_factory):
    """One finished 3-fold cross-validation (shared: the tests below only read it)."""
    from nodulekit.train import TrainConfig

    out = tmp_path_factory.mktemp("cv") / "out"
    lines: list[str] = []
    config = TrainConfig(data=str(data), **TINY)
    result = cross_validate(config, folds=3, out=out, n_resamples=50, echo=lines.append)
    return result, out, lines


def _json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_scan_is_scored_once_by_the_fold_that_held_it_out(data, done):
    from nodulekit.data import Luna16
    from nodulekit.evaluate import read_predictions

    _, out, lines = done
    luna = Luna16(data)
    scans = luna.scans.set_index("seriesuid")["subset"]
    predictions = pd.read_csv(out / "predictions.csv", dtype={"seriesuid": str})
    assert set(predictions["seriesuid"]) == set(scans.index)  # all 6 scans, none twice:
    assert (predictions.groupby("seriesuid")["fold"].nunique() == 1).all()
    assert len(predictions) == len(luna.candidates)  # every candidate of every scan, once
    for uid, fold in predictions.groupby("seriesuid")["fold"].first().items():
        tested = _json(out / f"fold-{fold}" / "config.json")["test_subsets"]
        assert scans[uid] in tested
    assert len(read_predictions(out / "predictions.csv")) == len(predictions)  # a submission
    assert [line.split(":")[0] for line in lines] == ["fold 0 of 3", "fold 1 of 3", "fold 2 of 3"]


def test_each_fold_tests_on_subsets_it_neither_trained_nor_validated_on(done):
    _, out, _ = done
    held_out = []
    for k in range(3):
        config = _json(out / f"fold-{k}" / "config.json")
        test, val = set(config["test_subsets"]), set(config["val_subsets"])
        train = {0, 1, 2} - test - val
        assert test and val and train and not test & val
        assert (
            config["val_subsets"]
            == _json(out / f"fold-{(k + 1) % 3}" / "config.json")["test_subsets"]
        )
        held_out += config["test_subsets"]
    assert sorted(held_out) == [0, 1, 2]  # the test subsets of the folds partition the data
    folds = pd.read_csv(out / "folds.csv")
    assert folds["test_subsets"].astype(str).tolist() == ["0", "1", "2"]
    assert folds["val_subsets"].astype(str).tolist() == ["1", "2", "0"]
    assert folds["scans"].sum() == 6 and (folds["run"] == "trained").all()


def test_the_pooled_froc_counts_every_scan_and_nodule(data, done):
    from nodulekit.data import Luna16
    from nodulekit.evaluate._froc import froc

    result, out, _ = done
    luna = Luna16(data)
    metrics = _json(out / "evaluation" / "metrics.json")
    assert metrics["counts"]["scans"] == 6
    assert metrics["counts"]["nodules"] == len(luna.annotations) == 13
    assert pd.read_csv(out / "folds.csv")["nodules"].sum() == 13
    bands = pd.read_csv(out / "evaluation" / "size_bands.csv")  # candidates, as evaluate's
    positives = int((result.predictions["class"] == 1).sum())
    assert "nodules" not in bands and bands["positive_candidates"].sum() == positives
    predictions = result.predictions
    again = froc(predictions, luna.annotations, luna.excluded, luna.seriesuids, n_resamples=50)
    assert metrics["cpm"] == pytest.approx(again.cpm)  # one FROC over the pooled predictions
    assert metrics["classification"]["auc"]["value"] == pytest.approx(
        result.evaluation.classification.loc["auc", "value"]
    )
    assert [f["fold"] for f in metrics["folds"]] == [0, 1, 2]
    summary = result.summary()
    assert "pooled FROC over 6 scans and 13 nodules: CPM" in summary
    assert "at each fold's validation threshold: recall" in summary
    for name in ("froc.csv", "froc_points.csv", "classification.csv", "size_bands.csv"):
        assert (out / "evaluation" / name).is_file(), name


def test_each_fold_is_scored_at_its_own_validation_threshold(done):
    from sklearn.metrics import roc_auc_score

    from nodulekit.evaluate.run import validation_threshold

    result, out, _ = done
    predictions, folds = result.predictions, pd.read_csv(out / "folds.csv")
    for k, rows in predictions.groupby("fold"):
        tested = _json(out / f"fold-{k}" / "test_metrics.json")
        assert tested["threshold_source"] == "validation"
        assert rows["threshold"].unique().tolist() == [pytest.approx(tested["threshold"])]
        assert validation_threshold(out / f"fold-{k}" / "best.pt") == pytest.approx(
            tested["threshold"]
        )
        assert folds.loc[k, "threshold"] == pytest.approx(tested["threshold"])
        # the fold's best.pt scores its test scans as the training run's own test did
        assert roc_auc_score(rows["class"], rows["probability"]) == pytest.approx(tested["auc"])
    called = predictions["probability"] >= predictions["threshold"]
    nodules = predictions["class"] == 1
    table = result.evaluation.classification
    assert table.loc["recall", "value"] == pytest.approx(called[nodules].mean())
    assert table.loc["precision", "value"] == pytest.approx(nodules[called].mean())


def test_pooled_metrics_decide_per_candidate_never_at_one_pooled_threshold():
    # fold a calls at 0.8, fold b at 0.2: no single threshold gives recall 1 and precision 1
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.7, 0.3, 0.1])
    threshold = np.array([0.8, 0.8, 0.2, 0.2])
    series = np.array(["a1", "a2", "b1", "b2"])
    table = pooled_metrics(y, p, p >= threshold, series, n_resamples=200, seed=0)
    assert table.loc["recall", "value"] == 1.0 and table.loc["precision", "value"] == 1.0
    assert table.loc["specificity", "value"] == 1.0
    assert table.loc["auc", "value"] == pytest.approx(0.75)  # ranks the raw probabilities
    assert table.loc["recall", "ci_low"] == 1.0  # every replicate calls its nodules right
    assert np.isnan(table.attrs["threshold"])


def test_a_rerun_reuses_finished_folds_and_continues_interrupted_ones(done, tmp_path, monkeypatch):
    import nodulekit.train.pipeline as pipeline
    from nodulekit.train import TrainConfig

    result, out, _ = done
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    stamps = {k: (copy / f"fold-{k}" / "best.pt").stat().st_mtime_ns for k in range(3)}
    trained, real_train = [], pipeline.train

    def spy(config, **kwargs):
        trained.append((config.out, config.resume))
        return real_train(config, **kwargs)

    monkeypatch.setattr(pipeline, "train", spy)
    config = TrainConfig(data=_data_of(out), **TINY)
    config.threads = 2  # how it runs, not what it learns: the folds are still reused
    lines: list[str] = []
    again = cross_validate(config, folds=3, out=copy, n_resamples=50, echo=lines.append)
    assert trained == [] and all(line.endswith("(reused)") for line in lines)
    assert {k: (copy / f"fold-{k}" / "best.pt").stat().st_mtime_ns for k in range(3)} == stamps
    pd.testing.assert_frame_equal(again.predictions, result.predictions)
    (copy / "fold-1" / "test_metrics.json").unlink()  # as if killed before its test
    (copy / "fold-2" / "test_metrics.json").unlink()
    (copy / "fold-2" / "last.pt").unlink()  # as if killed in its first epoch
    lines.clear()
    again = cross_validate(config, folds=3, out=copy, n_resamples=50, echo=lines.append)
    fold1, fold2 = copy / "fold-1", copy / "fold-2"
    assert trained == [(str(fold1), str(fold1 / "last.pt")), (str(fold2), None)]
    assert again.folds["run"].tolist() == ["reused", "resumed", "trained"]
    assert "(resumed in" in lines[1] and (fold1 / "test_metrics.json").is_file()
    resumed = again.predictions[again.predictions["fold"] == 1].reset_index(drop=True)
    before = result.predictions[result.predictions["fold"] == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(resumed, before)  # its best.pt, at its threshold, again
    assert (copy / "fold-0" / "best.pt").stat().st_mtime_ns == stamps[0]


def _data_of(out):
    return _json(out / "crossval.json")["train"]["data"]


def test_other_options_in_the_same_folder_are_refused(done, tmp_path):
    from nodulekit.train import TrainConfig

    _, out, _ = done
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    config = TrainConfig(data=_data_of(out), **{**TINY, "epochs": 2})
    with pytest.raises(OutputExistsError, match=r"train\.epochs differ .* give --overwrite"):
        cross_validate(config, folds=3, out=copy, n_resamples=20)
    stranger = tmp_path / "notes"
    stranger.mkdir()
    (stranger / "todo.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputExistsError, match="holds no cross-validation"):
        cross_validate(config, folds=3, out=stranger, n_resamples=20)


def test_overwrite_trains_every_fold_again_and_clears_what_is_stale(done, tmp_path):
    from nodulekit.train import TrainConfig

    _, out, _ = done
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    stale = copy / "fold-5"  # left by an earlier cross-validation with more folds
    stale.mkdir()
    (stale / "config.json").write_text("{}", encoding="utf-8")
    config = TrainConfig(data=_data_of(out), **{**TINY, "seed": 1})
    result = cross_validate(config, folds=3, out=copy, n_resamples=20, overwrite=True)
    assert result.folds["run"].tolist() == ["trained"] * 3
    assert not stale.exists()
    assert _json(copy / "crossval.json")["train"]["seed"] == 1
    assert _json(copy / "fold-0" / "config.json")["seed"] == 1


def test_too_few_subsets_are_refused_before_anything_is_written(data, tmp_path):
    from nodulekit.train import TrainConfig

    config = TrainConfig(data=str(data), **TINY)
    with pytest.raises(NodulekitError, match=r"--folds 4 needs at least 4 subsets on disk, "
                       r"and only 3 are there \(\[0, 1, 2\]\): give --folds 3"):  # fmt: skip
        cross_validate(config, folds=4, out=tmp_path / "cv")
    with pytest.raises(ValueError, match="at least 3 folds"):
        cross_validate(config, folds=2, out=tmp_path / "cv")
    assert not (tmp_path / "cv").exists()
    split = TrainConfig(data=str(data), val_subsets=(1,), **TINY)
    with pytest.raises(ValueError, match="leave val_subsets unset"):
        cross_validate(split, folds=3, out=tmp_path / "cv")


def test_ten_subsets_give_luna16s_ten_folds():
    plan = fold_plan(range(10), 10)
    assert [(f.test_subsets, f.val_subsets) for f in plan[:2]] == [((0,), (1,)), ((1,), (2,))]
    assert plan[9].val_subsets == (0,) and plan[9].train_subsets == tuple(range(1, 9))
    assert fold_plan([2, 5, 7, 9], 3)[0].test_subsets == (2, 9)  # dealt by position on disk


def test_the_crossval_command_prints_a_line_per_fold_and_the_summary(data, tmp_path):
    from nodulekit.cli import app

    args = ["crossval", str(data), "--out", str(tmp_path / "cv"), "--folds", "3", "--epochs",
            "1", "--samples-per-epoch", "16", "--batch-size", "16", "--threads", "1",
            "--device", "cpu", "--cache-workers", "0", "--resamples", "20", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.count(" of 3: test subsets ") == 3 and "epoch" not in result.output
    assert "pooled FROC over 6 scans and 13 nodules: CPM" in result.output
    assert "ROC AUC" in result.output and "F1" in result.output
    assert (tmp_path / "cv" / "evaluation" / "froc.png").is_file()
    refused = CliRunner().invoke(app, [*args[:4], "--folds", "5"])
    assert refused.exit_code == 2
    assert "--folds 5 needs at least 5 subsets on disk" in refused.output
