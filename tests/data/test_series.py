"""The series of a data source and the findings of a scan: plain functions, no widget."""

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

A, B, C, MISSING = "1.2.3.100", "1.2.3.200", "1.2.3.300", "1.2.3.400"


def _scan(shape, spacing_xyz, seed: int) -> Scan:
    array = np.random.default_rng(seed).integers(-1000, 400, size=shape).astype(np.int16)
    return Scan(array, origin=(0, 0, 0), spacing=spacing_xyz)


def make_luna_root(tmp_path: Path) -> Path:
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


@pytest.fixture
def luna_root(tmp_path: Path) -> Path:
    return make_luna_root(tmp_path)


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
