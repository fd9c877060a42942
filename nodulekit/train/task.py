"""What the loop trains for: the loss of a batch and the metrics of a split.

The loop knows nothing of nodules: it asks a *task* for the loss of each batch
(``task.loss(output, target)``), for the metrics of a split (``task.evaluate(...)``, a dict
whose ``"loss"`` and other keys become ``val_*`` columns), for the column that says "better"
(``task.monitor``), and for the operating point the test split is scored at
(``task.operating_point(best_row)``). `BinaryClassification` is the nodule / not-nodule task
of LUNA16's false-positive reduction; another task (e.g. segmentation with a Dice loss)
provides the same four members.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from nodulekit.train import distributed as ddp
from nodulekit.train.layout import to_input
from nodulekit.train.metrics import binary_metrics, recall_by_size


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, loader: DataLoader, device: torch.device, amp: torch.dtype | None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every batch of ``loader`` (model in eval mode)."""
    model.eval()
    logits, labels = [], []
    for x, y, _meta in loader:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(to_input(x, device))
        logits.append(out.float().cpu().numpy())
        labels.append(np.asarray(y))
    if not logits:
        return np.empty(0, np.float32), np.empty(0, np.int64)
    return np.concatenate(logits), np.concatenate(labels)


def gather_predictions(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int,
    amp: torch.dtype | None = None,
    info: ddp.DistInfo | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every sample of ``dataset`` in dataset order.

    Each rank predicts every ``world_size``-th sample; every rank gets all of them.
    """
    info = info or ddp.DistInfo()
    rows = np.arange(info.rank, len(dataset), info.world_size)
    loader = DataLoader(Subset(dataset, rows.tolist()), batch_size=batch_size, shuffle=False)
    logits, labels = predict_logits(getattr(model, "module", model), loader, device, amp)
    parts = ddp.all_gather_objects(info, (logits, labels, rows))
    order = np.argsort(np.concatenate([p[2] for p in parts]), kind="stable")
    return (
        np.concatenate([p[0] for p in parts])[order],
        np.concatenate([p[1] for p in parts])[order],
    )


class Task(Protocol):
    """What `nodulekit.train.fit` asks of a task (see the module docstring)."""

    #: the ``metrics.csv`` column whose rise means "better" (``best.pt``, early stopping)
    monitor: str

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch (a scalar tensor)."""
        ...

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: Dataset,
        *,
        device: torch.device,
        batch_size: int,
        amp: torch.dtype | None = None,
        info: ddp.DistInfo | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """``{"loss": ..., metric: value}`` of a split; ``thresholds`` for the test split."""
        ...

    def operating_point(self, best_row: dict[str, Any] | None) -> dict[str, float]:
        """The operating point chosen on validation, from the best epoch's metrics row."""
        ...


class BinaryClassification:
    """Nodule (1) or not (0) from one logit per crop: BCE-with-logits, `binary_metrics`."""

    monitor = "val_auc"

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy of logits ``output`` against 0/1 ``target``."""
        return torch.nn.functional.binary_cross_entropy_with_logits(output.float(), target.float())

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: Dataset,
        *,
        device: torch.device,
        batch_size: int,
        amp: torch.dtype | None = None,
        info: ddp.DistInfo | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """Loss and `binary_metrics` of ``dataset``; with ``thresholds`` (the validation's
        operating points) also the recall per nodule size band when diameters are known."""
        logits, labels = gather_predictions(
            model, dataset, device=device, batch_size=batch_size, amp=amp, info=info
        )
        if logits.size == 0:
            return {"loss": float("nan"), **binary_metrics(labels, logits, thresholds=thresholds)}
        t_logits = torch.from_numpy(logits).double()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            t_logits, torch.from_numpy(labels).double()
        )
        probabilities = torch.sigmoid(t_logits).numpy()
        out = {"loss": float(loss), **binary_metrics(labels, probabilities, thresholds=thresholds)}
        diameters = getattr(dataset, "diameters_mm", None)
        if thresholds is not None and diameters is not None:
            out.update(recall_by_size(labels, probabilities, diameters, out["threshold"]))
        return out

    def operating_point(self, best_row: dict[str, Any] | None) -> dict[str, float]:
        """The thresholds chosen on validation at the best epoch (NaN when unknown)."""
        row = best_row or {}
        return {
            "threshold": float(row.get("val_threshold", float("nan"))),
            "threshold_p85": float(row.get("val_threshold_p85", float("nan"))),
        }


def evaluate_split(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int,
    amp: torch.dtype | None = None,
    info: ddp.DistInfo | None = None,
    thresholds: dict[str, float] | None = None,
) -> dict[str, float]:
    """`BinaryClassification.evaluate`: loss and metrics; each rank scores a shard."""
    return BinaryClassification().evaluate(
        model,
        dataset,
        device=device,
        batch_size=batch_size,
        amp=amp,
        info=info,
        thresholds=thresholds,
    )
