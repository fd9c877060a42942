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

from typing import TYPE_CHECKING

from nodulekit._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - what editors and type checkers see
    from nodulekit.explain.agreement import nodule_agreement, summarise_agreement
    from nodulekit.explain.explorer import CandidateExplanations
    from nodulekit.explain.faithfulness import DeletionResult, deletion_curve
    from nodulekit.explain.methods import (
        METHODS,
        Attribution,
        air_value,
        attribute,
        available_methods,
    )
    from nodulekit.explain.sanity import (
        SanityReport,
        data_randomisation_check,
        randomisation_blocks,
        sanity_check,
        trust_status,
        trust_table,
    )
    from nodulekit.explain.scorecard import method_scorecard

#: public name -> module that defines it (the same names as the block above, a test checks)
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

__all__ = [
    "METHODS",
    "Attribution",
    "CandidateExplanations",
    "DeletionResult",
    "SanityReport",
    "air_value",
    "attribute",
    "available_methods",
    "data_randomisation_check",
    "deletion_curve",
    "method_scorecard",
    "nodule_agreement",
    "randomisation_blocks",
    "sanity_check",
    "summarise_agreement",
    "trust_status",
    "trust_table",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
