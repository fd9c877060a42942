"""training_curves_figure: a Figure with the loss and metric curves."""

from __future__ import annotations

import pandas as pd

from nodulekit.viz.training import figure_png, training_curves_figure

ROWS = pd.DataFrame(
    {
        "epoch": [0, 1, 2],
        "train_loss": [0.7, 0.5, 0.4],
        "val_loss": [0.6, 0.45, 0.5],
        "val_auc": [0.8, 0.95, 0.9],
        "val_ap": [0.5, 0.8, 0.7],
        "val_f1": [0.4, 0.7, 0.6],
    }
)


def test_two_panels_with_one_line_per_column():
    fig = training_curves_figure(ROWS)
    loss_ax, metric_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()[:2]] == ["train", "validation"]
    labels = [line.get_label() for line in metric_ax.get_lines()]
    assert labels[:3] == ["ROC AUC", "average precision", "F1 @ 0.5"]
    # the best epoch (highest AUC: the file's epoch 1, the second) is marked in both panels
    assert list(metric_ax.get_lines()[-1].get_xdata()) == [2, 2]
    assert list(loss_ax.get_lines()[0].get_ydata()) == [0.7, 0.5, 0.4]


def test_epochs_are_drawn_counting_from_1_as_the_progress_line_says():
    fig = training_curves_figure(ROWS, best_epoch=0)  # metrics.csv's first epoch is 0
    loss_ax, metric_ax = fig.axes
    for line in [*loss_ax.get_lines()[:2], *metric_ax.get_lines()[:3]]:
        assert list(line.get_xdata()) == [1, 2, 3]
    assert list(loss_ax.get_lines()[-1].get_xdata()) == [1, 1]  # best epoch 0 is "epoch 1"
    assert loss_ax.get_xlabel() == "epoch"


def test_empty_history_draws_empty_axes_and_png():
    fig = training_curves_figure(pd.DataFrame())
    assert len(fig.axes) == 2 and not fig.axes[0].get_lines()
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
