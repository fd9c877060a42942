"""The per-scan HTML report: its findings, pictures, trust status, figures, escaping, privacy."""

from __future__ import annotations

import base64
import html
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app
from nodulekit.data import Scan
from nodulekit.explain.sanity import STATUS_FAILED, STATUS_PASSED, STATUS_UNCHECKED
from tests.privacy_helpers import find_in_tree, make_identified_dicom_series
from tests.report.conftest import tiny_checkpoint

PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def findings_rows(text: str) -> list[list[str]]:
    """The cells of the findings table's body rows."""
    section = text.split('id="findings-most-probable-first"', 1)[1].split("</table>", 1)[0]
    body = section.split("<tbody>", 1)[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("</tr>") if "<td" in row]


def test_findings_are_ranked_with_place_side_size_and_probability(built):
    rows = findings_rows(built.html)
    table = built.result.findings
    assert len(rows) == len(table) == 5
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
    probabilities = [float(r[5]) for r in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    first = table.iloc[0]
    assert rows[0][1] == f"{first.coordX:.1f}, {first.coordY:.1f}, {first.coordZ:.1f}"
    assert all(r[2] in ("left", "right", "near the midline") for r in rows)
    assert all(r[3] == "lobe not determined" for r in rows)  # no lobe map given
    assert all(float(r[4]) > 0 for r in rows)  # the blob scale, said so below the table
    assert "blob detector&#x27;s scale" in built.html
    assert all(r[6] == ("yes" if float(r[5]) >= 0.42 else "no") for r in rows)  # validation's


def test_images_are_embedded_and_nothing_is_fetched(built):
    images = PNG.findall(built.html)
    # per explained finding: 3 whole-scan planes, crop without and with the map, colour bar
    assert len(images) == 2 * 6
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    without_images = PNG.sub("", built.html)
    for remote in ("http://", "https://", "<script", "<link", "@import", "<iframe"):
        assert remote not in without_images.lower()
    assert 'id="finding-1"' in built.html and 'id="finding-2"' in built.html


def test_trust_status_is_told_in_words_beside_the_map(built):
    assert built.result.trust_status in (STATUS_PASSED, STATUS_FAILED)  # the check ran
    assert built.html.count(html.escape(built.result.trust_status)) == 2  # beside each map
    assert "Can this heat map be trusted?" in built.html


def test_model_figures_come_with_their_intervals_and_sources(built):
    text = built.html
    assert "0.613" in text and "0.501 – 0.702 (95%)" in text  # CPM from evaluation/metrics.json
    assert "0.667" in text and "0.512 – 0.801 (95%)" in text  # sensitivity at 1 FP/scan
    assert "0.901" in text and "0.850 – 0.943 (95%)" in text  # candidate AUC
    assert "0.877" in text  # the run's held-out test AUC, no interval there
    assert "chosen on validation" in text
    # per-candidate figures say so: LUNA16 lists several candidates per nodule
    assert "held-out test candidate recall at threshold" in text
    assert "held-out test sensitivity" not in text
    assert "f00dfeedc0ffee12" in text and "luna16-synthetic" in text  # the data it learned
    assert "Research and teaching software, not a medical device" in text
    assert "that a finding is cancer" in text


def test_without_run_files_figures_are_not_available_never_invented(tiny, tmp_path):
    from nodulekit.report import build_report

    bare = tiny_checkpoint(tmp_path / "run")
    (tmp_path / "run" / "best.pt.sha256").unlink()  # an old checkpoint without its checksum
    result = build_report(tiny.scan, checkpoint=bare, out=tmp_path / "r.html", top=3,
                          explained=1, sanity=False, device="cpu")  # fmt: skip
    text = result.path.read_text(encoding="utf-8")
    assert "LUNA16 CPM" not in text and "held-out test" not in text
    assert "validation ROC AUC (best epoch)" in text and "0.812" in text
    assert text.count("not available") >= 1
    assert result.trust_status == STATUS_UNCHECKED
    assert html.escape(STATUS_UNCHECKED) in text


def test_values_from_files_are_escaped(tiny, tmp_path):
    from nodulekit.report import build_report

    evil = "<img src=x onerror=alert(1)>"
    checkpoint = tiny_checkpoint(tmp_path / "run", data=f"/data/{evil}")
    predictions = pd.DataFrame({"seriesuid": [tiny.uid] * 2, "coordX": [0.0, 5.0],
                                "coordY": [0.0, 5.0], "coordZ": [tiny.scan.origin[2] + 40] * 2,
                                "probability": [0.2, 0.9]})  # fmt: skip
    result = build_report(tiny.scan, checkpoint=checkpoint, out=tmp_path / "r.html",
                          predictions=predictions, explained=0, device="cpu")  # fmt: skip
    text = result.path.read_text(encoding="utf-8")
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert result.findings["probability"].tolist() == [0.9, 0.2]  # ranked, from the table
    assert "Findings, most probable first" in text and "No finding to show" in text


def test_predictions_of_another_scan_are_refused(tiny, tmp_path):
    from nodulekit.errors import NodulekitError
    from nodulekit.report import build_report

    other = pd.DataFrame({"seriesuid": ["1.2.3", "4.5.6"], "coordX": [0.0, 1.0], "coordY": [0.0, 1.0],
                          "coordZ": [0.0, 1.0], "probability": [0.5, 0.4]})  # fmt: skip
    with pytest.raises(NodulekitError, match="no prediction for this scan's series"):
        build_report(tiny.scan, checkpoint=tiny.checkpoint, out=tmp_path / "r.html",
                     predictions=other, device="cpu")  # fmt: skip
    assert not (tmp_path / "r.html").exists()


def test_side_is_read_against_the_body_midline_in_lps():
    from nodulekit.report.anatomy import lung_side

    array = np.full((3, 20, 60), -1000, np.int16)
    array[:, 4:16, 10:51] = 0  # the body spans columns 10..50: midline at column 30
    scan = Scan(array, (100.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # x = 100 + column
    assert lung_side(scan, (145.0, 10.0, 1.0)) == "left"  # +x is the patient's left
    assert lung_side(scan, (115.0, 10.0, 1.0)) == "right"
    assert lung_side(scan, (133.0, 10.0, 1.0)) == "near the midline"
    assert lung_side(scan, (145.0, 10.0, 9.0)) == "side not determined"  # outside the scan
    # the same body stored right-to-left (x axis flipped): the same world answers
    flipped = Scan(array[:, :, ::-1].copy(), (160.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                   direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))  # fmt: skip
    assert lung_side(flipped, (145.0, 10.0, 1.0)) == "left"
    assert lung_side(flipped, (115.0, 10.0, 1.0)) == "right"


def test_lobe_only_from_a_lobe_map():
    from nodulekit.data.mask import Mask
    from nodulekit.report.anatomy import lobe_at

    labels = np.zeros((2, 4, 4), np.uint8)
    labels[:, :, 2:] = 4
    lobes = Mask(labels, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert lobe_at(lobes, (3.0, 1.0, 1.0)) == "right middle lobe"
    assert lobe_at(lobes, (0.0, 1.0, 1.0)) == "lobe not determined"  # label 0
    assert lobe_at(lobes, (30.0, 1.0, 1.0)) == "lobe not determined"  # outside the map
    assert lobe_at(None, (3.0, 1.0, 1.0)) == "lobe not determined"


def test_a_classifier_is_refused_as_segmentation(tiny):
    from nodulekit.errors import CheckpointError
    from nodulekit.report.findings import load_segmenter

    with pytest.raises(CheckpointError, match="not a U-Net"):
        load_segmenter(tiny.checkpoint)


def test_report_command_on_identified_dicom_names_no_one(tmp_path, tiny):
    series = make_identified_dicom_series(tmp_path / "dicom", n_slices=24, shape_yx=(64, 64))
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(
        app, ["report", str(series.folder), "--checkpoint", str(tiny.checkpoint),
              "--out", str(out), "--device", "cpu", "--explained", "1", "--no-sanity"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and out.is_file()
    text = out.read_text(encoding="utf-8")
    assert "series UID withheld" in text and series.uids["SeriesInstanceUID"] not in text
    assert find_in_tree(series.folder, series.needles)  # the search does find them in the input
    assert find_in_tree(out.parent, series.needles) == []


def test_report_command_errors_are_one_line(tmp_path, tiny):
    runner = CliRunner()
    wrong = runner.invoke(app, ["report", str(tiny.path), "--checkpoint", str(tiny.checkpoint),
                                "--out", str(tmp_path / "r.pdf")])  # fmt: skip
    assert wrong.exit_code == 2 and "end the name with .html" in wrong.output
    missing = runner.invoke(app, ["report", str(tiny.path), "--checkpoint",
                                  str(tmp_path / "none.pt"), "--out", str(tmp_path / "r.html")])  # fmt: skip
    assert missing.exit_code == 2
    assert "none.pt does not exist" in missing.output and "Traceback" not in missing.output


def test_importing_the_report_layer_stays_cheap():
    import subprocess
    import sys

    code = ("import sys, nodulekit.report; print(sorted(m for m in ('torch', 'ipywidgets', "
            "'matplotlib', 'voila') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_report_command_takes_a_predictions_file(tiny, tmp_path):
    marks = tmp_path / "marks.csv"
    x, y, z = tiny.scan.voxel_to_world(np.array(tiny.scan.shape) / 2).ravel()
    pd.DataFrame({"seriesuid": [tiny.uid, tiny.uid], "coordX": [x, x + 20],
                  "coordY": [y] * 2, "coordZ": [z] * 2,
                  "probability": [0.25, 0.75], "diameter_mm": [8.5, 3.0]}).to_csv(marks, index=False)  # fmt: skip
    out = tmp_path / "r.html"
    result = CliRunner().invoke(
        app, ["report", str(tiny.path), "--checkpoint", str(tiny.checkpoint), "--out", str(out),
              "--predictions", str(marks), "--explained", "0", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = findings_rows(out.read_text(encoding="utf-8"))
    assert [(r[4], r[5]) for r in rows] == [("3.0", "0.750"), ("8.5", "0.250")]
    assert "the predictions table&#x27;s diameter_mm column" in out.read_text(encoding="utf-8")
    unreadable = CliRunner().invoke(
        app, ["report", str(tmp_path / "none.mhd"), "--checkpoint", str(tiny.checkpoint),
              "--out", str(out)],
    )  # fmt: skip
    assert unreadable.exit_code == 2 and "none.mhd" in unreadable.output
