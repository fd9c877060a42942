"""Full-scan detection: blob candidates find synthetic nodules; `nodulekit detect` on DICOM."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app
from nodulekit.evaluate.detect import _merge, blobness, candidate_points, hessian_at, rank_blobs
from tests.privacy_helpers import find_in_tree, make_identified_dicom_series


def test_merge_keeps_the_strongest_of_close_marks():
    points = np.array([[0, 0, 0], [3, 0, 0], [20, 0, 0], [21, 0, 0.5]], float)
    assert _merge(points, np.array([1.0, 1.0, 12.0, 1.0]), 5.0).tolist() == [0, 2]


def _sphere_and_tube(sphere_hu: float, tube_hu: float, radius_mm: float = 4.0):
    """-850 HU lung on a 1.25 mm grid: a sphere (centre z, y, x = 20, 12, 32 voxels) and a
    tube along x (axis z, y = 20, 36) of the same radius."""
    z, y, x = np.mgrid[:40, :48, :64] * 1.25
    volume = np.full(z.shape, -850.0, np.float32)
    volume[(z - 25) ** 2 + (y - 15) ** 2 + (x - 40) ** 2 <= radius_mm**2] = sphere_hu
    volume[(z - 25) ** 2 + (y - 45) ** 2 <= radius_mm**2] = tube_hu
    return volume, np.ones(volume.shape, bool)


def _best_scores(ranking: str, sphere_hu: float, tube_hu: float) -> tuple[float, float, int]:
    """Best score near the sphere, best score on the tube, rank of the sphere's first mark."""
    volume, mask = _sphere_and_tube(sphere_hu, tube_hu)
    index, _, score = rank_blobs(volume, mask, ranking=ranking)
    on_sphere = np.linalg.norm(index - [20, 12, 32], axis=1) <= 2
    on_tube = np.linalg.norm(index[:, :2] - [20, 36], axis=1) <= 4
    return score[on_sphere].max(), score[on_tube].max(), int(np.flatnonzero(on_sphere)[0])


@pytest.mark.parametrize("sphere_hu", [0.0, -500.0])  # solid; ground glass beside a vessel
def test_a_sphere_ranks_far_above_a_tube_of_the_same_radius(sphere_hu):
    sphere, tube, rank = _best_scores("hessian", sphere_hu, tube_hu=0.0)
    assert rank == 0
    assert tube < 0.05 * sphere  # a vessel is pushed far down, not just below
    # the LoG response alone ranks the vessel nearly as high as the blob
    sphere, tube, _ = _best_scores("log", sphere_hu, tube_hu=0.0)
    assert tube > 0.5 * sphere


def test_hessian_at_points_equals_scipy_gaussian_derivatives():
    from scipy.ndimage import gaussian_filter

    volume = gaussian_filter(np.random.default_rng(0).random((20, 21, 22)), 2)
    points = np.array([[10, 10, 10], [1, 2, 20]])
    hessian = hessian_at(volume, points, 1.5)
    for (a, b), order in {(0, 0): (2, 0, 0), (0, 1): (1, 1, 0), (1, 2): (0, 1, 1)}.items():
        expected = gaussian_filter(volume, 1.5, order=order, mode="nearest", truncate=3.0)
        np.testing.assert_allclose(hessian[:, a, b], expected[tuple(points.T)], atol=1e-12)


def test_blobness_of_a_gaussian_blob_and_a_plate():
    z, y, x = np.mgrid[:21, :21, :21] - 10.0
    blob = np.exp(-(x**2 + y**2 + z**2) / 8.0)
    plate = np.exp(-(z**2) / 8.0)
    centre = np.array([[10, 10, 10]])
    assert blobness(blob, centre, 2.0)[0] > 0.1
    assert blobness(plate, centre, 2.0)[0] < 0.01 * blobness(blob, centre, 2.0)[0]
    assert blobness(-blob, centre, 2.0)[0] == 0.0  # a dark hole is no nodule


@pytest.mark.slow
def test_candidates_find_every_synthetic_nodule(tiny_root):
    from nodulekit.data import Luna16

    luna = Luna16(tiny_root)
    found = total = 0
    for uid in luna.scans["seriesuid"]:
        points = candidate_points(luna.load(uid), max_candidates=200)
        assert len(points) <= 200
        xyz = points[["coordX", "coordY", "coordZ"]].to_numpy()
        for nodule in luna.annotations_for(uid).itertuples():
            d = np.linalg.norm(xyz - [nodule.coordX, nodule.coordY, nodule.coordZ], axis=1)
            found += bool((d < nodule.diameter_mm / 2).any())
            total += 1
    assert total > 0 and found == total


def test_detect_a_dicom_folder_writes_no_patient_data(tmp_path, checkpoint):
    series = make_identified_dicom_series(tmp_path / "dicom", n_slices=24, shape_yx=(64, 64))
    out = tmp_path / "out" / "marks.csv"
    result = CliRunner().invoke(
        app, ["detect", str(series.folder), "--checkpoint", str(checkpoint), "--out", str(out),
              "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    marks = pd.read_csv(out)
    assert list(marks.columns) == ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
    assert len(marks) >= 1  # zero marks would make the privacy check below vacuous
    text = out.read_text(encoding="utf-8")
    assert not [needle for needle in series.needles if needle and needle in text]
    assert find_in_tree(out.parent, series.needles) == []


def test_detect_dataset_merges_and_resumes(tiny_root, checkpoint, tmp_path, monkeypatch):
    import nodulekit.evaluate.detect as detect_module
    from nodulekit.evaluate.detect_all import detect_dataset

    calls = []

    def fake_detect(scan, model, *, seriesuid, **kwargs):
        calls.append(seriesuid)
        return pd.DataFrame({"seriesuid": [seriesuid], "coordX": [1.0], "coordY": [2.0],
                             "coordZ": [3.0], "probability": [0.5]})  # fmt: skip

    monkeypatch.setattr(detect_module, "detect_scan", fake_detect)
    out = tmp_path / "all.csv"
    detect_dataset(tiny_root, checkpoint, out, device="cpu")
    merged = pd.read_csv(out, dtype={"seriesuid": str})
    assert len(calls) == 2 and sorted(merged["seriesuid"]) == sorted(calls)
    # a run that died after the first scan: only the missing scan is done again
    (tmp_path / "all.csv.parts" / f"{calls[1]}.csv").unlink()
    calls.clear()
    detect_dataset(tiny_root, checkpoint, out, device="cpu")
    assert len(calls) == 1 and len(pd.read_csv(out)) == 2


@pytest.mark.slow
def test_the_real_scans_23_mm_nodule_is_a_top_5_candidate(sample_dir):
    from nodulekit.data import Luna16

    luna = Luna16(sample_dir / "luna16-mini")
    uid = luna.scans["seriesuid"].iloc[0]
    nodule = luna.annotations_for(uid).iloc[0]
    points = candidate_points(luna.load(uid), max_candidates=200)
    xyz = points[["coordX", "coordY", "coordZ"]].to_numpy()
    distance = np.linalg.norm(xyz - nodule[["coordX", "coordY", "coordZ"]].to_numpy(float), axis=1)
    assert np.flatnonzero(distance < nodule["diameter_mm"] / 2)[0] < 5
