"""Explanation pictures: honest colour scales, outlines where the nodule is, the trust text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nodulekit.explain.faithfulness import DeletionResult
from nodulekit.explain.sanity import STATUS_PASSED, STATUS_UNCHECKED, SanityReport
from nodulekit.viz.explain import (
    OUTLINE_COLOR,
    colorbar_label,
    deletion_figure,
    explain_figure,
    explain_rgb,
    map_scale,
    montage_figure,
    outline_circle,
    plane_of,
    sanity_figure,
)


@pytest.fixture
def candidate():
    ct = np.full((12, 12, 12), -850.0, np.float32)
    grid = np.indices(ct.shape).transpose(1, 2, 3, 0)
    ball = np.linalg.norm(grid - np.array([5.0, 6.0, 7.0]), axis=-1) <= 2.5
    ct[ball] = 40.0
    amap = np.zeros_like(ct)
    amap[5, 6, 7] = 2.0
    amap[5, 0, 0] = -1.0
    return ct, amap


def test_scales_are_zero_to_max_or_symmetric_about_zero():
    assert map_scale(np.array([0.0, 0.5, 2.0]), False) == (0.0, 2.0)
    assert map_scale(np.array([-3.0, 1.0]), True) == (-3.0, 3.0)
    assert map_scale(np.zeros(4), True) == (-1.0, 1.0)  # an empty map still has a scale
    assert "0 (white) = no effect" in colorbar_label(True)
    assert "0 (dark) = no attribution" in colorbar_label(False)


def test_planes_put_superior_at_the_top():
    volume = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert plane_of(volume, "axial", 1).tolist() == volume[1].tolist()
    assert plane_of(volume, "coronal", 0)[0].tolist() == volume[1, 0].tolist()
    assert plane_of(volume, "sagittal", 2).shape == (2, 3)
    with pytest.raises(ValueError, match="plane must be one of"):
        plane_of(volume, "oblique", 0)


def test_a_sphere_cut_off_centre_is_a_smaller_circle():
    full = outline_circle("axial", 5, (12, 12, 12), (5.0, 6.0, 7.0), (3.0, 3.0, 3.0))
    assert full == (6.0, 7.0, 3.0, 3.0)
    row, col, r_row, _ = outline_circle("coronal", 6, (12, 12, 12), (5.0, 4.2, 7.0), (3, 3, 3))
    assert (row, col) == (6.0, 7.0) and r_row == pytest.approx(3 * np.sqrt(1 - 0.6**2))
    assert outline_circle("sagittal", 11, (12, 12, 12), (5.0, 6.0, 7.0), (3, 3, 3)) is None


def test_rgb_blends_only_where_the_map_is_not_zero(candidate):
    ct, amap = candidate
    rgb = explain_rgb(ct, amap, signed=True, index_zyx=(5, 6, 7), zoom=1, gap=2, opacity=1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (12, 12 * 3 + 4, 3)
    axial = rgb[:, :12].astype(int)
    grey = axial[0, 5]
    assert grey[0] == grey[1] == grey[2]  # zero attribution: the CT untouched
    assert axial[6, 7, 0] > axial[6, 7, 2] + 50  # +2 at full opacity: red
    assert axial[0, 0, 2] > axial[0, 0, 0]  # -1: blue
    see_through = explain_rgb(ct, amap, signed=True, zoom=1, opacity=0.0)
    assert (see_through[..., 0] == see_through[..., 2]).all()


def test_rgb_outlines_the_nodule_and_follows_it(candidate):
    ct, amap = candidate
    plain = explain_rgb(ct, amap, signed=False, zoom=4)
    outlined = explain_rgb(
        ct, amap, signed=False, zoom=4, nodule_center_zyx_vox=(5, 6, 7), nodule_diameter_mm=5.0
    )
    green = np.all(outlined == OUTLINE_COLOR, axis=-1)
    assert green.sum() > 50 and not np.all(plain == OUTLINE_COLOR, axis=-1).any()
    with pytest.raises(ValueError, match=r"the map has shape \(3, 3, 3\)"):
        explain_rgb(ct, np.zeros((3, 3, 3)), signed=False)
    with pytest.raises(IndexError, match="index_zyx"):
        explain_rgb(ct, amap, signed=False, index_zyx=(0, 0, 40))


def test_figure_has_three_planes_a_diverging_bar_and_the_trust_text(candidate):
    ct, amap = candidate
    fig = explain_figure(
        ct, amap, signed=True, method="integrated_gradients", trust=STATUS_PASSED,
        nodule_center_zyx_vox=(5, 6, 7), nodule_diameter_mm=5.0, probability=0.9,
    )  # fmt: skip
    planes, bar = fig.axes[:3], fig.axes[3]
    assert [ax.get_title() for ax in planes] == [
        "axial (slice 5)", "coronal (slice 6)", "sagittal (slice 7)",
    ]  # fmt: skip
    overlay = planes[0].images[1]
    assert overlay.get_cmap().name == "RdBu_r" and overlay.get_clim() == (-2.0, 2.0)
    assert "red raises" in bar.get_ylabel()
    assert all(len(ax.patches) == 1 for ax in planes)  # the nodule's outline in each plane
    assert STATUS_PASSED in [t.get_text() for t in fig.texts]
    unsigned = explain_figure(ct, np.abs(amap), signed=False, method="gradcam")
    assert unsigned.axes[0].images[1].get_clim() == (0.0, 2.0)
    assert STATUS_UNCHECKED in [t.get_text() for t in unsigned.texts]


def test_montage_is_candidates_by_methods_with_each_status(candidate):
    ct, amap = candidate
    maps = {
        "gradcam": (np.stack([np.abs(amap)] * 2), False),
        "occlusion": (np.stack([amap] * 2), True),
    }
    fig = montage_figure([ct, ct], maps, trust={"gradcam": STATUS_PASSED}, labels=["a", "b"])
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title() == "gradcam\nSanity check passed"
    assert fig.axes[1].get_title() == "occlusion\nNot checked"
    assert fig.axes[0].get_ylabel() == "a"


def test_sanity_and_deletion_figures_draw_each_method():
    table = pd.DataFrame(
        {"step": [0, 1, 2], "randomised": ["(none)", "head", "blocks.0"],
         "spearman_mean": [1.0, 0.4, 0.1]}
    )  # fmt: skip
    report = SanityReport("gradcam", table, 0.1, 0.5, True, STATUS_PASSED)
    fig = sanity_figure([report])
    assert [line.get_label() for line in fig.axes[0].lines] == ["gradcam: passed", "threshold"]
    curve = pd.DataFrame(
        {"fraction_deleted": [0, 1, 0, 1], "order": ["attribution"] * 2 + ["random"] * 2,
         "probability_mean": [0.9, 0.1, 0.9, 0.1], "probability_sem": [0.0] * 4}
    )  # fmt: skip
    result = DeletionResult("saliency", curve, pd.DataFrame(), 0.2, 0.5)
    labels = [line.get_label() for line in deletion_figure([result]).axes[0].lines]
    assert labels == ["saliency (AUC 0.200)", "random order (AUC 0.500)"]
