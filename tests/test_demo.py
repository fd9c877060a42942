"""The demo end to end on a tiny synthetic set, and that nothing it writes names a patient."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app
from nodulekit.data import Luna16, make_synthetic_luna16, read_scan, write_scan
from nodulekit.demo import DEMO_EPOCHS, DEMO_SCANS, demo_splits, held_out_subsets, run_demo
from tests.privacy_helpers import find_in_tree, make_identified_dicom_series

TINY_TRAINING = {"samples_per_epoch": 64, "batch_size": 16, "crop_shape": (16, 16, 16)}
TINY_DEMO = {
    "n_scans": 8,  # 8 subsets of one scan: two validate, two test (`held_out_subsets`)
    "size": "tiny",
    "epochs": 1,
    "threads": 1,
    "train_options": TINY_TRAINING,
    "n_resamples": 20,
    "explain_top": 3,
}


@pytest.mark.slow
def test_demo_writes_everything_under_its_folder_and_reuses_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    result = run_demo("out", **TINY_DEMO, echo=lines.append)
    assert "epoch 1/1" in capsys.readouterr().out  # one progress line per epoch
    out = tmp_path / "out"
    assert result.out_dir == out
    for path in (
        "run/metrics.csv",
        "run/best.pt",
        "run/config.json",
        "figures/training_curves.png",
        "figures/froc.png",
        "figures/explanations.png",
        "evaluation/predictions.csv",
        "evaluation/froc.csv",
        "summary.json",
        "data/annotations.csv",
    ):
        assert (out / path).is_file(), path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing outside --out
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert list(summary["seconds"]) == [
        "synthesise", "cache", "train", "evaluate", "explain", "report", "summary"
    ]  # fmt: skip
    assert list(summary["cpu_seconds"]) == list(summary["seconds"])
    assert summary["cpu_seconds"]["train"] > 0.0
    assert 0.0 <= summary["test_metrics"]["auc"] <= 1.0
    # the report: one HTML file under out/report, for a held-out (test subset) scan
    reports = list((out / "report").glob("*.html"))
    assert reports == [result.report]
    test_uids = Luna16(out / "data", warn_missing=False).scans.query("subset >= 6")["seriesuid"]
    assert any(uid in result.report.name for uid in test_uids)
    assert "not a medical device" in result.report.read_text(encoding="utf-8")
    predictions = pd.read_csv(out / "evaluation" / "predictions.csv", dtype={"seriesuid": str})
    assert set(predictions["seriesuid"]) == set(test_uids)  # only the held-out scans scored
    text = "\n".join(lines)
    assert "validating on subsets 4, 5, testing on 6, 7" in text
    assert "held-out test series: ROC AUC" in text and str(out / "run" / "best.pt") in text
    assert f"held-out FROC: CPM {summary['cpm']:.3f}" in text
    assert "from 20 series-bootstrap resamples" in text
    assert f"top 3 held-out findings with gradcam; trust: {summary['trust_status']}" in text
    assert summary["trust_status"] and isinstance(summary["trust_passed"], bool)
    assert f"report:     {result.report}" in text
    assert "chosen on validation: recall" in text  # test figures at validation's threshold
    assert "recall by nodule size: < 6 mm" in text
    assert summary["threshold_source"] == "validation"
    evaluated = json.loads((out / "evaluation" / "metrics.json").read_text(encoding="utf-8"))
    assert evaluated["threshold_source"] == "validation"  # one operating point: validation's
    assert evaluated["threshold"] == pytest.approx(summary["test_metrics"]["threshold"])
    limit = f"above the validation threshold ({evaluated['threshold']:.3f})"
    assert limit in result.report.read_text(encoding="utf-8")  # the report's, too
    assert f"nodules:    {summary['nodule_summary']}" in text and "nodules found" in text
    assert set(summary["test_metrics"]) >= {"threshold", "recall_best", "f1_best"}
    config = json.loads((out / "run" / "config.json").read_text(encoding="utf-8"))
    assert (config["val_subsets"], config["test_subsets"]) == ([4, 5], [6, 7])  # 2 + 2 subsets
    again: list[str] = []
    options = {**TINY_DEMO, "explain_top": 0}  # the same folder again, no explanation stage
    run_demo("out", **options, quiet=True, echo=again.append)
    assert "synthetic data: reusing" in again[0]
    assert not any("explaining" in line or "explained:" in line for line in again)
    assert "epoch 1/1" not in capsys.readouterr().out  # --quiet: no progress line


def test_the_demo_holds_out_two_subsets_each_for_validation_and_test_on_its_synthetic_set(
    tmp_path,
):
    # 20 scans, 2 per subset: one subset would validate on 2 scans and test on 2 more
    root = make_synthetic_luna16(tmp_path / "d", n_scans=20, size="tiny", progress=False)
    assert demo_splits(root) == {"val_subsets": (6, 7), "test_subsets": (8, 9)}
    # a subset whose scans hold no nodule neither validates nor tests: it trains
    candidates = pd.read_csv(root / "candidates_V2.csv", dtype={"seriesuid": str})
    in_9 = candidates["seriesuid"].isin(Luna16(root).scans.query("subset == 9")["seriesuid"])
    candidates[~(in_9 & (candidates["class"] == 1))].to_csv(root / "candidates_V2.csv", index=False)
    assert demo_splits(root) == {"val_subsets": (5, 6), "test_subsets": (7, 8)}


def test_held_out_subsets_keep_one_subset_each_when_subsets_are_big_or_few():
    assert held_out_subsets({s: 6 for s in range(10)}) == ((6, 7), (8, 9))
    assert held_out_subsets({s: 12 for s in range(10)}) == ((8,), (9,))  # 12 scans each
    assert held_out_subsets({s: 3 for s in range(7)}) == ((5,), (6,))  # 4 would leave 3
    assert held_out_subsets({0: 1, 4: 2, 9: 3}) == ((4,), (9,))
    with pytest.raises(ValueError, match="three or more subsets"):
        held_out_subsets({0: 5, 1: 5})


def test_the_command_and_the_function_make_the_same_demo_set():
    import inspect

    from nodulekit.cli import demo

    assert DEMO_SCANS == 60  # 12 scans in each of validation and test (benchmarks/demo_splits.py)
    assert inspect.signature(run_demo).parameters["n_scans"].default == DEMO_SCANS
    assert inspect.signature(demo).parameters["scans"].default == DEMO_SCANS
    assert inspect.signature(run_demo).parameters["epochs"].default == DEMO_EPOCHS == 14
    assert inspect.signature(demo).parameters["epochs"].default == DEMO_EPOCHS


def test_demo_refuses_a_root_with_too_few_subsets(tmp_path):
    root = make_synthetic_luna16(tmp_path / "d", n_scans=2, size="tiny", progress=False)
    result = CliRunner().invoke(app, ["demo", "--data", str(root), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "needs scans in at least 3 subsets" in result.output


@pytest.mark.slow
def test_no_output_of_the_demo_pipeline_names_the_patient(tmp_path):
    """A name and a birth date planted in DICOM never reach a file nodulekit writes."""
    root = make_synthetic_luna16(tmp_path / "data", n_scans=4, size="tiny", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        luna = Luna16(root)
    # replace a held-out (last subset) scan by a CT series read from identified DICOM files:
    # the demo evaluates, explains and reports on it
    held_out = luna.scans[luna.scans["subset"] == luna.scans["subset"].max()]
    uid = held_out["seriesuid"].iloc[0]
    series = make_identified_dicom_series(
        tmp_path / "dicom",
        n_slices=24,
        patient_name="Doe^Jane",
        birth_date="19450317",
        shape_yx=(64, 64),
    )
    scan = read_scan(series.folder)
    assert scan.metadata["identifying_tags"]  # the files do carry identifiers
    write_scan(scan.with_array(scan.array), luna.scan_path(uid))
    center = scan.voxel_to_world(np.array(scan.shape) / 2)
    candidates = pd.read_csv(root / "candidates_V2.csv", dtype={"seriesuid": str})
    candidates = candidates[candidates["seriesuid"] != uid]
    extra = pd.DataFrame(
        {
            "seriesuid": [uid] * 2,
            "coordX": [center[0]] * 2,
            "coordY": [center[1]] * 2,
            "coordZ": [center[2]] * 2,
            "class": [1, 0],
        }
    )
    pd.concat([candidates, extra]).to_csv(root / "candidates_V2.csv", index=False)

    out = tmp_path / "out"
    result = run_demo(out, data=root, epochs=1, threads=1, train_options=TINY_TRAINING,
                      n_resamples=10, explain_top=2, echo=lambda _: None)  # fmt: skip
    assert result.report is not None and uid in result.report.name  # the report covers it
    info = CliRunner().invoke(app, ["info", str(series.folder)])
    (out / "info.txt").write_text(info.output)
    assert "Doe^Jane" not in info.output
    assert find_in_tree(series.folder, series.needles)  # the search does find them in the input
    assert find_in_tree(out, series.needles) == []
    assert find_in_tree(root, series.needles) == []  # the data root holds the crop cache


def test_demo_refuses_an_out_folder_it_cannot_write_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["demo", "--out", str(blocker / "demo")])
    assert result.exit_code == 2
    assert f"--out {blocker / 'demo'}: {blocker} is not a folder you can write" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
