"""The report on the real LIDC-IDRI-0001 scan (NODULEKIT_SAMPLE_DIR), read from its DICOM series:
the annotated 23 mm nodule's row, its side, and the same geometry as the LUNA16 .mhd."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.conftest import SAMPLE_UID

NODULE_XYZ_MM = (56.2, 86.3, -115.9)  # the LUNA16 annotation of this scan (23.4 mm)


@pytest.mark.slow
def test_real_dicom_report_places_the_annotated_nodule(sample_dir, tmp_path, tiny):
    from nodulekit.report import build_report

    series = sample_dir / "lidc-idri-dicom" / "LIDC-IDRI-0001"
    predictions = pd.DataFrame({"seriesuid": ["from-detect"], "coordX": [NODULE_XYZ_MM[0]],
                                "coordY": [NODULE_XYZ_MM[1]], "coordZ": [NODULE_XYZ_MM[2]],
                                "probability": [0.9], "diameter_mm": [23.4]})  # fmt: skip
    result = build_report(series, checkpoint=tiny.checkpoint, out=tmp_path / "r.html",
                          predictions=predictions, explained=1, sanity=False, device="cpu")  # fmt: skip
    row = result.findings.iloc[0]
    # x = +56 mm lies right of the body midline in the image array but on the patient's
    # LEFT (LPS: +x is the patient's left); nothing in a scan tells the lobe
    assert (row["side"], row["lobe"]) == ("left", "lobe not determined")
    assert row["diameter_source"] == "the predictions table's diameter_mm column"
    text = result.path.read_text(encoding="utf-8")
    assert "23.4" in text and len(re.findall("data:image/png;base64", text)) == 6
    # TCIA de-identified this series (no identifying tags), so the report names it by its UID;
    # only a series that is not de-identified has it withheld (test_report.py checks that)
    assert SAMPLE_UID in text and "series UID withheld" not in text
