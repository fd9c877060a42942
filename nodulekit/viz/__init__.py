"""Pictures: pure functions, data in, picture out; no state, no widgets.

What a function returns is in its name:

- ``*_figure``: a matplotlib ``Figure`` (not registered with pyplot: nothing global changes);
- ``*_png``: PNG bytes (for an image widget or an HTML report);
- ``*_html``: an HTML string (no scripts, no external assets);
- every other picture (``*_rgb``, ``render_*``, ``draw_*``): a ``uint8`` RGB array
  ``(H, W, 3)``; where a function takes ``indexed=True`` it returns a 2D palette image instead
  (`PALETTE`), the fast path that `to_png` encodes. ``draw_*`` return a drawn copy.

Names are imported on first use (module ``__getattr__``), so ``import nodulekit.viz`` imports
neither matplotlib nor Pillow nor SimpleITK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nodulekit._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - what editors and type checkers see
    from nodulekit.viz.dataset import (
        diameter_histogram_figure,
        diameter_histogram_png,
        diameter_histogram_rgb,
        summary_html,
    )
    from nodulekit.viz.evaluate import (
        calibration_figure,
        error_gallery_figure,
        froc_figure,
        roc_pr_figure,
        save_evaluation_figures,
    )
    from nodulekit.viz.explain import (
        colorbar_rgb,
        deletion_figure,
        explain_figure,
        explain_rgb,
        montage_figure,
        overlay_rgb,
        sanity_figure,
    )
    from nodulekit.viz.preprocess import (
        crop_box_on_slice,
        crop_planes_figure,
        crop_planes_image,
        matching_slice,
        render_preview_slice,
    )
    from nodulekit.viz.segmentation import (
        candidate_recall_figure,
        mask_overlay_rgb,
        reader_contours_figure,
        segmentation_figure,
    )
    from nodulekit.viz.slices import (
        PALETTE,
        PLANE_AXIS,
        PLANES,
        draw_circles,
        draw_crosshair,
        nodule_circles_on_slice,
        plane_png,
        plane_point,
        plane_rgb,
        plane_size,
        render_slice,
        slice_figure,
        to_png,
        window_lut,
    )
    from nodulekit.viz.training import figure_png, training_curves_figure
    from nodulekit.viz.volume import VolumeModel, prepare_volume, render_volume

#: public name -> module that defines it (the same names as ``__all__``, a test checks)
_LAZY = {
    **dict.fromkeys(
        ["diameter_histogram_figure", "diameter_histogram_png", "diameter_histogram_rgb",
         "summary_html"],
        "nodulekit.viz.dataset",
    ),
    **dict.fromkeys(
        ["crop_box_on_slice", "crop_planes_figure", "crop_planes_image", "matching_slice",
         "render_preview_slice"],
        "nodulekit.viz.preprocess",
    ),
    **dict.fromkeys(
        ["PALETTE", "PLANE_AXIS", "PLANES", "draw_circles", "draw_crosshair",
         "nodule_circles_on_slice", "plane_png", "plane_point", "plane_rgb", "plane_size",
         "render_slice", "slice_figure", "to_png", "window_lut"],
        "nodulekit.viz.slices",
    ),
    **dict.fromkeys(
        ["calibration_figure", "error_gallery_figure", "froc_figure", "roc_pr_figure",
         "save_evaluation_figures"],
        "nodulekit.viz.evaluate",
    ),
    **dict.fromkeys(
        ["colorbar_rgb", "deletion_figure", "explain_figure", "explain_rgb", "montage_figure",
         "overlay_rgb", "sanity_figure"],
        "nodulekit.viz.explain",
    ),
    **dict.fromkeys(
        ["candidate_recall_figure", "mask_overlay_rgb", "reader_contours_figure",
         "segmentation_figure"],
        "nodulekit.viz.segmentation",
    ),
    **dict.fromkeys(["figure_png", "training_curves_figure"], "nodulekit.viz.training"),
    **dict.fromkeys(["VolumeModel", "prepare_volume", "render_volume"], "nodulekit.viz.volume"),
}  # fmt: skip

__all__ = [
    "PALETTE",
    "PLANES",
    "PLANE_AXIS",
    "VolumeModel",
    "calibration_figure",
    "candidate_recall_figure",
    "colorbar_rgb",
    "crop_box_on_slice",
    "crop_planes_figure",
    "crop_planes_image",
    "deletion_figure",
    "diameter_histogram_figure",
    "diameter_histogram_png",
    "diameter_histogram_rgb",
    "draw_circles",
    "draw_crosshair",
    "error_gallery_figure",
    "explain_figure",
    "explain_rgb",
    "figure_png",
    "froc_figure",
    "mask_overlay_rgb",
    "matching_slice",
    "montage_figure",
    "nodule_circles_on_slice",
    "overlay_rgb",
    "plane_png",
    "plane_point",
    "plane_rgb",
    "plane_size",
    "prepare_volume",
    "reader_contours_figure",
    "render_preview_slice",
    "render_slice",
    "render_volume",
    "roc_pr_figure",
    "sanity_figure",
    "save_evaluation_figures",
    "segmentation_figure",
    "slice_figure",
    "summary_html",
    "to_png",
    "training_curves_figure",
    "window_lut",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
