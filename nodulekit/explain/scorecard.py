"""One table that compares methods on the same crops: sanity, agreement and faithfulness."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nodulekit.explain.agreement import nodule_agreement, summarise_agreement
from nodulekit.explain.faithfulness import deletion_curve
from nodulekit.explain.methods import attribute
from nodulekit.explain.sanity import sanity_check


def method_scorecard(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    diameters_mm: Sequence[float] | np.ndarray,
    *,
    methods: Sequence[str] = ("gradcam", "integrated_gradients", "saliency"),
    voxel_mm: float | Sequence[float] | None = None,
    centers_zyx_vox: np.ndarray | None = None,
    method_options: Mapping[str, Mapping[str, Any]] | None = None,
    deletion_steps: int = 20,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each method's sanity verdict, pointing game, positive share inside and deletion AUC.

    Parameters
    ----------
    model : nn.Module
    x : (N, 1, D, H, W)
        Crops of true nodules (centred on them unless ``centers_zyx_vox`` says otherwise).
    diameters_mm : N floats
        Their annotated diameters.
    voxel_mm : float or 3 floats (z, y, x)
        The crops' voxel size (training's default crops: 32 / 24 = 1.33 mm).
    method_options : mapping, optional
        `attribute` options per method.

    Returns
    -------
    (DataFrame, dict)
        One row per method: ``method, sanity_passed, sanity_correlation, pointing_game,
        positive_share_inside, chance, auc_attribution, auc_random, auc_gap, status``; and the
        details per method (``{"sanity": SanityReport, "deletion": DeletionResult}``) for
        `nodulekit.viz.explain.sanity_figure` and `deletion_figure`.
    """
    options = {k: dict(v) for k, v in (method_options or {}).items()}
    rows, details = [], {}
    for method in methods:
        kwargs = options.get(method, {})
        report = sanity_check(model, x, method, **kwargs)
        attribution = attribute(model, x, method, **kwargs)
        agreement = summarise_agreement(
            nodule_agreement(
                attribution, diameters_mm, voxel_mm=voxel_mm, centers_zyx_vox=centers_zyx_vox
            ),
            method=method,
        ).iloc[0]
        deletion = deletion_curve(model, x, attribution, steps=deletion_steps)
        details[method] = {"sanity": report, "deletion": deletion}
        rows.append(
            {
                "method": method,
                "sanity_passed": report.passed,
                "sanity_correlation": report.final_correlation,
                "pointing_game": agreement["pointing_game"],
                "positive_share_inside": agreement["positive_share_inside"],
                "chance": agreement["chance"],
                "auc_attribution": deletion.auc_attribution,
                "auc_random": deletion.auc_random,
                "auc_gap": deletion.auc_gap,
                "status": report.status,
            }
        )
    return pd.DataFrame(rows), details
