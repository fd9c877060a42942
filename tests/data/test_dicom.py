"""DICOM series reading: a broken file in a series is named, not reported as a slice gap."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodulekit.data import read_scan
from nodulekit.data.dicom import check_dicom_file
from nodulekit.errors import ScanReadError
from tests.privacy_helpers import make_identified_dicom_series


def test_a_truncated_slice_is_named_with_what_is_wrong(tmp_path: Path) -> None:
    series = make_identified_dicom_series(tmp_path / "ct", n_slices=5, shape_yx=(32, 32))
    data = series.files[2].read_bytes()
    series.files[2].write_bytes(data[: len(data) - 1250])
    with pytest.raises(ScanReadError) as caught:
        read_scan(tmp_path / "ct")
    message = str(caught.value)
    assert "IM0002.dcm" in message and "PixelData holds 798 bytes" in message
    assert "re-export or re-download" in message


def test_check_dicom_file_tells_complete_broken_and_foreign_files(tmp_path: Path) -> None:
    series = make_identified_dicom_series(tmp_path / "ct", n_slices=3)
    ds, problem = check_dicom_file(series.files[0])
    assert problem is None and ds.Rows == 12
    series.files[1].write_bytes(series.files[1].read_bytes()[:150])  # cut in the file meta
    ds, problem = check_dicom_file(series.files[1])
    assert "file meta information stops before TransferSyntaxUID: truncated" in problem
    series.files[1].write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)  # garbage after DICM
    _ds, problem = check_dicom_file(series.files[1])
    assert problem is not None and "truncated" in problem
    series.files[2].write_bytes(series.files[2].read_bytes()[:700])  # cut before the pixels
    _ds, problem = check_dicom_file(series.files[2])
    assert "CT Image Storage file without PixelData" in problem
    (tmp_path / "notes.txt").write_text("not DICOM")
    assert check_dicom_file(tmp_path / "notes.txt") == (None, None)


def test_a_truncated_end_slice_is_not_dropped_silently(tmp_path: Path) -> None:
    series = make_identified_dicom_series(tmp_path / "ct", n_slices=4, shape_yx=(32, 32))
    data = series.files[-1].read_bytes()
    series.files[-1].write_bytes(data[: len(data) - 100])  # no gap: the volume just ends early
    (tmp_path / "ct" / "notes.txt").write_text("not DICOM, not a problem")
    with pytest.raises(ScanReadError, match=r"IM0003\.dcm: PixelData holds 1948 bytes"):
        read_scan(tmp_path / "ct")
