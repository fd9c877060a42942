"""Training curves: loss and validation metrics per epoch (a pure function, data in, Figure out)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

#: validation metrics drawn in the right panel, with their labels
METRICS = {
    "val_auc": "ROC AUC",
    "val_ap": "average precision",
    "val_f1": "F1 @ 0.5",
    "val_recall": "recall @ 0.5",
    "val_precision": "precision @ 0.5",
    "val_dice": "Dice (nodule patches)",  # --task segment
    "val_dice_global": "Dice (all voxels)",
}


def training_curves_figure(
    metrics: pd.DataFrame,
    *,
    best_epoch: int | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (9.0, 3.4),
) -> Figure:
    """Loss (train and validation) and validation metrics against the epoch, counted from 1.

    Parameters
    ----------
    metrics : DataFrame
        Rows of ``metrics.csv`` as they are: ``epoch`` (counted from 0 in the file),
        ``train_loss``, ``val_loss`` and any of the ``val_*`` columns in `METRICS`. May be
        empty (the axes are drawn without lines). The x axis counts epochs from 1, as the
        progress line ("epoch 1/10") and `TrainingMonitor` do: the file's epoch 0 is drawn at 1.
    best_epoch : int, optional
        0-based like the file's ``epoch`` (`TrainResult.best_epoch`), marked with a dashed
        vertical line at ``best_epoch + 1`` (default: the epoch of the highest ``val_auc``, or
        ``val_dice`` for a segmentation run).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        A figure not registered with pyplot (nothing global changes; display or save it).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    loss_ax, metric_ax = fig.subplots(1, 2)
    has_rows = len(metrics) > 0 and "epoch" in metrics
    if has_rows:
        epochs = metrics["epoch"].to_numpy() + 1  # what a person reads counts from 1
        for column, label in (("train_loss", "train"), ("val_loss", "validation")):
            if column in metrics:
                loss_ax.plot(epochs, metrics[column].to_numpy(), marker="o", ms=3, label=label)
        for column, label in METRICS.items():
            if column in metrics:
                metric_ax.plot(epochs, metrics[column].to_numpy(), marker="o", ms=3, label=label)
        monitor = "val_dice" if "val_dice" in metrics else "val_auc"
        if best_epoch is None and monitor in metrics and metrics[monitor].notna().any():
            best_epoch = int(metrics.loc[metrics[monitor].idxmax(), "epoch"])
        if best_epoch is not None:
            for ax in (loss_ax, metric_ax):
                ax.axvline(best_epoch + 1, color="0.5", ls="--", lw=1)
        loss_ax.legend(fontsize=8)
        metric_ax.legend(fontsize=8, loc="lower right")
    loss_name = "Dice + BCE loss" if "val_dice" in metrics else "BCE loss"
    loss_ax.set(xlabel="epoch", ylabel=loss_name, title="loss")
    metric_ax.set(xlabel="epoch", ylabel="score", title="validation", ylim=(0.0, 1.02))
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    return fig


def figure_png(fig: Figure, *, dpi: int = 80, tight: bool = False) -> bytes:
    """PNG bytes of a figure (for an image widget, an HTML report or a file); ``tight``: crop
    the margins to what is drawn."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buffer.getvalue()
