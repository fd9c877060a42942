"""Slices, windows and nodule circles: hand-computed numbers on tiny scans."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from nodulekit.data.scan import Scan
from nodulekit.viz.slices import (
    CROSSHAIR_COLOR,
    CROSSHAIR_INDEX,
    STYLE_COLORS,
    STYLE_INDEX,
    SliceCircle,
    draw_circles,
    draw_crosshair,
    nodule_circles_on_slice,
    plane_geometry,
    plane_png,
    plane_point,
    plane_rgb,
    plane_size,
    render_slice,
    slice_figure,
    to_png,
    window_range,
)


def _nodule(x: float, y: float, z: float, d: float) -> pd.DataFrame:
    return pd.DataFrame({"coordX": [x], "coordY": [y], "coordZ": [z], "diameter_mm": [d]})


@pytest.fixture
def scan() -> Scan:
    # 12 slices of 1 mm, 20 x 20 pixels of 0.5 mm, origin at 0
    return Scan(np.zeros((12, 20, 20), np.int16), origin=(0, 0, 0), spacing=(0.5, 0.5, 1.0))


def test_radius_of_10mm_nodule_3mm_from_its_centre_is_4mm(scan: Scan) -> None:
    circles = nodule_circles_on_slice(_nodule(5.0, 4.0, 5.0, 10.0), scan, "axial", 2)
    assert len(circles) == 1
    row, col, radius_px, style = circles[0]
    assert radius_px * 0.5 == pytest.approx(4.0)  # 0.5 mm pixels
    assert (row, col, style) == (pytest.approx(8.0), pytest.approx(10.0), "nodule")


def test_circle_only_on_slices_the_sphere_crosses(scan: Scan) -> None:
    nodule = _nodule(5.0, 5.0, 5.0, 10.0)  # centre slice 5, radius 5 mm = 5 slices
    crossed = [i for i in range(12) if nodule_circles_on_slice(nodule, scan, "axial", i)]
    assert crossed == [1, 2, 3, 4, 5, 6, 7, 8, 9]  # |i - 5| < 5; at 5 mm the cut is a point
    radii = [nodule_circles_on_slice(nodule, scan, "axial", i)[0].radius_px for i in (5, 6, 9)]
    assert radii == pytest.approx([10.0, np.sqrt(24) * 2, 6.0])  # 5 mm, sqrt(25-1), sqrt(25-16)


def test_unknown_diameter_is_drawn_as_3mm_and_style_is_kept(scan: Scan) -> None:
    circles = nodule_circles_on_slice(_nodule(5, 5, 5, -1), scan, "axial", 5, style="excluded")
    assert circles == [SliceCircle(pytest.approx(10.0), 10.0, pytest.approx(3.0), "excluded")]
    assert nodule_circles_on_slice(None, scan, "axial", 5) == []


def test_coronal_plane_is_stretched_and_flipped_superior_up() -> None:
    # z spacing 2 mm, x spacing 1 mm: each z voxel is 2 rendered rows; superior (high z) on top
    scan = Scan(np.zeros((4, 6, 8), np.int16), origin=(0, 0, 0), spacing=(1, 1, 2))
    geo = plane_geometry(scan.shape, scan.spacing_zyx_mm, "coronal")
    assert (geo.n_rows, geo.n_cols, geo.row_scale) == (8, 8, 2.0)
    assert plane_point(scan, "coronal", (3, 0, 5)) == (pytest.approx(0.5), 5.0)  # top voxel
    assert plane_point(scan, "coronal", (0, 0, 5)) == (pytest.approx(6.5), 5.0)
    assert render_slice(scan, "coronal", 2).shape == (8, 8, 3)
    # a 4 mm nodule at z = 2 mm (voxel 1) cut through its centre: radius 2 mm = 2 px
    circle = nodule_circles_on_slice(_nodule(3, 2, 2, 4.0), scan, "coronal", 2)[0]
    assert (circle.row, circle.col, circle.radius_px) == pytest.approx((4.5, 3.0, 2.0))


def test_sagittal_slice_takes_a_column_of_x() -> None:
    array = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    scan = Scan(array, origin=(0, 0, 0), spacing=(1, 1, 1))
    rgb = render_slice(scan, "sagittal", 1, window=(11.5, 23))  # 0 HU -> 0, 23 HU -> 255
    expected = np.rint(array[::-1, :, 1] / 23 * 255)
    np.testing.assert_array_equal(rgb[..., 0], expected)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("lung", [0, 0, 236, 255]),  # -1350..150 HU: 40 HU -> 1390 / 1500 * 255 = 236.3
        ("mediastinum", [0, 0, 128, 255]),  # -160..240 HU: 40 HU -> 0.5 * 255 = 127.5 -> 128
        ((0.0, 100.0), [0, 0, 230, 255]),  # -50..50 HU: 40 HU -> 0.9 * 255 = 229.5 -> 230
    ],
)
def test_render_slice_windows(window, expected) -> None:
    array = np.array([-2000, -1350, 40, 3000], np.int16).reshape(1, 1, 4)
    got = render_slice(Scan(array, (0, 0, 0), (1, 1, 1)), "axial", 0, window=window)
    assert got[0, :, 0].tolist() == expected


def test_bad_window_and_plane_are_refused() -> None:
    with pytest.raises(ValueError, match="preset must be one of"):
        window_range("lungs")
    with pytest.raises(
        ValueError, match=r"window must be a preset name .* or \(level_hu, width_hu\)"
    ):
        window_range((1, 2, 3))
    with pytest.raises(ValueError, match="plane must be one of"):
        plane_geometry((2, 2, 2), (1, 1, 1), "transverse")
    with pytest.raises(IndexError, match=r"axial index must be in 0\.\.1, not 2"):
        render_slice(np.zeros((2, 2, 2), np.int16), "axial", 2)


def test_indexed_render_circles_crosshair_and_png() -> None:
    from PIL import Image

    scan = Scan(np.full((3, 40, 40), 3000, np.int16), (0, 0, 0), (1, 1, 1))
    image = render_slice(scan, "axial", 1, indexed=True)
    assert image.shape == (40, 40) and image.max() == 251  # grey stops below the overlay colours
    drawn = draw_circles(
        image, [SliceCircle(20, 20, 10, "nodule"), SliceCircle(5, 5, 3, "excluded")]
    )
    assert drawn[20, 30] == STYLE_INDEX["nodule"]  # the circle passes 10 px right of the centre
    assert drawn[20, 20] == 251  # its inside is left alone
    crossed = draw_crosshair(drawn, 2, 7)
    assert crossed[2, 0] == CROSSHAIR_INDEX and crossed[0, 7] == CROSSHAIR_INDEX
    back = Image.open(io.BytesIO(to_png(crossed))).convert("RGB")
    assert back.getpixel((30, 20)) == STYLE_COLORS["nodule"]


def test_rgb_circle_colours_and_dashes() -> None:
    rgb = np.zeros((40, 40, 3), np.uint8)
    drawn = draw_circles(rgb, [SliceCircle(20, 20, 10, "excluded")], width=1)
    yellow = np.all(drawn == STYLE_COLORS["excluded"], axis=-1)
    ring = np.hypot(*np.mgrid[-20:20, -20:20]).round() == 10
    assert 0.3 < yellow[ring].mean() < 0.9  # dashed: part of the ring, not all of it
    assert rgb.sum() == 0  # the input is not drawn on


def test_slice_figure_draws_into_given_axes(scan: Scan) -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    out = slice_figure(
        scan, "axial", 5, nodules=_nodule(5, 5, 5, 4), excluded=_nodule(2, 2, 5, -1), ax=ax2
    )
    assert out is fig and len(ax1.images) == 0 and ax2.get_title() == "axial 5"
    shown = ax2.images[0].get_array()
    np.testing.assert_array_equal(
        shown, plane_rgb(scan, "axial", 5, nodules=_nodule(5, 5, 5, 4),
                         excluded=_nodule(2, 2, 5, -1))
    )  # fmt: skip
    # the 4 mm nodule at (5, 5) mm: a red ring 2 mm = 4 px from its centre pixel (10, 10)
    assert tuple(shown[10, 14]) == STYLE_COLORS["nodule"]
    assert slice_figure(scan).axes[0].get_title() == "axial 6"  # middle slice by default


def test_plane_rgb_draws_findings_and_crosshair_in_one_place(scan: Scan) -> None:
    rgb = plane_rgb(scan, "axial", 5, nodules=_nodule(5, 5, 5, 4), crosshair_zyx=(5, 2, 3))
    assert rgb.shape == (20, 20, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[10, 14]) == STYLE_COLORS["nodule"]
    assert tuple(rgb[2, 0]) == CROSSHAIR_COLOR and tuple(rgb[0, 3]) == CROSSHAIR_COLOR
    indexed = plane_rgb(scan, "axial", 5, nodules=_nodule(5, 5, 5, 4), indexed=True)
    assert indexed.ndim == 2 and indexed[10, 14] == STYLE_INDEX["nodule"]
    from PIL import Image

    png = plane_png(scan, "axial", 5, nodules=_nodule(5, 5, 5, 4), crosshair_zyx=(5, 2, 3))
    back = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    np.testing.assert_array_equal(back, rgb)
    assert plane_size(scan, "coronal") == (24, 20)  # 12 slices of 1 mm in 0.5 mm pixels


def test_plane_index_is_along_the_lps_array_whatever_the_file() -> None:
    """A RAS scan and its LPS twin give the same picture for the same index."""
    lps = _bright_scan((1, 0, 0, 0, 1, 0, 0, 0, 1))
    ras = _bright_scan((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    z, y, x = lps.world_to_index(BRIGHT_XYZ_MM)
    for plane, index in (("axial", z), ("coronal", y), ("sagittal", x)):
        np.testing.assert_array_equal(
            plane_rgb(ras, plane, int(index), window=(0, 2000)),
            plane_rgb(lps, plane, int(index), window=(0, 2000)),
        )
    assert plane_rgb(lps, "axial", int(z), window=(0, 2000)).max() > 0  # the bright voxel shows


# -- orientation: a scan whose file is not LPS shows as LPS ------------------------------------
BRIGHT_XYZ_MM = (3.0, 5.0, 2.0)  # world point of the one bright voxel


def _bright_scan(direction: tuple[float, ...]) -> Scan:
    """A (4, 6, 8) scan of 1 mm voxels whose one bright voxel sits at `BRIGHT_XYZ_MM`.

    The origin is placed so that the grid covers world x 0..7, y 0..5, z 0..3 whatever the
    direction (its flipped axes run from the far end back).
    """
    signs = np.diag(np.asarray(direction, float).reshape(3, 3))  # x, y, z
    far = np.array([7.0, 5.0, 3.0])
    origin = np.where(signs > 0, 0.0, far)
    scan = Scan(np.full((4, 6, 8), -1000, np.int16), origin=origin, spacing=(1, 1, 1),
                direction=direction)  # fmt: skip
    z, y, x = scan.world_to_index(BRIGHT_XYZ_MM)
    scan.array[z, y, x] = 400
    return scan


@pytest.mark.parametrize(
    "direction",
    [(-1, 0, 0, 0, -1, 0, 0, 0, 1), (1, 0, 0, 0, 1, 0, 0, 0, -1)],
    ids=["RAS", "z-flipped"],
)
def test_reoriented_scan_renders_like_the_lps_one(direction) -> None:
    from nodulekit.preprocess.orient import reorient_to_lps

    lps = _bright_scan((1, 0, 0, 0, 1, 0, 0, 0, 1))
    other = _bright_scan(direction)
    assert reorient_to_lps(lps) is lps
    shown = reorient_to_lps(other)
    assert shown.orientation == "LPS" and shown.shape == lps.shape
    z, y, x = shown.world_to_index(BRIGHT_XYZ_MM)
    assert shown.array[z, y, x] == 400
    assert shown.voxel_to_world((z, y, x)) == pytest.approx(BRIGHT_XYZ_MM)
    lps_index, raw_index = lps.world_to_index(BRIGHT_XYZ_MM), other.world_to_index(BRIGHT_XYZ_MM)
    raw_differs = []
    for axis, plane in enumerate(("axial", "coronal", "sagittal")):
        ref = render_slice(lps, plane, int(lps_index[axis]))
        # the reoriented scan has the bright pixel where the LPS scan has it, in every plane ...
        np.testing.assert_array_equal(render_slice(shown, plane, int((z, y, x)[axis])), ref)
        raw_differs.append(
            not np.array_equal(render_slice(other, plane, int(raw_index[axis])), ref)
        )
    assert any(raw_differs)  # ... the file's own array does not (mirrored or upside down)
