"""TrainingMonitor: records headless, draws when displayed, reads like a status line."""

from __future__ import annotations

import pytest

from nodulekit.widgets import TrainingMonitor
from nodulekit.widgets.training_monitor import status_text
from tests.train.conftest import make_fake_cache


@pytest.fixture
def fake_cache_for_widgets():
    return make_fake_cache(per_series=6, size=8)


def _row(epoch, auc, best):
    return {
        "epoch": epoch,
        "train_loss": 0.5,
        "val_loss": 0.4,
        "val_auc": auc,
        "samples_per_s": 100.0 + epoch,
        "best_epoch": best,
        "best_checkpoint": "r/best.pt",
    }


def test_headless_it_only_records():
    monitor = TrainingMonitor()  # no Jupyter kernel here
    assert monitor.widget is None
    monitor.on_train_begin(type("C", (), {"epochs": 3})())
    monitor.on_batch_end(0, 0.6)
    monitor.on_epoch_end(_row(0, 0.8, 0))
    monitor.on_epoch_end(_row(1, 0.7, 0))
    assert monitor.history["val_auc"].tolist() == [0.8, 0.7]
    assert monitor.status == "epoch 2/3 · 101 samples/s · best val AUC 0.800 (epoch 1) → r/best.pt"
    monitor.on_train_end(None)
    assert monitor.status.startswith("done: epoch 2/3")


def _shown(monitor, kind):
    """The first child of the displayed widget of this ipywidgets type (what a person sees)."""
    import ipywidgets

    return next(c for c in monitor.widget.children if isinstance(c, getattr(ipywidgets, kind)))


def test_displayed_it_redraws_each_epoch():
    monitor = TrainingMonitor(display=True)
    first = _shown(monitor, "Image").value
    monitor.on_epoch_end(_row(0, 0.8, 0))
    assert _shown(monitor, "Image").value != first
    assert _shown(monitor, "Image").value[:4] == b"\x89PNG"
    assert "epoch 1" in _shown(monitor, "HTML").value
    assert len(monitor.figure().axes) == 2


def test_status_before_any_epoch():
    assert status_text([]) == "waiting for the first epoch…"
    assert status_text([], finished=True) == "done: no epoch ran"


def test_monitor_as_a_callback_in_fit(fake_cache_for_widgets, tmp_path):
    from nodulekit.train.config import TrainConfig
    from nodulekit.train.data import CandidateDataset, split_by_series
    from nodulekit.train.loop import fit

    cache = fake_cache_for_widgets
    splits = split_by_series(cache.index, val_subsets=(8, 9), test_subsets=())
    config = TrainConfig(
        out=str(tmp_path / "run"),
        model_options={"channels": [2, 4]},
        epochs=2,
        batch_size=16,
        samples_per_epoch=32,
        patience=0,
        device="cpu",
        threads=1,
    )
    monitor = TrainingMonitor(display=True)
    fit(
        config,
        CandidateDataset(cache, splits["train"]),
        CandidateDataset(cache, splits["val"]),
        callbacks=[monitor],
    )
    assert monitor.history["epoch"].tolist() == [0, 1]  # the metrics.csv rows, 0-based
    assert monitor.finished and "done" in _shown(monitor, "HTML").value


def test_the_monitor_counts_epochs_from_1_in_its_line_and_its_curves():
    monitor = TrainingMonitor(display=False)
    monitor.on_train_begin(type("C", (), {"epochs": 3})())
    for epoch, auc in enumerate([0.7, 0.9, 0.8]):
        monitor.on_epoch_end(_row(epoch, auc, 1 if epoch else 0))
    assert monitor.status.startswith("epoch 3/3") and "(epoch 2)" in monitor.status
    loss_ax, metric_ax = monitor.figure().axes
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2, 3]  # train loss per epoch
    assert list(metric_ax.get_lines()[0].get_xdata()) == [1, 2, 3]  # val AUC
    assert list(metric_ax.get_lines()[-1].get_xdata()) == [2, 2]  # best: the second epoch


def test_a_segmentation_run_shows_its_best_dice_and_draws_it():
    from nodulekit.widgets.training_monitor import TrainingMonitor, status_text

    rows = [
        {"epoch": 0, "train_loss": 0.9, "val_loss": 0.8, "val_dice": 0.41, "best_epoch": 0},
        {"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "val_dice": 0.77, "best_epoch": 1},
    ]
    assert "best val Dice 0.770 (epoch 2)" in status_text(rows, epochs=2)
    monitor = TrainingMonitor(display=False)
    for row in rows:
        monitor.on_epoch_end(row)
    fig = monitor.figure()
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "Dice (nodule patches)" in labels
    assert fig.axes[0].get_ylabel() == "Dice + BCE loss"
