"""The loop asks its task for the loss, the metrics and the monitored column."""

from __future__ import annotations

import torch

from nodulekit.train.loop import fit
from nodulekit.train.task import BinaryClassification
from tests.train.test_loop import _config, _datasets


class LowerLossIsBetter(BinaryClassification):
    """Another task: a weighted loss, an extra metric, and "better" = the higher -val_loss."""

    monitor = "val_neg_loss"

    def __init__(self) -> None:
        self.batches = 0

    def loss(self, output, target):
        self.batches += 1
        weight = torch.where(target > 0, 2.0, 1.0)
        return torch.nn.functional.binary_cross_entropy_with_logits(
            output.float(), target.float(), weight=weight
        )

    def evaluate(self, model, dataset, **options):
        metrics = super().evaluate(model, dataset, **options)
        return {**metrics, "neg_loss": -metrics["loss"]}


def test_a_task_brings_its_loss_metrics_and_monitor(fake_cache, tmp_path):
    task = LowerLossIsBetter()
    result = fit(_config(tmp_path, epochs=3), *_datasets(fake_cache), task=task)
    assert task.batches == 3 * 6  # 96 samples per epoch in batches of 16
    frame = result.metrics
    assert (frame["val_neg_loss"] == -frame["val_loss"]).all()
    assert result.best_epoch == int(frame["val_loss"].idxmin())
