"""Are the maps faithful to the model? The deletion curve (Petsiuk et al., RISE, 2018).

The voxels of each crop are replaced with air (-1000 HU, `air_value`) in the order of the
map, most attributed first, a fraction at a time, and the model's nodule probability is read
after each step. A map that points at what the model uses makes the probability fall fast: a
small area under the curve (AUC). The same deletion in a random order (seeded) is the yardstick;
``auc_gap = auc_random - auc_attribution`` is positive for a faithful map.

Meaningful for crops the model calls nodules (a probability to lose); for signed maps the
order is by value (evidence *for* a nodule first), for unsigned ones by magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from nodulekit.explain.methods import (
    Attribution,
    _check_batch,
    _device,
    air_value,
    explaining,
    model_dtype,
)


@dataclass(frozen=True, eq=False)
class DeletionResult:
    """The deletion curves and their areas.

    Attributes
    ----------
    method : str
    curve : DataFrame
        ``fraction_deleted, order ("attribution" | "random"), probability_mean,
        probability_sem`` (over the crops), long format for plotting.
    per_crop : DataFrame
        ``crop, auc_attribution, auc_random, auc_gap`` per crop.
    auc_attribution, auc_random : float
        Mean areas over the crops (probability x fraction deleted, 0 to 1).
    """

    method: str
    curve: pd.DataFrame
    per_crop: pd.DataFrame
    auc_attribution: float
    auc_random: float

    @property
    def auc_gap(self) -> float:
        """``auc_random - auc_attribution``: positive when the map beats a random order."""
        return self.auc_random - self.auc_attribution

    def summary(self) -> pd.DataFrame:
        """One row: ``method, auc_attribution, auc_random, auc_gap, n_crops``."""
        return pd.DataFrame(
            [
                {
                    "method": self.method,
                    "auc_attribution": self.auc_attribution,
                    "auc_random": self.auc_random,
                    "auc_gap": self.auc_gap,
                    "n_crops": len(self.per_crop),
                }
            ]
        )


def _probabilities(
    model: nn.Module, crop: torch.Tensor, order: np.ndarray, counts: np.ndarray, batch: int
) -> np.ndarray:
    """Probability after deleting the first ``counts[k]`` voxels of ``order``, for each k."""
    flat = crop.reshape(-1)
    rank = torch.empty(flat.numel(), dtype=torch.long, device=crop.device)
    rank[torch.as_tensor(order, device=crop.device)] = torch.arange(
        flat.numel(), device=crop.device
    )
    out = []
    for start in range(0, len(counts), batch):
        k = torch.as_tensor(counts[start : start + batch], device=crop.device)[:, None]
        deleted = rank[None, :] < k  # (b, V)
        images = torch.where(deleted, torch.tensor(air_value(), device=crop.device), flat[None])
        with torch.no_grad():
            logits = model(images.reshape(-1, 1, *crop.shape[-3:])).float()
        out.append(torch.sigmoid(logits).cpu().numpy())
    return np.concatenate(out)


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    attribution: Attribution,
    *,
    steps: int = 20,
    seed: int = 0,
    device: str | torch.device = "auto",
    batch_size: int = 32,
) -> DeletionResult:
    """Deletion curves of ``attribution``'s maps against a random order, and their areas.

    Parameters
    ----------
    model : nn.Module
        The classifier the maps explain (eval mode for the call, restored after).
    x : (N, 1, D, H, W)
        The crops the maps were computed on.
    attribution : Attribution
        Their maps (``attribution.maps`` has ``x``'s spatial shape).
    steps : int
        Fractions ``0, 1/steps, ..., 1`` of the voxels are deleted.
    seed : int
        Seeds the random order.

    Cost: ``2 * (steps + 1)`` forward passes per crop.
    """
    x = _check_batch(x, None).float()
    if attribution.maps.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(
            f"attribution maps have shape {attribution.maps.shape}, the crops "
            f"{(x.shape[0], *x.shape[2:])}; pass the Attribution computed on these crops"
        )
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, not {steps}")
    fractions = np.linspace(0.0, 1.0, steps + 1)
    n_voxels = int(np.prod(x.shape[2:]))
    counts = np.rint(fractions * n_voxels).astype(np.int64)
    rng = np.random.default_rng(seed)
    curves = {"attribution": [], "random": []}
    target = _device(model, device)
    with explaining(model, target):
        for i in range(x.shape[0]):
            crop = x[i, 0].to(target, model_dtype(model))
            ranked = np.argsort(-attribution.maps[i].ravel(), kind="stable")
            curves["attribution"].append(_probabilities(model, crop, ranked, counts, batch_size))
            random = rng.permutation(n_voxels)
            curves["random"].append(_probabilities(model, crop, random, counts, batch_size))
    rows = []
    for order, values in curves.items():
        probs = np.asarray(values)  # (N, steps + 1)
        sem = probs.std(axis=0, ddof=1) / np.sqrt(len(probs)) if len(probs) > 1 else 0 * probs[0]
        for k, fraction in enumerate(fractions):
            rows.append(
                {
                    "fraction_deleted": float(fraction),
                    "order": order,
                    "probability_mean": float(probs[:, k].mean()),
                    "probability_sem": float(sem[k]),
                }
            )
    auc = {o: np.trapezoid(np.asarray(v), fractions, axis=1) for o, v in curves.items()}
    per_crop = pd.DataFrame(
        {
            "crop": np.arange(x.shape[0]),
            "auc_attribution": auc["attribution"],
            "auc_random": auc["random"],
            "auc_gap": auc["random"] - auc["attribution"],
        }
    )
    return DeletionResult(
        method=attribution.method,
        curve=pd.DataFrame(rows),
        per_crop=per_crop,
        auc_attribution=float(auc["attribution"].mean()),
        auc_random=float(auc["random"].mean()),
    )
