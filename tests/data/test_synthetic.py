"""The synthetic LUNA16-format set: layout, tables, anatomy, candidates, determinism, CLI."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from nodulekit.data import read_scan
from nodulekit.data.synthetic import UID_PREFIX, make_synthetic_luna16, synthetic_uid
from nodulekit.errors import OutputExistsError

N_SCANS = 2


def _make(root: Path, seed: int = 0, **kw) -> Path:
    return make_synthetic_luna16(
        root, n_scans=N_SCANS, seed=seed, size="tiny", progress=False, **kw
    )


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return _make(tmp_path_factory.mktemp("synth") / "set")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def scans(synth) -> dict:
    uids = (synth / "seriesuids.csv").read_text(encoding="utf-8").split()
    out = {}
    for uid in uids:
        scan = read_scan(next(synth.glob(f"subset*/{uid}.mhd")))
        lungs = read_scan(synth / "seg-lungs-LUNA16" / f"{uid}.mhd")
        nodules = read_scan(synth / "seg-nodules-synthetic" / f"{uid}.mhd")
        out[uid] = (scan, lungs, nodules)
    return out


def _hu(scan, xyz, half_xy: int = 0) -> float:
    z, y, x = scan.world_to_index(np.asarray(xyz, float))
    return float(scan.array[z, y - half_xy : y + half_xy + 1, x - half_xy : x + half_xy + 1].mean())


def test_layout_and_headers_are_luna16s(synth):
    first_lines = {
        name: (synth / name).read_text(encoding="utf-8").splitlines()[0]
        for name in ("annotations.csv", "annotations_excluded.csv", "candidates_V2.csv")
    }
    assert first_lines == {
        "annotations.csv": "seriesuid,coordX,coordY,coordZ,diameter_mm",
        "annotations_excluded.csv": "seriesuid,coordX,coordY,coordZ,diameter_mm",
        "candidates_V2.csv": "seriesuid,coordX,coordY,coordZ,class",
    }
    uids = (
        (synth / "seriesuids.csv").read_text(encoding="utf-8").splitlines()
    )  # no header, one uid a line
    assert len(uids) == N_SCANS and all(u.startswith(UID_PREFIX) for u in uids)
    assert sorted(p.name for p in synth.glob("subset*")) == ["subset0", "subset1"]
    for uid in uids:
        (mhd,) = synth.glob(f"subset*/{uid}.mhd")
        assert mhd.with_suffix(".raw").is_file()
        assert (synth / "seg-lungs-LUNA16" / f"{uid}.mhd").is_file()
        assert (synth / "seg-nodules-synthetic" / f"{uid}.mhd").is_file()
    meta = json.loads((synth / "synthetic.json").read_text(encoding="utf-8"))
    assert meta["parameters"]["seed"] == 0 and meta["parameters"]["n_subsets"] == N_SCANS
    assert "generator" in (synth / "README.txt").read_text(encoding="utf-8")


def test_uids_look_like_dicom_uids():
    uid = synthetic_uid(0, 3)
    assert uid == synthetic_uid(0, 3) != synthetic_uid(1, 3) != synthetic_uid(0, 4)
    assert len(uid) <= 64 and all(p.isdigit() and (p == "0" or p[0] != "0") for p in uid.split("."))


def test_scans_have_luna16_geometry(scans, synth):
    meta = {
        s["uid"]: s
        for s in json.loads((synth / "synthetic.json").read_text(encoding="utf-8"))["scans"]
    }
    for uid, (scan, lungs, nodules) in scans.items():
        assert scan.seriesuid == uid and scan.array.dtype == np.int16
        assert list(scan.shape) == meta[uid]["shape_zyx"]
        sx, sy, sz = scan.spacing
        assert 0.6 <= sx == sy <= 0.9 and 1.25 <= sz <= 2.5
        assert scan.orientation == "LPS" and scan.origin[2] < 0
        assert scan.same_geometry(lungs) and scan.same_geometry(nodules)
        assert -2048 <= scan.array.min() and scan.array.max() <= 3071


def test_lung_mask_labels_the_lungs(scans):
    for scan, lungs, _ in scans.values():
        labels = lungs.array
        assert set(np.unique(labels)) == {0, 3, 4, 5}
        right_x = np.nonzero(labels == 3)[2].mean()
        left_x = np.nonzero(labels == 4)[2].mean()
        assert right_x < left_x  # LPS: +x is the patient's left
        lung_hu = scan.array[(labels == 3) | (labels == 4)]
        assert np.mean(lung_hu < -500) > 0.75  # parenchyma, with vessels and nodules inside
        assert np.median(lung_hu) == pytest.approx(-850, abs=60)
        assert np.median(scan.array[labels == 5]) < -900  # airways are air


def test_annotations_are_nodules_in_the_lungs(synth, scans):
    findings = _rows(synth / "synthetic_findings.csv")
    nodules = [f for f in findings if f["table"] == "annotations"]
    assert len(nodules) == len(_rows(synth / "annotations.csv")) >= N_SCANS
    for f in nodules:
        scan, lungs, labels = scans[f["seriesuid"]]
        xyz = [float(f[c]) for c in ("coordX", "coordY", "coordZ")]
        assert scan.contains(scan.world_to_voxel(xyz))
        assert lungs.array[tuple(scan.world_to_index(xyz))] in (3, 4)
        assert 3.0 <= float(f["diameter_mm"]) <= 30.0
        assert labels.array[tuple(scan.world_to_index(xyz))] == int(f["label"])


def test_nodule_density_by_kind(tmp_path):
    root = make_synthetic_luna16(
        tmp_path / "s",
        n_scans=3,
        seed=5,
        size="tiny",
        nodules_per_scan=(5, 5),
        nodule_free_fraction=0,
        progress=False,
    )
    loaded = {}
    checked = {"solid": 0, "ground_glass": 0}
    for f in _rows(root / "synthetic_findings.csv"):
        if f["kind"] not in checked or float(f["diameter_mm"]) < 5.0:
            continue
        uid = f["seriesuid"]
        if uid not in loaded:
            loaded[uid] = read_scan(next(root.glob(f"subset*/{uid}.mhd")))
        hu = _hu(loaded[uid], [float(f[c]) for c in ("coordX", "coordY", "coordZ")], half_xy=1)
        if f["kind"] == "solid":
            assert hu > -250, f
        else:
            assert -800 < hu < -250, f
        checked[f["kind"]] += 1
    assert checked["solid"] and checked["ground_glass"]


def test_excluded_findings_are_small_or_not_nodules(synth):
    rows = _rows(synth / "annotations_excluded.csv")
    assert rows
    assert all(float(r["diameter_mm"]) == -1 or 0 < float(r["diameter_mm"]) < 3 for r in rows)


def test_candidates_are_mostly_hard_negatives(synth, scans):
    nodules = _rows(synth / "annotations.csv")
    cands = _rows(synth / "synthetic_candidates.csv")
    assert [{k: r[k] for k in list(r)[:5]} for r in cands] == _rows(synth / "candidates_V2.csv")
    positives = [r for r in cands if r["class"] == "1"]
    negatives = [r for r in cands if r["class"] == "0"]
    assert 0 < len(positives) < len(negatives) / 10  # a small minority

    def xyz(r):
        return np.array([float(r[c]) for c in ("coordX", "coordY", "coordZ")])

    def nearest(r):
        same = [n for n in nodules if n["seriesuid"] == r["seriesuid"]]
        return min((np.linalg.norm(xyz(r) - xyz(n)) / (float(n["diameter_mm"]) / 2)) for n in same)

    assert all(nearest(r) < 1.0 for r in positives)  # within its nodule's radius
    assert all(nearest(r) > 1.0 for r in negatives)
    for n in nodules:  # every nodule is a candidate
        assert any(
            r["seriesuid"] == n["seriesuid"] and np.linalg.norm(xyz(r) - xyz(n)) < 15
            for r in positives
        )
    for uid in {r["seriesuid"] for r in negatives}:  # one candidate per spot (2 mm apart)
        pts = np.array([xyz(r) for r in negatives if r["seriesuid"] == uid])
        gaps = np.linalg.norm(pts[:, None] - pts[None], axis=2) + np.eye(len(pts)) * 99
        assert gaps.min() >= 2.0
    vessels = [r for r in negatives if r["kind"].startswith("vessel")]
    assert len(vessels) > 0.5 * len(negatives)  # as on real scans, vessels lead
    on_vessel = [_hu(scans[r["seriesuid"]][0], xyz(r)) > -500 for r in vessels]
    assert np.mean(on_vessel) > 0.9
    assert {r["kind"] for r in negatives} >= {
        "vessel",
        "vessel_fork",
        "vessel_crossing",
        "pleura",
        "rib",
        "lung",
    }


def test_same_seed_same_bytes_other_seed_other_bytes(synth, tmp_path):
    assert _digest(_make(tmp_path / "again")) == _digest(synth)
    assert _digest(_make(tmp_path / "other", seed=1)) != _digest(synth)


@pytest.mark.slow
def test_workers_do_not_change_the_output(synth, tmp_path):
    assert _digest(_make(tmp_path / "pool", workers=2)) == _digest(synth)


def test_luna16_reads_the_set(synth):
    from nodulekit.data import Luna16

    data = Luna16(synth)
    assert len(data.scans) == N_SCANS and sorted(data.scans["subset"]) == [0, 1]
    assert len(data.missing) == 0
    uid = data.scans["seriesuid"].iloc[0]
    assert data.load(uid).seriesuid == uid
    assert data.lung_mask_path(uid) is not None


def test_bad_arguments_and_folders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="n_subsets=3 is more than n_scans=2"):
        make_synthetic_luna16(tmp_path / "a", n_scans=2, n_subsets=3, size="tiny")
    with pytest.raises(ValueError, match="size must be one of"):
        make_synthetic_luna16(tmp_path / "a", size="huge")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="holds no synthetic set"):
        make_synthetic_luna16(tmp_path / "mine", n_scans=1, size="tiny")


def test_synth_command(tmp_path):
    from typer.testing import CliRunner

    from nodulekit.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["synth", str(out), "--scans", "1", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    assert "annotations.csv" in result.output and "candidates_V2.csv" in result.output
    assert len(list(out.glob("subset0/*.mhd"))) == 1
    again = runner.invoke(app, ["synth", str(out), "--scans", "1", "--size", "tiny"])
    assert again.exit_code == 2 and "--overwrite" in again.output
    replaced = runner.invoke(
        app, ["synth", str(out), "--scans", "1", "--size", "tiny", "--seed", "2", "--overwrite"]
    )
    assert replaced.exit_code == 0, replaced.output
    assert (out / "seriesuids.csv").read_text(encoding="utf-8").strip() == synthetic_uid(2, 0)


def test_written_scan_reads_back_voxel_for_voxel(synth):
    from nodulekit.data.synthetic.scan import draw_scan

    drawn = draw_scan(0, 1, "tiny", 30, (2, 5))  # scan 1 of the fixture's set
    uid = synthetic_uid(0, 1)
    back = read_scan(synth / "subset1" / f"{uid}.mhd")
    assert back.seriesuid == uid
    np.testing.assert_array_equal(back.array, drawn["hu"])
    assert back.spacing == drawn["grid"].spacing_xyz_mm
    assert back.origin == pytest.approx(drawn["grid"].origin_xyz_mm)


# -- as hard as LUNA16: nodule sizes, nodule-free scans, vessel negatives -------------------


def test_diameters_follow_the_shipped_luna16_summary():
    from scipy import stats

    from nodulekit.data.synthetic.diameters import diameter_cdf, sample_diameters

    d = sample_diameters(np.random.default_rng(0), 4000)
    assert stats.kstest(d, diameter_cdf).statistic < 0.03
    assert np.median(d) == pytest.approx(6.43, abs=0.25)
    bands = np.histogram(d, bins=[0, 6, 10, 20, 99])[0] / len(d)
    np.testing.assert_allclose(bands, [0.42, 0.34, 0.20, 0.04], atol=0.03)
    capped = sample_diameters(np.random.default_rng(1), 2000, max_mm=12.0)
    assert capped.max() <= 12.0 and capped.min() >= 3.25
    assert np.mean(capped < 6) == pytest.approx(0.42 / diameter_cdf(12.0), abs=0.04)
    with pytest.raises(ValueError, match="below LUNA16's smallest nodule"):
        sample_diameters(np.random.default_rng(0), 1, max_mm=2.0)


def _synthetic_nodule_diameters(n_scans: int) -> np.ndarray:
    from nodulekit.data.synthetic.anatomy import sample_anatomy
    from nodulekit.data.synthetic.geometry import sample_grid
    from nodulekit.data.synthetic.nodules import NODULE_KINDS, sample_findings

    out = []
    for i in range(n_scans):
        rng = np.random.default_rng([7, i])
        grid = sample_grid(rng, "small")
        found = sample_findings(rng, grid, sample_anatomy(rng, grid).hu, 4)
        out += [f.diameter_mm for f in found if f.kind in NODULE_KINDS]
    return np.array(out)


def test_drawn_nodules_match_the_summary_ks_at_most_025():
    from scipy import stats

    from nodulekit.data.synthetic.diameters import diameter_cdf

    d = _synthetic_nodule_diameters(40)
    assert len(d) >= 100
    assert stats.kstest(d, diameter_cdf).statistic <= 0.25
    assert np.median(d) < 8.0 and np.mean(d < 6) > 0.3


@pytest.mark.slow
def test_written_nodules_match_luna16_annotations_ks_at_most_025(tmp_path, sample_dir):
    """Two-sample KS distance between a written set's annotations.csv and LUNA16's."""
    import pandas as pd
    from scipy import stats

    real = next(sample_dir.rglob("annotations.csv"), None)
    if real is None:
        pytest.skip(f"no annotations.csv under {sample_dir}")
    root = make_synthetic_luna16(
        tmp_path / "s",
        n_scans=12,
        size="small",
        nodules_per_scan=(9, 9),
        nodule_free_fraction=0,
        workers=2,
        progress=False,
    )
    synthetic = pd.read_csv(root / "annotations.csv")["diameter_mm"]
    assert len(synthetic) >= 100
    distance = stats.ks_2samp(synthetic, pd.read_csv(real)["diameter_mm"]).statistic
    assert distance <= 0.25, f"KS distance {distance:.3f} over {len(synthetic)} nodules"


def test_a_third_of_the_scans_have_no_nodule(tmp_path):
    from nodulekit.data.synthetic.generator import _nodule_free

    free = [i for i in range(30) if _nodule_free(i, 10, 1 / 3)]
    assert free == list(range(10, 20))  # 10 of 30: one in each subset of three scans
    assert sum(_nodule_free(i, 10, 1 / 3) for i in range(90)) == 30
    assert not any(_nodule_free(i, 10, 1 / 3) for i in range(10))  # each subset keeps nodules
    assert not any(_nodule_free(i, 10, 0.0) for i in range(30))
    root = make_synthetic_luna16(
        tmp_path / "s", n_scans=3, n_subsets=1, size="tiny", progress=False
    )
    uids = (root / "seriesuids.csv").read_text(encoding="utf-8").split()
    with_nodules = {r["seriesuid"] for r in _rows(root / "annotations.csv")}
    (empty,) = [u for u in uids if u not in with_nodules]
    assert empty == synthetic_uid(0, 1)
    assert not read_scan(root / "seg-nodules-synthetic" / f"{empty}.mhd").array.any()
    cands = [r for r in _rows(root / "candidates_V2.csv") if r["seriesuid"] == empty]
    assert len(cands) > 60 and all(r["class"] == "0" for r in cands)
    meta = json.loads((root / "synthetic.json").read_text(encoding="utf-8"))
    assert meta["counts"]["scans_without_nodules"] == 1
    assert meta["parameters"]["nodule_free_fraction"] == pytest.approx(1 / 3, abs=1e-6)
    with pytest.raises(ValueError, match="nodule_free_fraction must be a number in"):
        make_synthetic_luna16(tmp_path / "bad", nodule_free_fraction=1.0, size="tiny")


def test_vessel_crossings_are_found_between_unrelated_vessels_only():
    from nodulekit.data.synthetic.vessels import VesselTree, vessel_crossings

    p0 = np.array([[0, 0, 0], [-2, -10, 3], [10, 0, 0], [0, 40, 0]], float)
    p1 = np.array([[10, 0, 0], [-2, 10, 3], [20, 5, 0], [0, 60, 0]], float)
    r = np.full(4, 2.0)
    # 0 and 2 are parent and child (they touch, but branch from each other); 1 passes 3 mm
    # above 0's start with radii 2 + 2 (a crossing near (-1, 0, 1.5)); 3 is far from all
    tree = VesselTree(p0, p1, r, r, np.array([True, False, False, False]))
    found = vessel_crossings(tree)
    assert found.shape == (1, 3)
    np.testing.assert_allclose(found[0], [-1.5, 0.0, 1.5], atol=1.0)
    tree.p0[1] += [0, 0, 5.0]  # now 8 mm apart: no longer touching
    tree.p1[1] += [0, 0, 5.0]
    assert vessel_crossings(tree).shape == (0, 3)
