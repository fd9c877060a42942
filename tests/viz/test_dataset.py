"""The diameter histogram and the summary box: counts by hand, no missing glyphs, one HTML box."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nodulekit.viz.dataset import (
    diameter_bins,
    diameter_histogram_figure,
    diameter_histogram_png,
    diameter_histogram_rgb,
    summary_html,
)
from nodulekit.viz.slices import STYLE_COLORS


def test_bins_leave_out_unmeasured_and_reach_past_the_largest() -> None:
    counts, edges = diameter_bins(np.array([1.0, 3.0, 4.5, 35.0, -1.0]))
    assert edges[0] == 0 and edges[-1] == 36.0 and np.all(np.diff(edges) == 3.0)
    assert counts.tolist()[:2] == [1, 2] and counts[-1] == 1 and counts.sum() == 4


def test_histogram_bars_are_as_tall_as_their_counts() -> None:
    rgb = diameter_histogram_rgb(np.array([4.0, 5.0, 7.0]), width_px=320, height_px=110)
    assert rgb.shape == (110, 320, 3) and rgb.dtype == np.uint8
    red = np.all(rgb == STYLE_COLORS["nodule"], axis=-1)
    bar_w = 300 / 11  # 11 bins of 3 mm from 0 to 33 mm
    heights = [red[:, round(10 + (i + 0.5) * bar_w)].sum() for i in range(3)]
    assert heights[0] == 0 and heights[1] == pytest.approx(2 * heights[2], abs=1)
    assert diameter_histogram_png(np.array([4.0])).startswith(b"\x89PNG")


def test_histogram_text_has_no_missing_glyph(monkeypatch) -> None:
    from PIL import ImageDraw, ImageFont

    drawn: list[str] = []
    original = ImageDraw.ImageDraw.text

    def spy(self, xy, text, *args, **kwargs):
        drawn.append(text)
        return original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    diameter_histogram_rgb(np.array([6.4, 12.0]))
    font = ImageFont.load_default()
    missing = bytes(font.getmask("\ue000"))  # a private-use character: the missing glyph
    assert drawn and "diameter" in drawn[0]
    for text in drawn:
        for char in set(text) - {" "}:
            assert bytes(font.getmask(char)) != missing, f"no glyph for {char!r} in {text!r}"


def test_figure_and_summary_html() -> None:
    fig = diameter_histogram_figure(np.array([4.0, 5.0, -1.0]))
    assert [p.get_height() for p in fig.axes[0].patches][:2] == [0, 2]
    summary = {
        "description": "LUNA16 root: <2> scans", "scans_on_disk": 2, "scans_per_subset": {0: 2},
        "scans_missing": 1, "nodules": 3, "excluded_findings": 4, "slice_thickness_mm": {},
    }  # fmt: skip
    text = summary_html(summary)
    assert text.startswith("<div class='nk-summary'><b>LUNA16 root: &lt;2&gt; scans</b>")
    assert "scans on disk: 2 (subset0: 2)" in text and "slice thickness: n/a" in text
    assert "nodules: 3 · excluded findings: 4" in text


def test_importing_viz_loads_no_plotting_library() -> None:
    # that every name in viz.__all__ resolves to its module's object: tests/test_exports.py
    code = "import sys, nodulekit.viz; print(sorted(m for m in ('matplotlib', 'PIL', 'SimpleITK') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
