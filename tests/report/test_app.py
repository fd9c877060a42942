"""`nodulekit app`: what it serves (a demo folder or a LUNA16 root), how (Voilà on 127.0.0.1,
sources stripped), and the page's widget driven from Python (the browser test drives it in
Chromium: tests/browser/test_app.py)."""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app
from nodulekit.errors import NodulekitError
from nodulekit.report.app import NOTEBOOK, resolve_inputs, voila_command


def test_a_demo_folder_gives_its_data_and_best_checkpoint(tiny, tmp_path):
    demo = tmp_path / "demo"
    shutil.copytree(tiny.root, demo / "data")
    (demo / "run").mkdir()
    shutil.copyfile(tiny.checkpoint, demo / "run" / "best.pt")
    inputs = resolve_inputs(demo, None)
    assert inputs.data == (demo / "data").resolve()
    assert inputs.checkpoint == (demo / "run" / "best.pt").resolve()
    assert resolve_inputs(tiny.root, tiny.checkpoint).data == tiny.root.resolve()


def test_what_the_app_cannot_serve_is_named(tiny, tmp_path):
    with pytest.raises(NodulekitError, match="neither a LUNA16 root"):
        resolve_inputs(tmp_path, None)
    with pytest.raises(NodulekitError, match="no checkpoint there; give --checkpoint"):
        resolve_inputs(tiny.root, None)
    result = CliRunner().invoke(app, ["app", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no such folder" in result.output


def test_voila_serves_this_machine_only_and_shows_no_code():
    command = voila_command("127.0.0.1", 8866)
    assert "--Voila.ip=127.0.0.1" in command and "--port=8866" in command
    assert "--strip_sources=True" in command and "--no-browser" in command
    help_text = CliRunner().invoke(app, ["app", "--help"])
    assert help_text.exit_code == 0 and "127.0.0.1" in help_text.output


def test_the_notebook_only_calls_the_package():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert len(code) == 1 and not code[0]["outputs"]
    source = "".join(code[0]["source"])
    assert "ReportApp.from_environment()" in source and len(source.splitlines()) <= 3


def test_a_finding_click_moves_the_scan_to_its_slice(tiny, tmp_path):
    from nodulekit.widgets.report_app import ReportApp

    page = ReportApp(tiny.root, tiny.checkpoint, reports=tmp_path, top=5, check=False,
                     device="cpu")  # fmt: skip
    assert len(page.finding_list.options) == 5 and page.finding_list.value == 0
    assert page.finding_list.options[0][0].startswith("1. p=")
    scan = tiny.scan  # identity direction: slice = (z - origin z) / spacing z
    slices = np.rint((page.findings["coordZ"] - scan.origin[2]) / scan.spacing[2]).astype(int)
    assert page.scan_slice.value == slices[0]
    k = int(np.flatnonzero(slices != slices[0])[0])
    before = page.scan_image.value
    page.finding_list.value = k
    assert page.scan_slice.value == slices[k]
    assert page.explorer.current == k and page.scan_image.value != before
    assert "Not checked" in page.explorer.trust.value
    path = page.make_report()
    assert path.parent == tmp_path and path.suffix == ".html"
    href = page.download.value.split('href="', 1)[1].split('"', 1)[0]
    assert base64.b64decode(href.split(",", 1)[1]) == path.read_bytes()
