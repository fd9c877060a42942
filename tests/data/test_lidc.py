"""LIDC reader XML: parsing, rasterising, grouping, consensus, and the check against LUNA16."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nodulekit.data import Scan, read_scan
from nodulekit.data.lidc import (
    LidcAnnotationError,
    LidcWarning,
    consensus_nodules,
    find_lidc_xml,
    lidc_annotations_table,
    read_lidc_xml,
)
from tests.conftest import SAMPLE_UID

NS = 'xmlns="http://www.nih.gov"'


def _square(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """A closed outline along the border of the box [x0, x1] x [y0, y1] (pixels)."""
    top = [(x, y0) for x in range(x0, x1 + 1)]
    right = [(x1, y) for y in range(y0 + 1, y1 + 1)]
    bottom = [(x, y1) for x in range(x1 - 1, x0 - 1, -1)]
    left = [(x0, y) for y in range(y1 - 1, y0, -1)]
    return top + right + bottom + left


def _roi(z_mm: float, sop: str, points, inclusion: str = "TRUE") -> str:
    edges = "".join(
        f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in points
    )
    return (
        f"<roi><imageZposition>{z_mm}</imageZposition><imageSOP_UID>{sop}</imageSOP_UID>"
        f"<inclusion>{inclusion}</inclusion>{edges}</roi>"
    )


def _nodule(nid: str, rois: str, malignancy: int | None = 4) -> str:
    chars = (
        f"<characteristics><subtlety>5</subtlety><malignancy>{malignancy}</malignancy>"
        "</characteristics>"
        if malignancy is not None
        else ""
    )
    return f"<unblindedReadNodule><noduleID>{nid}</noduleID>{chars}{rois}</unblindedReadNodule>"


def _xml(tmp_path, sessions: list[str], name: str = "r.xml"):
    body = "".join(
        f"<readingSession><servicingRadiologistID>{i}</servicingRadiologistID>{s}</readingSession>"
        for i, s in enumerate(sessions)
    )
    text = (
        f'<?xml version="1.0"?><LidcReadMessage {NS}><ResponseHeader>'
        "<SeriesInstanceUid>1.2.3</SeriesInstanceUid></ResponseHeader>"
        f"{body}</LidcReadMessage>"
    )
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def scan() -> Scan:
    # 4 slices of 20 x 20 pixels, 1 mm pixels, 2 mm slices, slice k at z = 10 + 2k mm
    return Scan(
        np.zeros((4, 20, 20), np.int16), origin=(0, 0, 10), spacing=(1, 1, 2), seriesuid="1.2.3"
    )


SLICES = {"sop0": 0, "sop1": 1, "sop2": 2, "sop3": 3}


def test_two_readers_one_nodule_consensus_by_hand(tmp_path, scan):
    # reader 1: box x 2..8, y 2..8 on slices 1 and 2 -> inside (outline excluded) 3..7 = 5 x 5
    # reader 2: box x 4..10, y 2..8 on slice 1 only -> inside x 5..9, y 3..7
    r1 = _nodule("a", _roi(12, "sop1", _square(2, 2, 8, 8)) + _roi(14, "sop2", _square(2, 2, 8, 8)))
    r2 = _nodule("b", _roi(12, "sop1", _square(4, 2, 10, 8)), malignancy=2)
    reading = read_lidc_xml(_xml(tmp_path, [r1, r2]))
    assert reading.n_readers == 2
    [nodule] = consensus_nodules(reading, scan, slices=SLICES)
    assert (nodule.kind, nodule.n_readers, nodule.n_outlined) == ("nodule", 2, 2)
    # at 50% of 2 readers a voxel needs 1 outline: the union. slice 1: x 3..9 (7) x y 3..7 (5)
    # = 35, slice 2: 25 -> 60 voxels of 2 mm3
    assert len(nodule.consensus_zyx) == 60
    assert nodule.volume_mm3 == pytest.approx(120.0)
    assert nodule.diameter_mm == pytest.approx((6 * 120 / np.pi) ** (1 / 3))
    # at 100% only voxels in both outlines: slice 1, x 5..7, y 3..7 = 15
    assert nodule.mask(scan, level=1.0).sum() == 15
    # centre of the union: x mean over slice 1 (3..9) and 2 (3..7) weighted 35:25
    x = (35 * 6 + 25 * 5) / 60
    z = 10 + 2 * (35 * 1 + 25 * 2) / 60
    np.testing.assert_allclose(nodule.center_xyz_mm, (x, 5, z))
    table = lidc_annotations_table([nodule])
    assert list(table.columns[:5]) == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    assert table.malignancy.iloc[0] == 3.0  # mean of the two readers' ratings
    assert table.n_readers.iloc[0] == 2


def test_separate_nodules_stay_apart_and_min_readers_filters(tmp_path, scan):
    r1 = _nodule("a", _roi(12, "sop1", _square(1, 1, 6, 6))) + _nodule(
        "far", _roi(12, "sop1", _square(12, 12, 18, 18))
    )
    r2 = _nodule("b", _roi(14, "sop2", _square(1, 1, 6, 6)))  # next slice: joins "a"
    reading = read_lidc_xml(_xml(tmp_path, [r1, r2]))
    nodules = consensus_nodules(reading, scan, slices=SLICES)
    assert [n.n_readers for n in nodules] == [2, 1]
    assert len(lidc_annotations_table(nodules, min_readers=2)) == 1
    assert len(lidc_annotations_table(nodules, min_readers=1, min_diameter_mm=0)) == 2


def test_points_small_nodules_and_non_nodules(tmp_path, scan):
    point = _nodule("tiny", _roi(12, "sop1", [(5, 5)]), malignancy=None)
    non = (
        "<nonNodule><nonNoduleID>n1</nonNoduleID><imageZposition>16</imageZposition>"
        "<imageSOP_UID>sop3</imageSOP_UID><locus><xCoord>9</xCoord><yCoord>9</yCoord></locus>"
        "</nonNodule>"
    )
    reading = read_lidc_xml(_xml(tmp_path, [point + non, point]))
    kinds = reading.marks_table().kind.tolist()
    assert kinds == ["small nodule", "non-nodule", "small nodule"]
    nodules = consensus_nodules(reading, scan, slices=SLICES)
    assert [(n.kind, n.n_readers) for n in nodules] == [("small nodule", 2)]
    np.testing.assert_allclose(nodules[0].center_xyz_mm, (5, 5, 12))
    assert lidc_annotations_table(nodules).empty  # points never enter a LUNA16-style table
    both = consensus_nodules(reading, scan, slices=SLICES, include_non_nodules=True)
    assert sorted(n.kind for n in both) == ["non-nodule", "small nodule"]


def test_open_outline_is_kept_as_a_point_with_a_warning(tmp_path, scan):
    open_line = [(2, 2), (3, 2), (4, 2), (5, 2), (6, 2), (7, 2)]  # not closed
    path = _xml(tmp_path, [_nodule("open", _roi(12, "sop1", open_line))])
    with pytest.warns(LidcWarning, match="1 outline"):
        reading = read_lidc_xml(path)
    assert reading.marks[0].kind == "small nodule"
    assert reading.n_kept_as_points == 1


def test_holes_cut_by_exclusion_outlines(tmp_path, scan):
    rois = _roi(12, "sop1", _square(2, 2, 12, 12)) + _roi(
        12, "sop1", _square(5, 5, 9, 9), inclusion="FALSE"
    )
    reading = read_lidc_xml(_xml(tmp_path, [_nodule("ring", rois)]))
    [nodule] = consensus_nodules(reading, scan, slices=SLICES)
    # inside of the outer box: 3..11 = 81 pixels; the hole's inside 6..8 (9) is removed (its
    # outline, drawn just outside the hole, stays part of the nodule)
    assert len(nodule.consensus_zyx) == 81 - 9


def test_unknown_sop_uid_names_it_and_the_file(tmp_path, scan):
    path = _xml(tmp_path, [_nodule("a", _roi(12, "sopX", _square(2, 2, 8, 8)))])
    with pytest.raises(LidcAnnotationError, match=r"r\.xml.*sopX.*not a slice"):
        consensus_nodules(read_lidc_xml(path), scan, slices=SLICES)


def test_z_position_matching_without_dicom_and_off_grid_z(tmp_path, scan):
    path = _xml(tmp_path, [_nodule("a", _roi(14, "whatever", _square(2, 2, 8, 8)))])
    [nodule] = consensus_nodules(read_lidc_xml(path), scan)
    assert set(nodule.consensus_zyx[:, 0]) == {2}
    bad = _xml(tmp_path, [_nodule("a", _roi(15, "w", _square(2, 2, 8, 8)))], name="bad.xml")
    with pytest.raises(LidcAnnotationError, match=r"bad\.xml.*z = 15"):
        consensus_nodules(read_lidc_xml(bad), scan)


def test_bad_files_say_what_is_wrong(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("<LidcReadMessage><readingSession>")
    with pytest.raises(LidcAnnotationError, match=r"broken\.xml: not a readable LIDC XML"):
        read_lidc_xml(broken)
    empty = tmp_path / "empty.xml"
    empty.write_text(f"<LidcReadMessage {NS}/>")
    with pytest.raises(LidcAnnotationError, match="no <readingSession>"):
        read_lidc_xml(empty)
    with pytest.raises(LidcAnnotationError, match=r"no \.xml file here"):
        find_lidc_xml(tmp_path / "nothing")


@pytest.mark.sample
@pytest.mark.slow
def test_sample_consensus_matches_luna16(sample_dir):
    series = sample_dir / "lidc-idri-dicom"
    reading = read_lidc_xml(find_lidc_xml(series))
    assert reading.n_readers == 4
    scan = read_scan(series)
    nodules = consensus_nodules(reading, scan, series_dir=series)
    table = lidc_annotations_table(nodules, min_readers=3)
    luna = pd.read_csv(sample_dir / "luna16-mini" / "annotations.csv")
    luna = luna[luna.seriesuid == SAMPLE_UID]
    assert len(table) == len(luna) == 1
    ours = table[["coordX", "coordY", "coordZ"]].to_numpy()[0]
    theirs = luna[["coordX", "coordY", "coordZ"]].to_numpy()[0]
    assert np.linalg.norm(ours - theirs) < 1.0  # measured: 0.23 mm
    assert table.diameter_mm.iloc[0] == pytest.approx(luna.diameter_mm.iloc[0], rel=0.02)
    assert table.n_readers.iloc[0] == 4
    # LUNA16 excluded the three findings under 3 mm that 3 readers marked as points
    small = [n for n in nodules if n.kind == "small nodule"]
    assert [n.n_readers for n in small] == [3, 3, 3]
    # matching by z position on LUNA16's .mhd gives the same answer
    mhd = read_scan(sample_dir / "luna16-mini" / "subset0" / f"{SAMPLE_UID}.mhd")
    again = lidc_annotations_table(consensus_nodules(reading, mhd), min_readers=3)
    np.testing.assert_allclose(
        again[["coordX", "coordY", "coordZ"]], table[["coordX", "coordY", "coordZ"]]
    )


@pytest.mark.sample
@pytest.mark.slow
def test_cli_writes_the_luna16_style_table(sample_dir, tmp_path):
    from typer.testing import CliRunner

    from nodulekit.cli import app

    out = tmp_path / "lidc.csv"
    result = CliRunner().invoke(
        app,
        [
            "lidc-annotations",
            str(sample_dir / "lidc-idri-dicom"),
            "--out",
            str(out),
            "--min-readers",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 nodule(s)" in result.output
    table = pd.read_csv(out)
    assert table.seriesuid.tolist() == [SAMPLE_UID]
    text = out.read_text(encoding="utf-8")
    assert "LIDC-IDRI-0001" not in text  # the patient ID never reaches the output


def test_each_readers_outline_as_a_mask(tmp_path, scan):
    from nodulekit.data.lidc import LidcSeries

    r1 = _nodule("a", _roi(12, "sop1", _square(2, 2, 8, 8)) + _roi(14, "sop2", _square(2, 2, 8, 8)))
    r2 = _nodule("b", _roi(12, "sop1", _square(4, 2, 10, 8)))
    reading = read_lidc_xml(_xml(tmp_path, [r1, r2]))
    nodules = consensus_nodules(reading, scan, slices=SLICES)
    series = LidcSeries(scan=scan, reading=reading, nodules=nodules, slices=SLICES)
    masks = series.reader_masks(nodules[0])
    assert len(masks) == 2
    first, second = masks.values()
    assert first.sum() == 50 and second.sum() == 25  # 5x5 on two slices; 5x5 on one
    assert second[1, 3:8, 5:10].all() and not second[2].any()
    assert (first | second).sum() == len(nodules[0].union_zyx)
