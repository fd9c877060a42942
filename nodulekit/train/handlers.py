"""The loop's own handlers, on the callback protocol of `nodulekit.train.callbacks`.

As MONAI's engines attach handlers, `fit` attaches these to every run, in this order, before
the user's callbacks: `MetricsFile` (``metrics.csv``), `Checkpointer` (``last.pt``,
``best.pt``), `ProgressLine` (one line per epoch), `EarlyStopping`. Each holds the
`~nodulekit.train.loop.Trainer` it serves and reads the typed `LoopState` there. Only rank 0
writes files or prints; every rank stops on rank 0's decision.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

import pandas as pd

from nodulekit._files import atomic_write
from nodulekit.train.checkpoint import save_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from nodulekit.train.loop import Trainer

#: metrics.csv columns, in order (the other metrics follow: see `binary_metrics`)
METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "val_loss",
    "val_auc",
    "val_ap",
    "val_recall",
    "val_precision",
    "val_f1",
    "lr",
    "samples_per_s",
    "seconds",
]


def metrics_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The history as a table: `METRIC_COLUMNS` first (those the rows hold), then the others
    in row order."""
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in METRIC_COLUMNS]
    # another task's rows (segmentation: val_dice) leave out the classifier's metrics
    first = [c for c in METRIC_COLUMNS if c in frame.columns] if rows else METRIC_COLUMNS
    return frame.reindex(columns=first + extra)


class MetricsFile:
    """Rewrites ``metrics.csv`` (atomically) with the whole history after each epoch.

    Its ``epoch`` column counts from 0 (as `TrainResult.best_epoch` and the callbacks' rows
    do); what a person reads counts from 1: the progress line, `TrainingMonitor` and
    `nodulekit.viz.training.training_curves_figure` show the file's epoch 0 as epoch 1.
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def on_epoch_end(self, metrics: dict[str, Any]) -> None:
        frame = metrics_frame(self.trainer.state.history)
        with atomic_write(self.trainer.run_dir / "metrics.csv", "w") as handle:
            frame.to_csv(handle, index=False)


class Checkpointer:
    """Saves ``last.pt`` after each epoch and ``best.pt`` when the monitored score improved."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def on_epoch_end(self, metrics: dict[str, Any]) -> None:
        t, state = self.trainer, self.trainer.state
        saved = dict(
            model=t.model,
            optimizer=t.optimizer,
            scheduler=t.scheduler,
            scaler=t.scaler,
            epoch=state.epoch,
            config=t.config.to_dict(),
            metrics=state.history[-1],
            data_fingerprint=t.data_fingerprint,
            history=state.history,
            extra={"loop": state.to_checkpoint()},
        )
        best = [t.run_dir / "best.pt"] if state.improved else []
        save_checkpoint(t.run_dir / "last.pt", **saved, copies=best)


class EarlyStopping:
    """Stops after ``patience`` epochs without a better monitored score (0: never)."""

    def __init__(self, trainer: Trainer, patience: int) -> None:
        self.trainer, self.patience = trainer, int(patience)

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        state = self.trainer.state
        if self.patience > 0 and state.bad_epochs >= self.patience:
            state.stop_reason = "early_stopping"
            return True
        return False


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _label(column: str) -> str:
    """``val_auc`` -> ``val AUC``, ``val_dice`` -> ``val Dice`` (the progress line's words)."""
    split, _, name = column.partition("_")
    words = {"auc": "AUC", "ap": "AP", "f1": "F1", "dice": "Dice", "iou": "IoU"}
    return f"{split} {words.get(name, name)}"


class ProgressLine:
    """Prints one line per epoch, epochs counted from 1.

    ``epoch 3/10  loss 0.4123  val AUC 0.9512  12.3 s  about 1 min 26 s left``
    """

    def __init__(
        self, total_epochs: int, stream: IO[str] | None = None, *, monitor: str = "val_auc"
    ) -> None:
        self.total = int(total_epochs)
        self.stream = stream
        self.monitor = monitor  # the task's column: val_auc, val_dice...
        self.seconds: list[float] = []

    def line(self, metrics: dict[str, Any]) -> str:
        """The line for one epoch's metrics row."""
        done = int(metrics["epoch"]) + 1
        self.seconds.append(float(metrics["seconds"]))
        left = (self.total - done) * sum(self.seconds) / len(self.seconds)
        tail = f"about {_duration(left)} left" if done < self.total else "done"
        return (
            f"epoch {done}/{self.total}  loss {metrics['train_loss']:.4f}  "
            f"{_label(self.monitor)} {metrics[self.monitor]:.4f}  {metrics['seconds']:.1f} s  {tail}"
        )

    def on_epoch_end(self, metrics: dict[str, Any]) -> None:
        print(self.line(metrics), file=self.stream or sys.stdout, flush=True)
