"""ScanBrowser and its plain functions, on a tiny hand-made LUNA16 folder (no browser)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodulekit.data.findings import finding_voxel_zyx, probe
from nodulekit.data.io import write_scan
from nodulekit.data.scan import Scan
from nodulekit.data.series import (
    ScanCache,
    describe_path,
    filter_series,
    first_series,
    open_source,
    quick_look,
    series_table,
)
from nodulekit.errors import ScanReadError
from nodulekit.widgets import ScanBrowser

A, B, C, MISSING = "1.2.3.100", "1.2.3.200", "1.2.3.300", "1.2.3.400"


def _scan(shape, spacing_xyz, seed: int) -> Scan:
    array = np.random.default_rng(seed).integers(-1000, 400, size=shape).astype(np.int16)
    return Scan(array, origin=(0, 0, 0), spacing=spacing_xyz)


@pytest.fixture
def luna_root(tmp_path: Path) -> Path:
    """3 scans in 2 subsets; A and C have a nodule, A an excluded finding; D is missing."""
    root = tmp_path / "luna"
    write_scan(_scan((10, 16, 16), (1.0, 1.0, 2.0), 0), root / "subset0" / f"{A}.mhd")
    write_scan(_scan((8, 16, 16), (0.8, 0.8, 1.25), 1), root / "subset0" / f"{B}.mhd")
    write_scan(_scan((12, 16, 16), (1.0, 1.0, 2.5), 2), root / "subset1" / f"{C}.mhd")
    pd.DataFrame(
        {
            "seriesuid": [A, C, MISSING],
            "coordX": [8.0, 5.0, 1.0],
            "coordY": [6.0, 5.0, 1.0],
            "coordZ": [10.0, 12.5, 1.0],
            "diameter_mm": [6.0, 4.0, 5.0],
        }
    ).to_csv(root / "annotations.csv", index=False)
    pd.DataFrame(
        {"seriesuid": [A], "coordX": [3.0], "coordY": [2.0], "coordZ": [4.0], "diameter_mm": [-1.0]}
    ).to_csv(root / "annotations_excluded.csv", index=False)
    (root / "seriesuids.csv").write_text("\n".join([A, B, C, MISSING]) + "\n")
    return root


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


# -- plain functions -----------------------------------------------------------------------
def test_describe_path_says_what_it_found(luna_root: Path) -> None:
    assert describe_path(luna_root) == (
        "LUNA16 root: 3 scans on disk in 2 subsets, 1 named in the tables but missing"
    )
    assert describe_path(luna_root / "subset1" / f"{C}.mhd").startswith(
        f"scan file: {C}.mhd (LUNA16 tables of "
    )
    assert quick_look(luna_root).startswith("looks like a LUNA16 root (subset0, subset1)")


def test_series_table_reads_headers_and_counts_nodules(luna_root: Path) -> None:
    table = series_table(open_source(luna_root)).set_index("seriesuid")
    assert table.loc[A, "shape_zyx"] == (10, 16, 16)
    assert table.loc[B, "spacing_zyx_mm"] == pytest.approx((1.25, 0.8, 0.8))
    assert table["slice_thickness_mm"].tolist() == [2.0, 1.25, 2.5]
    assert table["n_nodules"].tolist() == [1, 0, 1] and table["n_excluded"].tolist() == [1, 0, 0]
    assert table["subset"].tolist() == [0, 0, 1]
    assert table.loc[A, "short_uid"] == A  # short UIDs stay whole


def test_filter_and_sort_series(luna_root: Path) -> None:
    table = series_table(open_source(luna_root))
    assert filter_series(table, has_nodules=True)["seriesuid"].tolist() == [A, C]
    assert filter_series(table, has_nodules=False)["seriesuid"].tolist() == [B]
    assert filter_series(table, subset=0, min_thickness_mm=1.5)["seriesuid"].tolist() == [A]
    assert filter_series(table, max_thickness_mm=2.0, text="200")["seriesuid"].tolist() == [B]
    by_thickness = filter_series(table, sort_by="slice_thickness_mm", ascending=False)
    assert by_thickness["seriesuid"].tolist() == [C, A, B]
    with pytest.raises(ValueError, match="sort_by must be a column"):
        filter_series(table, sort_by="thickness")
    assert first_series(table) == A  # the first with nodules
    assert first_series(filter_series(table, has_nodules=False)) == B
    assert first_series(table.iloc[:0]) is None


def test_unknown_thickness_is_kept_unfiltered_and_dropped_by_a_bound(luna_root: Path) -> None:
    table = series_table(open_source(luna_root))
    table.loc[table["seriesuid"] == B, "slice_thickness_mm"] = np.nan  # a DICOM without the tag
    assert filter_series(table)["seriesuid"].tolist() == [A, B, C]
    assert filter_series(table, min_thickness_mm=0.0)["seriesuid"].tolist() == [A, C]
    assert filter_series(table, max_thickness_mm=9.0)["seriesuid"].tolist() == [A, C]
    by_thickness = filter_series(table, sort_by="slice_thickness_mm", ascending=False)
    assert by_thickness["seriesuid"].tolist() == [C, A, B]  # unknown last


def test_probe_gives_world_voxel_and_hu() -> None:
    array = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    scan = Scan(array, origin=(-10.0, 5.0, 100.0), spacing=(0.5, 2.0, 3.0))
    info = probe(scan, (1, 2, 3))
    # x = -10 + 3 * 0.5, y = 5 + 2 * 2, z = 100 + 1 * 3; HU = 1 * 12 + 2 * 4 + 3
    assert info == {"world_xyz_mm": (-8.5, 9.0, 103.0), "index_zyx": (1, 2, 3), "hu": 23}
    with pytest.raises(IndexError, match=r"inside shape \(2, 3, 4\)"):
        probe(scan, (2, 0, 0))


def test_finding_voxel_is_the_nearest_voxel_clipped() -> None:
    scan = Scan(np.zeros((10, 16, 16), np.int16), origin=(0, 0, 0), spacing=(1, 1, 2))
    assert finding_voxel_zyx(scan, {"coordX": 8.0, "coordY": 6.2, "coordZ": 10.9}) == (5, 6, 8)
    assert finding_voxel_zyx(scan, {"coordX": -50, "coordY": 99, "coordZ": 9e3}) == (9, 15, 0)


def test_scan_cache_keeps_recent_scans_within_its_bytes() -> None:
    def scan(n):  # n * 2 bytes
        return Scan(np.zeros((1, 1, n), np.int16), (0, 0, 0), (1, 1, 1))

    cache = ScanCache(max_bytes=100)
    cache.put("a", scan(20))
    cache.put("b", scan(20))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", scan(20))  # 120 bytes: drop the least recent, b
    assert list(cache) == ["a", "c"] and cache.nbytes == 80
    cache.put("big", scan(80))  # alone over the budget: kept, the others go
    assert list(cache) == ["big"]


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
    (bare / "annotations.csv").write_text((luna_root / "annotations.csv").read_text())
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
