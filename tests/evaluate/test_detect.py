"""Full-scan detection: blob candidates find synthetic nodules; `nodulekit detect` on DICOM."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app
from nodulekit.evaluate.detect import _merge, candidate_points
from tests.privacy_helpers import find_in_tree, make_identified_dicom_series


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from nodulekit.data import make_synthetic_luna16

    return make_synthetic_luna16(
        tmp_path_factory.mktemp("detect") / "data", n_scans=2, size="tiny", progress=False
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from nodulekit.models import build_model
    from nodulekit.train.checkpoint import save_checkpoint

    config = {"model": "default", "model_options": {"channels": [4, 8]}, "crop_size_mm": 32.0,
              "crop_shape": [12, 12, 12]}  # fmt: skip
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    model = build_model("default", channels=[4, 8])
    return save_checkpoint(path, model=model, epoch=0, config=config)


def test_merge_keeps_the_strongest_of_close_marks():
    points = np.array([[0, 0, 0], [3, 0, 0], [20, 0, 0], [21, 0, 0.5]], float)
    assert _merge(points, np.array([1.0, 1.0, 12.0, 1.0]), 5.0).tolist() == [0, 2]


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
