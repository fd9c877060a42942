"""The LUNA16 layout: scans by subset, missing scans, loading by UID, bad roots."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app
from nodulekit.data import Luna16, MissingScansWarning, Scan, write_scan
from nodulekit.errors import ScanReadError, TableError, UnknownSeriesError
from tests.conftest import SAMPLE_UID

UIDS = ["1.2.826.0.1.1", "1.2.826.0.1.2", "1.2.826.0.1.3"]


@pytest.fixture
def root(tmp_path) -> Path:
    """Two scans on disk (subsets 0 and 3); the tables name a third that is missing."""
    for uid, subset in zip(UIDS[:2], (0, 3), strict=True):
        array = np.full((4, 8, 8), -1000, np.int16)
        array[2, 4, 4] = 60
        write_scan(
            Scan(array, (-10, -20, -30), (1, 1, 2.5), seriesuid=uid),
            tmp_path / f"subset{subset}" / f"{uid}.mhd",
        )
    (tmp_path / "seriesuids.csv").write_text("\n".join(UIDS) + "\n")
    (tmp_path / "annotations.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm\n"
        f"{UIDS[0]},-6,-16,-25,6.5\n{UIDS[2]},1,2,3,10\n"
    )
    (tmp_path / "annotations_excluded.csv").write_text(
        f"seriesuid,coordX,coordY,coordZ,diameter_mm\n{UIDS[1]},-5,-15,-27.5,-1\n"
    )
    (tmp_path / "candidates_V2.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,class\n"
        f"{UIDS[0]},-6,-16,-25,1\n{UIDS[0]},-8,-18,-30,0\n{UIDS[1]},-5,-15,-27.5,0\n"
    )
    return tmp_path


def test_scans_tables_and_missing(root):
    with pytest.warns(MissingScansWarning, match="2 scan\\(s\\) on disk; 1 named in the tables"):
        luna = Luna16(root)
    assert luna.scans[["seriesuid", "subset"]].values.tolist() == [[UIDS[0], 0], [UIDS[1], 3]]
    assert luna.missing == [UIDS[2]]
    assert len(luna.annotations) == 2 and len(luna.annotations_for(UIDS[0])) == 1
    assert luna.candidates_for(UIDS[0])["class"].tolist() == [1, 0]
    assert luna.subset_of(UIDS[1]) == 3
    summary = luna.summary()
    assert summary["scans_per_subset"] == {0: 1, 3: 1}
    assert (summary["nodules"], summary["nodules_in_tables"], summary["excluded_findings"]) == (
        1,
        2,
        1,
    )
    assert summary["candidate_nodules"] == 1
    scan = luna.load(UIDS[0])
    assert scan.seriesuid == UIDS[0]
    z, y, x = scan.world_to_index(
        luna.annotations_for(UIDS[0]).iloc[0][["coordX", "coordY", "coordZ"]].to_numpy(float)
    )
    assert scan.array[z, y, x] == 60


def test_unknown_and_missing_uids_say_what_to_do(root):
    luna = Luna16(root, warn_missing=False)
    with pytest.raises(UnknownSeriesError, match=r"named in the tables .* not on disk; download"):
        luna.load(UIDS[2])
    with pytest.raises(
        UnknownSeriesError,
        match=r"unknown series UID '1\.2\.826\.0\.1\.22'.*close: 1\.2\.826\.0\.1\.2",
    ):
        luna.load("1.2.826.0.1.22")


def test_table_naming_a_series_not_in_seriesuids_is_an_error(root):
    with open(root / "candidates_V2.csv", "a") as f:
        f.write("9.9.9,1,2,3,0\n")
    with pytest.raises(
        TableError,
        match=r"candidates_V2.csv: 1 seriesuid\(s\) not in seriesuids.csv, e.g. 9\.9\.9 on line 5",
    ):
        Luna16(root, warn_missing=False)


def test_bad_roots(tmp_path):
    with pytest.raises(ScanReadError, match="not a LUNA16 root"):
        Luna16(tmp_path)
    (tmp_path / "annotations.csv").write_text(
        f"seriesuid,coordX,coordY,coordZ,diameter_mm\n{UIDS[0]},1,2,3,4\n"
    )
    with pytest.raises(ScanReadError, match=r"the tables name 1 scans but none is on disk"):
        Luna16(tmp_path)
    with pytest.raises(ScanReadError, match="not a folder"):
        Luna16(tmp_path / "nowhere")


def test_info_command_prints_geometry_and_nodules_in_world_and_voxel(root):
    path = root / "subset0" / f"{UIDS[0]}.mhd"
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "size (x, y, z):    8 x 8 x 4 voxels" in result.output
    assert "spacing (x, y, z): 1 x 1 x 2.5 mm" in result.output
    assert "HU range:          -1000 .. 60" in result.output
    assert "world (x, y, z) = (-6.0, -16.0, -25.0) mm  voxel (z, y, x) = (2, 4, 4)" in result.output
    root_result = CliRunner().invoke(app, ["info", str(root)])
    assert "scans missing" in root_result.output and "{0: 1, 3: 1}" in root_result.output
    bad = CliRunner().invoke(app, ["info", str(root / "nope.mhd")])
    assert bad.exit_code == 2 and "no such file" in bad.output


@pytest.mark.sample
def test_real_sample_root_has_one_scan_and_887_missing(sample_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        luna = Luna16(sample_dir / "luna16-mini")
    assert len(luna) == 1 and len(luna.missing) == 887
    assert sum(issubclass(w.category, MissingScansWarning) for w in caught) == 1
    nodules = luna.annotations_for(SAMPLE_UID)
    assert len(nodules) == 1 and nodules["diameter_mm"].iloc[0] == pytest.approx(23.35, abs=0.01)
    assert luna.candidates.empty and list(luna.candidates.columns)[-1] == "class"


def test_root_is_found_next_to_a_symlinked_scan_not_its_target(root, tmp_path_factory):
    """ROOT/subset0/UID.mhd may link into shared storage; its tables are ROOT's."""
    from nodulekit.data import find_luna16_root

    storage = tmp_path_factory.mktemp("shared-storage")  # no tables there
    link_root = tmp_path_factory.mktemp("linked") / "luna"
    (link_root / "subset0").mkdir(parents=True)
    for name in ("annotations.csv", "annotations_excluded.csv"):
        (link_root / name).write_bytes((root / name).read_bytes())
    for suffix in (".mhd", ".raw"):
        target = storage / f"{UIDS[0]}{suffix}"
        target.write_bytes((root / "subset0" / f"{UIDS[0]}{suffix}").read_bytes())
        (link_root / "subset0" / f"{UIDS[0]}{suffix}").symlink_to(target)
    link = link_root / "subset0" / f"{UIDS[0]}.mhd"
    assert link.is_symlink() and find_luna16_root(link.resolve()) is None
    assert find_luna16_root(link) == link_root
    result = CliRunner().invoke(app, ["info", str(link)])
    assert result.exit_code == 0, result.output
    assert "nodules: 1" in result.output
    assert "world (x, y, z) = (-6.0, -16.0, -25.0) mm  voxel (z, y, x) = (2, 4, 4)" in result.output
    # a link whose folder has no tables still finds the ones above its target
    loose = tmp_path_factory.mktemp("loose") / f"{UIDS[0]}.mhd"
    loose.symlink_to(root / "subset0" / f"{UIDS[0]}.mhd")
    assert find_luna16_root(loose) == root
