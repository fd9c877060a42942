"""The training loop on a fake crop cache of spheres vs tubes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from nodulekit.errors import CheckpointError
from nodulekit.train.augment import Augment
from nodulekit.train.callbacks import History, StopAfter
from nodulekit.train.checkpoint import load_checkpoint
from nodulekit.train.config import TrainConfig
from nodulekit.train.data import CandidateDataset, split_by_series
from nodulekit.train.loop import METRIC_COLUMNS, fit, resolve_device

TIMING = ["samples_per_s", "seconds"]


def _datasets(cache, augment=True):
    splits = split_by_series(cache.index, val_subsets=(8, 9), test_subsets=())
    aug = Augment(seed=0, scale=(1, 1)) if augment else None
    return (
        CandidateDataset(cache, splits["train"], augment=aug),
        CandidateDataset(cache, splits["val"]),
    )


def _config(tmp_path, name="run", **overrides):
    values = dict(
        out=str(tmp_path / name),
        model_options={"channels": (4, 8, 16)},
        epochs=2,
        batch_size=16,
        samples_per_epoch=96,
        lr=5e-3,
        patience=0,
        device="cpu",
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_fit_learns_and_writes_the_run_folder(fake_cache, tmp_path):
    history = History()
    result = fit(
        _config(tmp_path, epochs=3, samples_per_epoch=160),
        *_datasets(fake_cache),
        callbacks=[history],
    )
    run = tmp_path / "run"
    frame = pd.read_csv(run / "metrics.csv")
    assert list(frame.columns[: len(METRIC_COLUMNS)]) == METRIC_COLUMNS
    assert frame["epoch"].tolist() == [0, 1, 2]
    assert frame["val_auc"].iloc[-1] >= 0.95
    assert frame["train_loss"].iloc[-1] < frame["train_loss"].iloc[0]
    assert {"best.pt", "last.pt", "config.json", "metrics.csv"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "config.json").read_text(encoding="utf-8"))["epochs"] == 3
    assert (run.stat().st_mode & 0o777) == 0o700
    assert result.best_epoch == int(frame["val_auc"].idxmax())
    assert load_checkpoint(run / "best.pt")["epoch"] == result.best_epoch
    assert [row["epoch"] for row in history.rows] == [0, 1, 2]


def test_same_seed_same_metrics(fake_cache, tmp_path):
    a = fit(_config(tmp_path, "a"), *_datasets(fake_cache)).metrics.drop(columns=TIMING)
    b = fit(_config(tmp_path, "b"), *_datasets(fake_cache)).metrics.drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b)


def test_other_seed_other_metrics(fake_cache, tmp_path):
    a = fit(_config(tmp_path, "a", epochs=1), *_datasets(fake_cache)).metrics
    b = fit(_config(tmp_path, "b", epochs=1, seed=1), *_datasets(fake_cache)).metrics
    assert a["train_loss"].iloc[0] != b["train_loss"].iloc[0]


def test_resume_continues_exactly(fake_cache, tmp_path):
    straight = fit(_config(tmp_path, "straight"), *_datasets(fake_cache))
    fit(_config(tmp_path, "half"), *_datasets(fake_cache), callbacks=[StopAfter(1)])
    assert load_checkpoint(tmp_path / "half" / "last.pt")["epoch"] == 0
    resumed = fit(
        _config(tmp_path, "half", resume=str(tmp_path / "half" / "last.pt")), *_datasets(fake_cache)
    )
    pd.testing.assert_frame_equal(
        straight.metrics.drop(columns=TIMING), resumed.metrics.drop(columns=TIMING)
    )
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert len(pd.read_csv(tmp_path / "half" / "metrics.csv")) == 2


def test_resume_with_another_model_is_refused(fake_cache, tmp_path):
    fit(_config(tmp_path, "a", epochs=1), *_datasets(fake_cache))
    with pytest.raises(CheckpointError, match="holds model 'cnn', not 'resnet'"):
        fit(
            _config(
                tmp_path,
                "b",
                model="resnet",
                model_options={},
                resume=str(tmp_path / "a" / "last.pt"),
            ),
            *_datasets(fake_cache),
        )


def test_a_callback_can_stop_training(fake_cache, tmp_path):
    result = fit(_config(tmp_path, epochs=5), *_datasets(fake_cache), callbacks=[StopAfter(2)])
    assert len(result.metrics) == 2


def test_early_stopping_after_patience_epochs_without_a_better_auc(fake_cache, tmp_path):
    train, _ = _datasets(fake_cache, augment=False)
    negatives = np.flatnonzero(fake_cache.index["class"].to_numpy() == 0)[:8]
    val = CandidateDataset(fake_cache, negatives)  # one class: AUC is NaN, never improves
    result = fit(_config(tmp_path, epochs=6, patience=2, samples_per_epoch=32), train, val)
    assert result.metrics["epoch"].tolist() == [0, 1, 2]
    assert result.best_epoch == 0


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None and not torch.backends.mps.is_available():
        assert resolve_device("auto") == torch.device("cpu")


def test_config_round_trip_and_unknown_keys(tmp_path):
    config = _config(tmp_path)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown TrainConfig options \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="crop_shape must be 3 ints"):
        TrainConfig(crop_shape=(8, 8))


def test_metrics_at_hand_computed_points():
    from nodulekit.train.metrics import binary_metrics

    m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    assert (m["auc"], m["recall"], m["precision"], m["f1"]) == (0.75, 0.5, 0.5, 0.5)
    assert m["threshold"] == 0.4 and m["recall_best"] == 1.0
    assert m["precision_best"] == pytest.approx(2 / 3)
    one_class = binary_metrics(np.array([0, 0]), np.array([0.2, 0.7]))
    assert np.isnan(one_class["auc"])
