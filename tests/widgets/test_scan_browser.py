"""ScanBrowser and its plain functions, on a tiny hand-made LUNA16 folder (no browser)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodulekit.data.io import write_scan
from nodulekit.data.scan import Scan
from nodulekit.data.series import (
    describe_path,
    filter_series,
)
from nodulekit.errors import ScanReadError
from nodulekit.widgets import ScanBrowser
from tests.data.test_series import A, B, C, _scan, make_luna_root


@pytest.fixture
def luna_root(tmp_path: Path) -> Path:
    """3 scans in 2 subsets; A and C have a nodule, A an excluded finding; D is missing."""
    return make_luna_root(tmp_path)


def _write_dicom(folder: Path, modality: str, tags: dict[str, str]) -> Path:
    """A 3-slice DICOM series of ``modality`` with extra ``tags``."""
    import SimpleITK as sitk

    folder.mkdir()
    volume = sitk.GetImageFromArray(np.zeros((3, 8, 8), np.int16))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for i in range(3):
        image = volume[:, :, i]
        for tag, value in [("0008|0060", modality), ("0020|000e", "1.2.3.4.5.6"),
                           ("0020|000d", "1.2.3.4.5"), ("0008|103e", "T1 axial"),
                           ("0020|0032", f"0\\0\\{i}"), ("0020|0013", str(i + 1)),
                           *tags.items()]:  # fmt: skip
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{i}.dcm"))
        writer.Execute(image)
    return folder


@pytest.fixture
def mr_folder(tmp_path: Path) -> Path:
    """A DICOM folder holding one 3-slice MR series and no CT."""
    return _write_dicom(tmp_path / "mr", "MR", {})


# -- the widget ----------------------------------------------------------------------------
@pytest.fixture
def browser(luna_root: Path):
    widget = ScanBrowser(luna_root, autoload=False)
    yield widget
    widget.close()


def test_widget_lists_series_and_filters(browser: ScanBrowser) -> None:
    assert browser.last_error is None
    assert "3 scans on disk in 2 subsets" in browser.path_status.value
    assert [uid for _, uid in browser.series_select.options] == [A, B, C]
    assert "missing (named in the tables, not on disk): 1" in browser.summary.value
    assert bytes(browser.histogram.value).startswith(b"\x89PNG")
    browser.has_nodules_filter.value = True
    assert [uid for _, uid in browser.series_select.options] == [A, C]
    browser.subset_filter.value = 1
    assert [uid for _, uid in browser.series_select.options] == [C]


def test_picking_a_row_loads_and_slices_redraw(browser: ScanBrowser) -> None:
    browser.series_select.value = A  # what a click does
    scan = browser.loading.result(timeout=30)
    assert scan is browser.scan and scan.seriesuid == A
    assert browser.index_zyx == (5, 6, 8)  # opened on the first nodule
    assert "(5, 6, 8)" in browser.probe_html.value
    assert f"{int(scan.array[5, 6, 8])} HU" in browser.probe_html.value
    before = bytes(browser.axial_image.value)
    assert before.startswith(b"\x89PNG")
    browser.z_slider.value = 6
    moved = bytes(browser.axial_image.value)
    assert moved != before
    browser.window_preset.value = "bone"
    windowed = bytes(browser.axial_image.value)
    assert windowed not in (before, moved)


def test_clicking_a_finding_row_moves_all_planes(browser: ScanBrowser) -> None:
    browser.select_series(A).result(timeout=30)
    assert browser.findings["kind"].tolist() == ["nodule", "excluded"]
    assert browser.nodule_select.options[0].startswith("nodule 1   6.0 mm")
    # LUNA16's -1: not measured, a non-nodule or a nodule under 3 mm; never "<3 mm" alone
    assert browser.nodule_select.options[1].startswith("excluded 1 non-nodule or nodule < 3 mm")
    browser.jump_to((0, 0, 0))
    assert browser.select_finding(1) == (2, 2, 3)  # the excluded finding at (3, 2, 4) mm
    assert browser.select_finding(0) == (5, 6, 8)
    assert (browser.z_slider.value, browser.y_slider.value, browser.x_slider.value) == (5, 6, 8)


def test_last_nodule_is_a_nodule_never_an_excluded_finding(browser: ScanBrowser) -> None:
    browser.select_series(A).result(timeout=30)
    browser.jump_to((0, 0, 0))
    assert len(browser.nodules) == 1 and set(browser.nodules["kind"]) == {"nodule"}
    assert browser.select_nodule(len(browser.nodules) - 1) == (5, 6, 8)
    assert browser.select_nodule(-1) == (5, 6, 8)
    with pytest.raises(IndexError, match="this scan has 1 nodule"):
        browser.select_nodule(1)


def test_going_back_comes_from_the_cache(browser: ScanBrowser) -> None:
    first = browser.select_series(A).result(timeout=30)
    browser.select_series(B).result(timeout=30)
    again = browser.select_series(A)
    assert again.done() and again.result() is first
    assert "from cache" in browser.load_status.value


def test_3d_view_renders_on_request(browser: ScanBrowser) -> None:
    browser.select_series(A).result(timeout=30)
    assert bytes(browser.view3d_image.value) == b""
    browser.show_3d.value = True
    first = bytes(browser.view3d_image.value)
    assert first.startswith(b"\x89PNG") and browser.last_error is None
    browser.azimuth_slider.value = 90
    assert bytes(browser.view3d_image.value) != first


def test_single_file_in_a_luna_root_shows_the_roots_nodules(luna_root: Path) -> None:
    widget = ScanBrowser(luna_root / "subset1" / f"{C}.mhd")
    try:
        assert widget.loading.result(timeout=30).shape == (12, 16, 16)
        assert widget.findings["kind"].tolist() == ["nodule"]  # found as `nodulekit info` does
        assert widget.index_zyx == (5, 5, 5)  # opened on it: (5, 5, 12.5) mm
        assert [uid for _, uid in widget.series_select.options] == [C]
    finally:
        widget.close()


def test_single_file_outside_luna_has_no_findings(tmp_path: Path) -> None:
    write_scan(_scan((4, 8, 8), (1.0, 1.0, 1.0), 3), tmp_path / "alone.mhd")
    widget = ScanBrowser(tmp_path / "alone.mhd")
    try:
        assert widget.loading.result(timeout=30).shape == (4, 8, 8)
        assert widget.nodule_select.options == () and widget.findings.empty
    finally:
        widget.close()


def test_widget_filter_is_filter_series(browser: ScanBrowser) -> None:
    browser.table.loc[browser.table["seriesuid"] == B, "slice_thickness_mm"] = np.nan
    browser.refresh_table()
    assert [uid for _, uid in browser.series_select.options] == [A, B, C]  # no bound: all
    browser.thickness_filter.value = (1.5, browser.thickness_filter.max)
    assert [uid for _, uid in browser.series_select.options] == [A, C]
    args = browser.filter_arguments()
    assert args["min_thickness_mm"] == 1.5 and args["max_thickness_mm"] is None
    expected = filter_series(browser.table, **args)
    pd.testing.assert_frame_equal(browser.filtered_table(), expected)


def _nowhere(tmp: Path) -> Path:
    return tmp / "nowhere"


def _empty(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _notes(tmp: Path) -> Path:
    (tmp / "notes").mkdir()
    (tmp / "notes" / "a.txt").write_text("not a scan")
    return tmp / "notes"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_nowhere, "no such file or folder"),
        (_empty, "the folder is empty"),
        (_notes, "no readable scan here"),
    ],
)
def test_bad_paths_show_a_message_and_raise(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    widget = ScanBrowser(path)
    assert message in widget.last_error and message in widget.error_box.value
    assert "Traceback" not in widget.error_box.value
    with pytest.raises(ScanReadError, match=message) as info:
        ScanBrowser.from_path(path, raise_errors=True)
    assert str(info.value) == widget.last_error
    widget.close()


def test_dicom_folder_without_ct(mr_folder: Path) -> None:
    widget = ScanBrowser(mr_folder)
    assert "no CT series among the 1 DICOM series found (MR 'T1 axial'" in widget.last_error
    with pytest.raises(ScanReadError, match="nodulekit reads CT only"):
        describe_path(mr_folder)
    widget.close()


def test_luna_root_whose_tables_name_no_scan_on_disk(luna_root: Path, tmp_path: Path) -> None:
    bare = tmp_path / "tables-only"
    bare.mkdir()
    (bare / "annotations.csv").write_text(
        (luna_root / "annotations.csv").read_text(encoding="utf-8")
    )
    widget = ScanBrowser(bare)
    assert "none is on disk" in widget.last_error
    with pytest.raises(ScanReadError, match="none is on disk"):
        ScanBrowser.from_path(bare, raise_errors=True)
    widget.close()


def test_dicom_with_patient_tags_warns_and_picks_ct(tmp_path: Path) -> None:
    _write_dicom(tmp_path / "ct", "CT", {"0010|0010": "Doe^Jane", "0010|0020": "P-17"})
    widget = ScanBrowser(tmp_path)
    try:
        assert widget.last_error is None
        assert "patient-identifying tags (PatientID, PatientName, Study" in widget.warning_box.value
        assert "nodulekit deid" in widget.warning_box.value
        assert "Doe" not in widget.warning_box.value  # names of tags, never their values
        assert widget.loading.result(timeout=30).shape == (3, 8, 8)
    finally:
        widget.close()


@pytest.mark.slow
def test_real_sample_luna_and_dicom(sample_dir: Path) -> None:
    luna = ScanBrowser(sample_dir / "luna16-mini")
    try:
        assert luna.path_status.value == (
            "LUNA16 root: 1 scan on disk in 1 subset, 887 named in the tables but missing"
        )
        scan = luna.loading.result(timeout=60)
        assert luna.index_zyx == (90, 367, 316)  # the 23.4 mm nodule at (56.2, 86.3, -115.9)
        assert scan.shape == (133, 512, 512)
    finally:
        luna.close()
    dicom = ScanBrowser(sample_dir / "lidc-idri-dicom")
    try:
        assert dicom.path_status.value == "DICOM folder: 1 series, 1 CT"
        assert dicom.loading.result(timeout=60).shape == (133, 512, 512)
    finally:
        dicom.close()


def test_slow_older_load_does_not_overwrite_a_cached_pick(browser: ScanBrowser) -> None:
    import threading

    browser.select_series(B).result(timeout=30)  # B now in the cache
    release = threading.Event()
    read = browser.source.load

    def slow_load(uid: str):
        release.wait(10)
        return read(uid)

    browser.source.load = slow_load
    slow = browser.select_series(A)  # A waits in the worker thread
    fast = browser.select_series(B)  # B from the cache, shown at once
    assert fast.done() and fast.result().seriesuid == B
    release.set()
    assert slow.result(timeout=30) is None  # A finished last and was dropped
    assert A in browser.cache  # ... but it was read and cached
    assert browser.scan.seriesuid == B and browser.loading is fast
    assert browser.load_status.value.startswith("1.2.3.200")


def test_file_in_ras_is_shown_as_lps(tmp_path: Path) -> None:
    array = np.full((4, 6, 8), -1000, np.int16)
    array[1, 2, 3] = 400
    ras = Scan(array, origin=(7, 5, 0), spacing=(1, 1, 1), direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    world = ras.voxel_to_world((1, 2, 3))
    write_scan(ras, tmp_path / "ras.mhd")
    widget = ScanBrowser(tmp_path / "ras.mhd")
    try:
        shown = widget.loading.result(timeout=30)
        assert shown.orientation == "LPS" and widget.scan is shown
        z, y, x = shown.world_to_index(world)
        assert shown.array[z, y, x] == 400
        assert "file orientation RAS, shown as LPS" in widget.load_status.value
        widget.jump_to((z, y, x))
        assert (
            "LPS voxel (z, y, x)" in widget.probe_html.value and "400 HU" in widget.probe_html.value
        )
    finally:
        widget.close()


@pytest.mark.slow
def test_real_sample_single_file_finds_its_roots_tables(sample_dir: Path) -> None:
    mhd = next((sample_dir / "luna16-mini" / "subset0").glob("*.mhd"))
    widget = ScanBrowser(mhd)
    try:
        widget.loading.result(timeout=60)
        assert widget.nodule_select.options[0].startswith("nodule 1   23.4 mm")
        assert widget.index_zyx == (90, 367, 316)
        kinds = widget.findings["kind"]
        assert (kinds == "nodule").sum() == 1 and (kinds == "excluded").sum() == 25
        unmeasured = widget.findings.loc[widget.findings["diameter_mm"] < 0]
        assert set(unmeasured["kind"]) == {"excluded"}
    finally:
        widget.close()
