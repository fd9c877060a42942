"""Do the maps explain *this* model? Cascading randomisation after Adebayo et al. (2018).

Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim, "Sanity Checks for Saliency Maps",
NeurIPS 2018. The model's layers are re-initialised one block at a time **from the head
down** (a copy; the model itself is untouched), and after each step the maps of the same crops
are computed again. A method that explains what the model learned gives maps that change as
the weights are scrambled; a method whose maps survive (high rank correlation with the
original maps even when every layer is random) shows the image, not the model.

Similarity is Spearman's rank correlation between the original and the randomised map of each
crop, over all voxels; signed maps are compared by their absolute value (as in the paper),
so a flipped sign does not count as a change.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nodulekit.explain.methods import attribute, resolve_layer

#: the default verdict threshold on the rank correlation after full randomisation
THRESHOLD = 0.5

STATUS_PASSED = (
    "Sanity check passed: this map changes when the model is scrambled, so it depends on "
    "what the model learned."
)
STATUS_FAILED = (
    "Caution: this map hardly changes when the model is scrambled, so it may show the image's "
    "edges and contrast rather than what the model learned. Do not read it as the model's "
    "reasoning."
)
STATUS_UNCHECKED = (
    "Not checked: nobody has yet tested whether this map changes when the model is scrambled "
    "(run nodulekit.explain.sanity_check)."
)


@dataclass(frozen=True, eq=False)
class SanityReport:
    """The outcome of `sanity_check` for one method.

    Attributes
    ----------
    method : str
    table : DataFrame
        One row per step: ``step`` (0 = the trained model), ``randomised`` (the block
        re-initialised at this step), ``layers_randomised`` (how many so far),
        ``spearman_mean``, ``spearman_min``, ``spearman_max`` over the crops, ``n_crops``.
    final_correlation : float
        Mean rank correlation once every block is random.
    threshold : float
        The method fails when ``final_correlation >= threshold``.
    passed : bool
    status : str
        The verdict in plain words, for a figure, a widget or a report.
    """

    method: str
    table: pd.DataFrame
    final_correlation: float
    threshold: float
    passed: bool
    status: str


def trust_status(report: SanityReport | None) -> str:
    """The sentence shown beside a map: the report's status, or "not checked" for ``None``."""
    return STATUS_UNCHECKED if report is None else report.status


def randomisation_blocks(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The model's parameterised blocks from the head down, as ``(name, modules)``.

    A block is a top-level child (``head``, ``stem``, ``input_norm``) or, for a top-level
    ``Sequential``/``ModuleList`` of compound blocks (``blocks``, ``stages``), each of them
    (``blocks.3``, ``blocks.2``, ...). Order: the reverse of registration (forward) order.
    """
    blocks: list[tuple[str, list[nn.Module]]] = []
    for name, child in model.named_children():
        parts = list(child.named_children())
        compound = isinstance(child, (nn.Sequential, nn.ModuleList)) and any(
            list(sub.children()) for _, sub in parts
        )
        units = [(f"{name}.{n}", sub) for n, sub in parts] if compound else [(name, child)]
        for unit_name, unit in units:
            modules = [m for m in unit.modules() if list(m.parameters(recurse=False))]
            if modules:
                blocks.append((unit_name, modules))
    return blocks[::-1]


def _reinitialise(modules: Sequence[nn.Module], generator: torch.Generator) -> None:
    """Fresh random weights (and BatchNorm statistics reset), as at initialisation."""
    for module in modules:
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
        with torch.no_grad():
            for name, param in module.named_parameters(recurse=False):
                if param.ndim >= 2:
                    fan_in = param[0].numel()
                    std = (2.0 / fan_in) ** 0.5
                    param.copy_(torch.randn(param.shape, generator=generator) * std)
                elif name == "weight" and isinstance(module, nn.modules.batchnorm._BatchNorm):
                    param.copy_(torch.rand(param.shape, generator=generator) * 0.5 + 0.75)
                else:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation of each pair of maps.

    A map that became constant (e.g. all zero) has changed: 0. Both constant: NaN.
    """
    from scipy.stats import spearmanr

    out = np.empty(len(a))
    for i in range(len(a)):
        first, second = a[i].ravel(), b[i].ravel()
        flat = (np.ptp(first) == 0, np.ptp(second) == 0)
        if all(flat):
            out[i] = np.nan
        elif any(flat):
            out[i] = 0.0
        else:
            out[i] = spearmanr(first, second).statistic
    return out


def sanity_check(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    method: str = "gradcam",
    *,
    threshold: float = THRESHOLD,
    seed: int = 0,
    target_layer: str | None = None,
    **options: Any,
) -> SanityReport:
    """Cascading model-parameter randomisation test of one method on a batch of crops.

    Parameters
    ----------
    model : nn.Module
        The trained classifier; a copy is randomised, the model itself is left as it was.
    x : (N, 1, D, H, W)
        Crops to explain (a few true nodules and a few negatives suffice; 8 to 32 crops).
    method : str
        A method of `nodulekit.explain.available_methods`.
    threshold : float
        The verdict: the method is flagged (``passed=False``) when the mean Spearman rank
        correlation between the original maps and the maps of the **fully randomised** model
        is ``>= threshold`` (default 0.5: more than half the voxel ranking survives).
    seed : int
        Seeds the random weights.
    target_layer : str, optional
        The Grad-CAM layer by name (the same name is used in each randomised copy).
    **options
        Passed to `attribute` (``n_steps``, ``window_vox``, ...).

    Returns
    -------
    SanityReport
        The per-step table, the verdict and its status sentence.

    Cost: ``1 + number of blocks`` attributions of the batch (7 for the default CNN).
    """
    if target_layer is None and method in ("gradcam", "guided_gradcam"):
        _, target_layer = resolve_layer(model, None)
    original = attribute(model, x, method, target_layer=target_layer, **options)
    reference = np.abs(original.maps) if original.signed else original.maps
    scrambled = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(int(seed))
    rows = [_row(0, "(none: the trained model)", 0, np.ones(len(reference)))]
    for step, (name, modules) in enumerate(randomisation_blocks(scrambled), start=1):
        _reinitialise(modules, generator)
        maps = attribute(scrambled, x, method, target_layer=target_layer, **options).maps
        maps = np.abs(maps) if original.signed else maps
        rows.append(_row(step, name, step, _spearman(reference, maps)))
    table = pd.DataFrame(rows)
    final = float(table["spearman_mean"].iloc[-1])
    passed = bool(np.isfinite(final) and final < threshold)
    return SanityReport(
        method=method,
        table=table,
        final_correlation=final,
        threshold=float(threshold),
        passed=passed,
        status=STATUS_PASSED if passed else STATUS_FAILED,
    )


def _row(step: int, name: str, count: int, values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    return {
        "step": step,
        "randomised": name,
        "layers_randomised": count,
        "spearman_mean": float(finite.mean()) if finite.size else float("nan"),
        "spearman_min": float(finite.min()) if finite.size else float("nan"),
        "spearman_max": float(finite.max()) if finite.size else float("nan"),
        "n_crops": int(values.size),
    }


def trust_table(reports: Sequence[SanityReport]) -> pd.DataFrame:
    """One row per method: ``method, final_correlation, threshold, passed, status``."""
    return pd.DataFrame(
        [
            {
                "method": r.method,
                "final_correlation": r.final_correlation,
                "threshold": r.threshold,
                "passed": r.passed,
                "status": r.status,
            }
            for r in reports
        ]
    )


def data_randomisation_check(
    train: Callable[[torch.Tensor, torch.Tensor], nn.Module],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x: torch.Tensor,
    method: str = "gradcam",
    *,
    threshold: float = THRESHOLD,
    seed: int = 0,
    **options: Any,
) -> pd.DataFrame:
    """Adebayo et al.'s data randomisation test: the same training on shuffled labels.

    ``train(x_train, labels) -> model`` is called twice, with the true labels and with a
    seeded permutation of them; a model trained on shuffled labels has learned nothing about
    nodules, so a method that explains what the model learned must give it different maps.
    Affordable only where training is quick (a small model on a few hundred crops).

    Returns
    -------
    DataFrame
        One row: ``method, spearman_mean, spearman_min, spearman_max, n_crops, threshold,
        passed, status`` (``passed`` when the mean rank correlation is below ``threshold``).
    """
    generator = torch.Generator().manual_seed(int(seed))
    shuffled = y_train[torch.randperm(len(y_train), generator=generator)]
    maps = []
    for labels in (y_train, shuffled):
        result = attribute(train(x_train, labels), x, method, **options)
        maps.append(np.abs(result.maps) if result.signed else result.maps)
    row = _row(1, "labels shuffled", 0, _spearman(maps[0], maps[1]))
    passed = bool(np.isfinite(row["spearman_mean"]) and row["spearman_mean"] < threshold)
    return pd.DataFrame(
        [
            {
                "method": method,
                **{k: row[k] for k in ("spearman_mean", "spearman_min", "spearman_max")},
                "n_crops": row["n_crops"],
                "threshold": float(threshold),
                "passed": passed,
                "status": (
                    "This map changes when the model is trained on shuffled labels: it depends "
                    "on what the model learned from the data."
                    if passed
                    else "Caution: this map looks the same for a model trained on shuffled "
                    "labels, which learned nothing about nodules."
                ),
            }
        ]
    )
