"""De-identification of DICOM folders, and identifiers kept out of `read_scan`'s metadata."""

from __future__ import annotations

import csv
import stat
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app
from nodulekit.data import read_scan
from nodulekit.data.deid import SALT_ENV, deidentify_folder
from nodulekit.errors import DeidError, ScanReadError
from tests.privacy_helpers import find_in_tree, make_identified_dicom_series

SALT = "test-salt-0123456789abcdef"
OTHER_SALT = "another-salt-fedcba9876543210"


@pytest.fixture(autouse=True)
def _no_salt_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)


@pytest.fixture
def identified(tmp_path: Path):
    """Two patients: Jane (4 slices) and John (3 slices), in folders named after their IDs."""
    jane = make_identified_dicom_series(tmp_path / "in" / "PAT-0042-JD" / "ct")
    john = make_identified_dicom_series(
        tmp_path / "in" / "PAT-0077-JS",
        n_slices=3,
        patient_name="Smith^John",
        birth_date="19511224",
        patient_id="PAT-0077-JS",
        study_date="20230611",
        uid_root="1.2.826.0.1.3680043.10.5678",
        seed=1,
    )
    (tmp_path / "in" / "notes.txt").write_text("Doe^Jane's scans, see ward 7")
    return tmp_path / "in", jane, john


def _headers(folder: Path) -> list:
    import pydicom

    return [pydicom.dcmread(p) for p in sorted(folder.rglob("*.dcm"))]


def _by_series(headers: list) -> dict[int, list]:
    """Headers grouped by series and keyed by slice count: Jane's 4, John's 3."""
    groups: dict[str, list] = {}
    for ds in headers:
        groups.setdefault(ds.SeriesInstanceUID, []).append(ds)
    return {len(v): v for v in groups.values()}


def _days(yyyymmdd: str) -> int:
    return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])).toordinal()


def test_identifiers_are_gone_from_output_bytes_names_and_log(identified, tmp_path: Path) -> None:
    in_dir, jane, john = identified
    report = deidentify_folder(in_dir, tmp_path / "out", salt=SALT)
    assert (report.files_written, report.files_skipped) == (7, 1)
    assert (report.patients, report.series) == (2, 2)
    needles = [*jane.needles, *john.needles, *jane.uids.values(), *john.uids.values()]
    needles += ["Operator^Olivia", "CTROOM7", "Springfield", "ELSEWHERE_CT1", "ward 7"]
    assert find_in_tree(tmp_path / "out", needles) == []
    # the search itself works: it finds every planted value in the input
    found = {needle for _path, needle in find_in_tree(in_dir, needles)}
    assert found == set(needles)
    assert report.log_path == tmp_path / "out" / "deid_log.csv"
    assert SALT not in report.log_path.read_text(encoding="utf-8")
    assert "Doe^Jane" not in str(report)


def test_headers_are_cleaned_marked_and_private_tags_dropped(identified, tmp_path: Path) -> None:
    in_dir, _jane, _john = identified
    deidentify_folder(in_dir, tmp_path / "out", salt=SALT)
    headers = _headers(tmp_path / "out")
    assert len(headers) == 7
    for ds in headers:
        assert not any(elem.tag.is_private for elem in ds.iterall())
        for keyword in ("InstitutionName", "InstitutionAddress", "StationName", "PatientAddress"):
            assert keyword not in ds
        for keyword in ("DeviceSerialNumber", "OtherPatientIDs", "PatientComments"):
            assert keyword not in ds
        assert "SourceApplicationEntityTitle" not in ds.file_meta
        assert ds.AccessionNumber == "" and ds.ReferringPhysicianName == ""
        assert ds.PatientName == ds.PatientID
        assert str(ds.PatientID).startswith("NK-") and len(ds.PatientID) == 13
        assert ds.PatientIdentityRemoved == "YES"
        assert "113100" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
        assert (ds.PatientSex, ds.PatientAge) == ("F", "078Y")  # characteristics kept
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # registered UIDs kept
    assert len({ds.PatientID for ds in headers}) == 2


def test_uids_remapped_consistently_and_references_follow(identified, tmp_path: Path) -> None:
    in_dir, jane, _john = identified
    deidentify_folder(in_dir, tmp_path / "out", salt=SALT)
    by_series = _by_series(_headers(tmp_path / "out"))
    assert sorted(by_series) == [3, 4]
    for series in by_series.values():
        assert len({ds.StudyInstanceUID for ds in series}) == 1
        assert len({ds.FrameOfReferenceUID for ds in series}) == 1
        assert len({ds.SOPInstanceUID for ds in series}) == len(series)
        sop_by_number = {int(ds.InstanceNumber): ds.SOPInstanceUID for ds in series}
        for ds in series:
            assert ds.SeriesInstanceUID.startswith("2.25.") and len(ds.SeriesInstanceUID) <= 64
            if int(ds.InstanceNumber) > 1:  # slice k references slice k - 1
                ref = ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID
                assert ref == sop_by_number[int(ds.InstanceNumber) - 1]
    assert by_series[4][0].SeriesInstanceUID != jane.uids["SeriesInstanceUID"]


def _uids(folder: Path) -> list[tuple[str, str, str]]:
    return sorted(
        (ds.PatientID, ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in _headers(folder)
    )


def test_same_salt_same_uids_other_salt_different(identified, tmp_path: Path) -> None:
    in_dir, _jane, _john = identified
    deidentify_folder(in_dir, tmp_path / "a", salt=SALT)
    deidentify_folder(in_dir, tmp_path / "b", salt=SALT)
    deidentify_folder(in_dir, tmp_path / "c", salt=OTHER_SALT)
    report = deidentify_folder(in_dir, tmp_path / "d", random_salt=True)
    a, b, c, d = (_uids(tmp_path / x) for x in "abcd")
    assert a == b
    assert not set(a) & set(c) and not set(a) & set(d)
    assert not report.reproducible and "random salt" in str(report)
    assert {p.name for p in (tmp_path / "a").iterdir()} == {
        p.name for p in (tmp_path / "b").iterdir()
    }


def test_dates_shift_by_one_offset_per_patient(identified, tmp_path: Path) -> None:
    in_dir, _jane, _john = identified
    deidentify_folder(in_dir, tmp_path / "out", salt=SALT)
    by_series = _by_series(_headers(tmp_path / "out"))
    planted = {4: ("20240105", "19450317"), 3: ("20230611", "19511224")}
    shifts = {}
    for n_slices, (study, birth) in planted.items():
        for ds in by_series[n_slices]:
            shift = _days(ds.StudyDate) - _days(study)
            assert -3650 <= shift <= -1
            assert _days(ds.PatientBirthDate) - _days(birth) == shift  # interval preserved
            for keyword in ("SeriesDate", "AcquisitionDate", "ContentDate"):
                assert _days(getattr(ds, keyword)) - _days(study) == shift
            assert ds.StudyTime == "101500"  # times of day are kept
            shifts.setdefault(n_slices, set()).add(shift)
    assert all(len(v) == 1 for v in shifts.values())  # one offset per patient
    assert shifts[3] != shifts[4]  # (true for this salt; offsets differ per patient)


def test_pixels_and_geometry_untouched(identified, tmp_path: Path) -> None:
    in_dir, jane, _john = identified
    deidentify_folder(in_dir, tmp_path / "out", salt=SALT)
    before = read_scan(jane.folder)
    after = read_scan(Path(_by_series(_headers(tmp_path / "out"))[4][0].filename).parent)
    np.testing.assert_array_equal(after.array, before.array)
    np.testing.assert_array_equal(after.array, jane.array)
    assert after.origin == before.origin == jane.origin
    assert after.spacing == before.spacing == jane.spacing
    assert after.direction == before.direction


def test_log_lists_tags_and_actions_never_values(identified, tmp_path: Path) -> None:
    in_dir, jane, john = identified
    report = deidentify_folder(in_dir, tmp_path / "out", salt=SALT)
    with report.log_path.open() as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"file", "tag", "attribute", "action"}
    assert {r["action"] for r in rows} == {"removed", "emptied", "replaced", "shifted", "remapped"}
    jane_file = rows[0]["file"]
    mine = {(r["attribute"], r["action"]) for r in rows if r["file"] == jane_file}
    assert ("PatientName", "replaced") in mine and ("private tag", "removed") in mine
    assert ("StudyDate", "shifted") in mine and ("SeriesInstanceUID", "remapped") in mine
    assert len({r["file"] for r in rows}) == 7
    text = report.log_path.read_text(encoding="utf-8")
    for value in [*jane.needles, *john.needles, "20240105", "20230611", SALT]:
        assert value.lower() not in text.lower()
    mode = stat.S_IMODE(report.log_path.stat().st_mode)
    assert mode == 0o600


def test_output_is_private_to_its_owner(identified, tmp_path: Path) -> None:
    in_dir, _jane, _john = identified
    deidentify_folder(in_dir, tmp_path / "out", salt=SALT)
    paths = [tmp_path / "out", *(tmp_path / "out").rglob("*")]
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_refuses_unsafe_folders_and_missing_salt(identified, tmp_path: Path) -> None:
    in_dir, _jane, _john = identified
    with pytest.raises(DeidError, match="output folder is the input folder or inside it"):
        deidentify_folder(in_dir, in_dir, salt=SALT)
    with pytest.raises(DeidError, match="separate, new folder"):
        deidentify_folder(in_dir, in_dir / "deid", salt=SALT)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "old.txt").write_text("x")
    with pytest.raises(DeidError, match=r"not empty.*give another folder or empty this one"):
        deidentify_folder(in_dir, busy, salt=SALT)
    with pytest.raises(DeidError, match=r"no salt given.*secrets.token_hex.*NODULEKIT_DEID_SALT"):
        deidentify_folder(in_dir, tmp_path / "out")
    with pytest.raises(DeidError, match="at least 16 random characters"):
        deidentify_folder(in_dir, tmp_path / "out", salt="short")
    with pytest.raises(DeidError, match="no such folder"):
        deidentify_folder(tmp_path / "nowhere", tmp_path / "out", salt=SALT)
    assert not (tmp_path / "out").exists()  # nothing written on refusal


def test_salt_from_environment(identified, tmp_path: Path, monkeypatch) -> None:
    in_dir, _jane, _john = identified
    deidentify_folder(in_dir, tmp_path / "a", salt=SALT)
    monkeypatch.setenv(SALT_ENV, SALT)
    report = deidentify_folder(in_dir, tmp_path / "b")
    assert report.reproducible
    assert _uids(tmp_path / "a") == _uids(tmp_path / "b")


def test_cli(identified, tmp_path: Path) -> None:
    in_dir, _jane, _john = identified
    runner = CliRunner()
    result = runner.invoke(app, ["deid", str(in_dir), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no salt given" in result.output and "--random-salt" in result.output
    result = runner.invoke(app, ["deid", str(in_dir), str(tmp_path / "out")], env={SALT_ENV: SALT})
    assert result.exit_code == 0, result.output
    assert "de-identified 7 DICOM file(s) of 2 patient(s), 2 series" in result.output
    assert "skipped 1 file" in result.output
    assert "reproducible with the same salt" in result.output
    result = runner.invoke(app, ["deid", str(in_dir), str(tmp_path / "out"), "--salt", SALT])
    assert result.exit_code == 2 and "not empty" in result.output


def test_read_scan_keeps_identifiers_out_of_metadata(tmp_path: Path) -> None:
    series = make_identified_dicom_series(tmp_path / "ct")
    scan = read_scan(tmp_path / "ct")
    text = repr(scan.metadata) + repr(scan)
    for needle in series.needles:
        assert needle.lower() not in text.lower()
    assert "identifiers" not in scan.metadata
    for name in ("PatientName", "PatientBirthDate", "PatientID", "InstitutionName"):
        assert name in scan.metadata["identifying_tags"]
    kept = read_scan(tmp_path / "ct", keep_identifiers=True)
    assert kept.metadata["identifiers"]["PatientName"] == "Doe^Jane"
    assert kept.metadata["identifiers"]["PatientBirthDate"] == "19450317"
    assert kept.metadata["identifying_tags"] == scan.metadata["identifying_tags"]


def _dicom_folder(sample_dir: Path) -> Path:
    folders = {p.parent for p in (sample_dir / "lidc-idri-dicom").rglob("*.dcm")}
    if len(folders) != 1:
        pytest.skip(f"expected one DICOM series folder in the sample, found {len(folders)}")
    return folders.pop()


@pytest.mark.sample
@pytest.mark.slow
def test_real_lidc_series_reads_back_identical(sample_dir: Path, tmp_path: Path) -> None:
    src = sample_dir / "lidc-idri-dicom"
    report = deidentify_folder(src, tmp_path / "out", salt=SALT)
    assert (report.files_written, report.patients, report.series) == (133, 1, 1)
    assert report.files_skipped >= 1  # the reader XML and the attribution note
    before = read_scan(_dicom_folder(sample_dir))
    after = read_scan(tmp_path / "out")
    np.testing.assert_array_equal(after.array, before.array)
    assert after.origin == before.origin
    assert after.spacing == before.spacing
    assert after.direction == before.direction
    assert after.seriesuid != before.seriesuid and after.seriesuid.startswith("2.25.")
    needles = ["LIDC-IDRI-0001", before.seriesuid, "Removed by CTP", "62796001"]
    assert find_in_tree(tmp_path / "out", needles) == []


def _truncate(path: Path, n_bytes: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - n_bytes])


def test_truncated_slice_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    series = make_identified_dicom_series(tmp_path / "in" / "ct", shape_yx=(32, 32))
    _truncate(series.files[1], 1250)  # 61% of the slice's 2048 pixel bytes gone
    with pytest.raises(ScanReadError):
        read_scan(series.folder)  # the source series does not read...
    with pytest.raises(DeidError) as caught:
        deidentify_folder(tmp_path / "in", tmp_path / "out", salt=SALT)
    message = str(caught.value)
    assert "ct/IM0001.dcm" in message
    assert "PixelData holds 798 bytes" in message and "32 x 32 x 1 x 16/8 x 1 = 2048" in message
    assert 'broken="skip"' in message and "--skip-broken" in message
    assert not (tmp_path / "out").exists()  # ...and no copy of it that reads better


def test_broken_files_skipped_on_request_are_reported_not_copied(tmp_path: Path) -> None:
    series = make_identified_dicom_series(tmp_path / "in" / "ct", n_slices=5, shape_yx=(32, 32))
    _truncate(series.files[1], 1250)
    series.files[2].write_bytes(series.files[2].read_bytes()[:300])  # cut inside the header
    report = deidentify_folder(tmp_path / "in", tmp_path / "out", salt=SALT, broken="skip")
    assert report.files_written == 3
    assert [path for path, _why in report.broken_files] == ["ct/IM0001.dcm", "ct/IM0002.dcm"]
    assert "truncated" in report.broken_files[0][1]
    text = str(report)
    assert "left out 2 broken DICOM file(s)" in text and "ct/IM0001.dcm" in text
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 3
    with pytest.raises(ScanReadError, match="unevenly spaced or missing slices"):
        read_scan(tmp_path / "out")  # the gap shows; no slice is padded with air


def test_compressed_pixel_data_is_checked_by_its_fragments(tmp_path: Path) -> None:
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    from nodulekit.data.dicom import pixel_data_problem as _pixel_data_problem

    ds = pydicom.dcmread(make_identified_dicom_series(tmp_path / "ct").files[0])
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([b"\0" * 64])
    assert _pixel_data_problem(ds) is None
    ds.PixelData = ds.PixelData[:20]  # the only fragment's item runs past the end
    assert "compressed PixelData" in _pixel_data_problem(ds)


def test_folder_without_dicom_images_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "notes.txt").write_text("nothing to see")
    (tmp_path / "in" / "sub" / "scan.mhd").write_text("NDims = 3\n")
    with pytest.raises(DeidError, match=r"in: no DICOM image files \(2 file\(s\) searched"):
        deidentify_folder(tmp_path / "in", tmp_path / "out", salt=SALT)
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(
        app, ["deid", str(tmp_path / "in"), str(tmp_path / "out")], env={SALT_ENV: SALT}
    )
    assert result.exit_code == 2
    assert "error:" in result.output and "no DICOM image files" in result.output
    assert "Traceback" not in result.output


def test_cli_skip_broken(tmp_path: Path) -> None:
    series = make_identified_dicom_series(tmp_path / "in" / "ct")
    _truncate(series.files[0], 100)
    runner = CliRunner()
    args = ["deid", str(tmp_path / "in"), str(tmp_path / "out")]
    result = runner.invoke(app, args, env={SALT_ENV: SALT})
    assert (
        result.exit_code == 2 and "IM0000.dcm" in result.output and "--skip-broken" in result.output
    )
    result = runner.invoke(app, [*args, "--skip-broken"], env={SALT_ENV: SALT})
    assert result.exit_code == 0, result.output
    assert "de-identified 3 DICOM file(s)" in result.output
    assert "left out 1 broken DICOM file(s)" in result.output


def test_a_crash_while_writing_leaves_no_half_file(identified, tmp_path: Path, monkeypatch) -> None:
    from pydicom.dataset import Dataset

    in_dir, _jane, _john = identified

    def half_then_crash(self, out, *args, **kwargs):
        out.write(b"\0" * 128 + b"DICM")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Dataset, "save_as", half_then_crash)
    with pytest.raises(OSError, match="No space left"):
        deidentify_folder(in_dir, tmp_path / "out", salt=SALT)
    leftovers = [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert leftovers == ["deid_log.csv"]  # no truncated .dcm that a reader would pad
