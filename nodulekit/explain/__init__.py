"""Explanations of the classifiers: attribution maps (Captum), and whether to trust them.

- `attribute` (``"gradcam"``, ``"guided_gradcam"``, ``"integrated_gradients"``,
  ``"saliency"``, ``"smoothgrad"``, ``"occlusion"``) returns an `Attribution`;
- `sanity_check`: Adebayo et al. (2018) cascading randomisation, with a verdict in words;
- `nodule_agreement`: pointing game and the share of positive attribution inside the nodule;
- `deletion_curve`: faithfulness, most-attributed voxels replaced with air first vs random;
- `data_randomisation_check`: the same training on shuffled labels (where training is quick);
- `method_scorecard`: all of the above for several methods, one table;
- `CandidateExplanations`: candidates, crops and maps computed once (the explorer's logic).

Names load on first use (torch and Captum are imported only then):

>>> from nodulekit.explain import attribute, available_methods
>>> available_methods()
['gradcam', 'guided_gradcam', 'integrated_gradients', 'saliency', 'smoothgrad', 'occlusion']
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "attribute": "nodulekit.explain.methods",
    "Attribution": "nodulekit.explain.methods",
    "METHODS": "nodulekit.explain.methods",
    "available_methods": "nodulekit.explain.methods",
    "air_value": "nodulekit.explain.methods",
    "sanity_check": "nodulekit.explain.sanity",
    "SanityReport": "nodulekit.explain.sanity",
    "trust_status": "nodulekit.explain.sanity",
    "nodule_agreement": "nodulekit.explain.agreement",
    "deletion_curve": "nodulekit.explain.faithfulness",
    "DeletionResult": "nodulekit.explain.faithfulness",
    "summarise_agreement": "nodulekit.explain.agreement",
    "trust_table": "nodulekit.explain.sanity",
    "data_randomisation_check": "nodulekit.explain.sanity",
    "method_scorecard": "nodulekit.explain.scorecard",
    "randomisation_blocks": "nodulekit.explain.sanity",
    "CandidateExplanations": "nodulekit.explain.explorer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nodulekit.explain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
