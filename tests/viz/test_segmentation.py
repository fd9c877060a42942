"""Segmentation pictures: contours in their colours, readers apart, recall curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nodulekit.viz.segmentation import (
    ANNOTATION_COLOUR,
    PREDICTION_COLOUR,
    READER_COLOURS,
    candidate_recall_figure,
    contour,
    mask_overlay_rgb,
    reader_contours_figure,
    segmentation_figure,
)


def test_contour_is_the_border_of_the_mask():
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    edge = contour(mask)
    assert edge.sum() == 12  # 16 pixels, 4 inside
    assert not edge[2:4, 2:4].any()


def test_overlay_draws_each_contour_in_its_colour_over_grey():
    image = np.full((8, 8), -1000.0)
    truth = np.zeros((8, 8), bool)
    truth[1:4, 1:4] = True
    predicted = np.zeros((8, 8), bool)
    predicted[5:7, 5:7] = True
    rgb = mask_overlay_rgb(image, [(truth, ANNOTATION_COLOUR), (predicted, PREDICTION_COLOUR)])
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    assert tuple(rgb[1, 1]) == ANNOTATION_COLOUR and tuple(rgb[2, 2]) == (0, 0, 0)
    assert tuple(rgb[6, 6]) == PREDICTION_COLOUR and tuple(rgb[0, 7]) == (0, 0, 0)
    zoomed = mask_overlay_rgb(image, [(truth, ANNOTATION_COLOUR)], zoom=4)
    assert zoomed.shape == (32, 32, 3) and tuple(zoomed[4, 4]) == ANNOTATION_COLOUR
    with pytest.raises(ValueError, match="differ in shape"):
        mask_overlay_rgb(image, [(np.zeros((4, 4), bool), ANNOTATION_COLOUR)])


def test_figures_have_their_panels_and_legends():
    volume = np.full((5, 40, 40), -800.0)
    truth = np.zeros(volume.shape, bool)
    truth[1:4, 15:25, 15:25] = True
    probability = truth * 0.9
    fig = segmentation_figure(volume, truth=truth, probability=probability, size_px=32)
    assert len(fig.axes) == 4  # slice, contours, probability and its colour bar
    assert fig.axes[0].get_title() == "slice 2"
    other = truth.copy()
    other[:, 15:18] = False
    fig = reader_contours_figure(volume, {1: truth, 3: other}, consensus=truth & other)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["reader 1", "reader 3", "consensus"]
    assert len(READER_COLOURS) == 4
    table = pd.DataFrame(
        {"source": ["blob", "blob", "unet", "unet"], "candidates_per_scan": [1, 10, 1, 3],
         "recall": [0.2, 0.9, 0.7, 0.8], "nodules": [10] * 4}
    )  # fmt: skip
    fig = candidate_recall_figure(table)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["blob", "unet"]
    assert fig.axes[0].get_xscale() == "log"
