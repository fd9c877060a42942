"""`LoopState`: what the training loop knows between epochs, saved in every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nodulekit.train.metrics import is_better

#: why a run ended: its epochs ran out, early stopping, a callback asked (e.g. `StopAfter`),
#: or Ctrl-C. Only the first two score the test split.
STOP_REASONS = ("completed", "early_stopping", "stopped", "interrupted")


@dataclass
class LoopState:
    """The loop's progress: the next epoch, the global step, the best score so far.

    ``epoch`` is the 0-based index of the epoch being run (or the next one); ``history``
    holds one metrics row per finished epoch. Saved in checkpoints as ``extra["loop"]``
    (`to_checkpoint`), with the history in the checkpoint's own ``history`` key.
    """

    monitor: str = "val_auc"
    epoch: int = 0
    step: int = 0
    best_score: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    improved: bool = False
    stop_reason: str = "completed"
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, row: dict[str, Any]) -> bool:
        """Add an epoch's row; update the best score; return whether it improved."""
        self.history.append(row)
        self.improved = is_better(row[self.monitor], self.best_score)
        if self.improved:
            self.best_score, self.best_epoch, self.bad_epochs = row[self.monitor], row["epoch"], 0
        else:
            self.bad_epochs += 1
        return self.improved

    @property
    def tests(self) -> bool:
        """Whether the run ended in a way that scores the test split."""
        return self.stop_reason in ("completed", "early_stopping")

    def to_checkpoint(self) -> dict[str, Any]:
        """The scalar part, as stored in a checkpoint's ``extra["loop"]``."""
        return {"best_auc": self.best_score, "best_epoch": self.best_epoch, "bad": self.bad_epochs}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], steps_per_epoch: int) -> LoopState:
        """The state after the checkpoint's epoch: resume runs the next one."""
        loop = checkpoint.get("extra", {}).get("loop", {})
        epoch = int(checkpoint["epoch"]) + 1
        return cls(
            epoch=epoch,
            step=epoch * steps_per_epoch,
            best_score=loop.get("best_auc"),
            best_epoch=loop.get("best_epoch"),
            bad_epochs=int(loop.get("bad", 0)),
            history=[dict(row) for row in checkpoint.get("history", [])],
        )
