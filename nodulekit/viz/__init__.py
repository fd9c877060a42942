"""matplotlib figures and overlays: pure functions, data in, Figure out."""

# evaluation figures (nodulekit.viz.evaluate), kept as a block of their own
from nodulekit.viz.evaluate import (  # noqa: F401 - re-exported
    calibration_figure,
    error_gallery_figure,
    froc_figure,
    roc_pr_figure,
    save_evaluation_figures,
)
