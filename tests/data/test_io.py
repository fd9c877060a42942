"""Reading and writing scans, and the errors bad files give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nodulekit.data import Scan, read_scan, write_scan
from nodulekit.errors import ScanReadError
from tests.conftest import SAMPLE_UID


@pytest.fixture
def scan() -> Scan:
    array = (np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7) - 1000).astype(np.int16)
    flipped = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    return Scan(array, (-150.25, -170.5, -330.0), (0.7, 0.8, 2.5), flipped, seriesuid="x")


@pytest.mark.parametrize("name", ["1.2.840.99.mhd", "1.2.840.99.mha", "s.nii.gz", "s.nii"])
def test_round_trip_keeps_voxels_origin_spacing_direction(tmp_path, scan, name):
    back = read_scan(write_scan(scan, tmp_path / name))
    np.testing.assert_array_equal(back.array, scan.array)
    assert back.array.dtype == np.int16
    np.testing.assert_allclose(back.origin, scan.origin, atol=1e-4)
    np.testing.assert_allclose(back.spacing, scan.spacing, atol=1e-6)
    np.testing.assert_allclose(back.direction, scan.direction, atol=1e-6)
    assert back.seriesuid == name.split(".nii")[0].removesuffix(".mhd").removesuffix(".mha")


def test_compressed_metaimage_round_trip(tmp_path, scan):
    path = write_scan(scan, tmp_path / "c.mhd", compress=True)
    assert (tmp_path / "c.zraw").is_file()
    np.testing.assert_array_equal(read_scan(path).array, scan.array)


def test_truncated_raw_names_the_file_and_the_fix(tmp_path, scan):
    path = write_scan(scan, tmp_path / "t.mhd")
    raw = tmp_path / "t.raw"
    raw.write_bytes(raw.read_bytes()[:-100])
    with pytest.raises(
        ScanReadError, match=r"t\.raw: truncated: holds 320 bytes.*420 bytes.*download"
    ):
        read_scan(path)


def test_header_that_lies_about_its_size(tmp_path, scan):
    path = write_scan(scan, tmp_path / "h.mhd")
    path.write_text(path.read_text(encoding="utf-8").replace("DimSize = 7 6 5", "DimSize = 7 6 4"))
    with pytest.raises(ScanReadError, match=r"h\.mhd: the header does not match its data"):
        read_scan(path)


def test_missing_element_data_file_field_and_file(tmp_path, scan):
    path = write_scan(scan, tmp_path / "m.mhd")
    text = path.read_text(encoding="utf-8")
    path.write_text("\n".join(line for line in text.splitlines() if "ElementDataFile" not in line))
    with pytest.raises(ScanReadError, match="no 'ElementDataFile' field"):
        read_scan(path)
    path.write_text(text)
    (tmp_path / "m.raw").unlink()
    with pytest.raises(ScanReadError, match=r"m\.raw does not exist"):
        read_scan(path)


def test_empty_folder_and_wrong_files_say_what_to_do(tmp_path):
    with pytest.raises(ScanReadError, match="it is empty"):
        read_scan(tmp_path)
    with pytest.raises(ScanReadError, match="no such file"):
        read_scan(tmp_path / "nope.mhd")
    (tmp_path / "a.raw").write_bytes(b"\0" * 8)
    with pytest.raises(ScanReadError, match=r"read the \.mhd header beside it"):
        read_scan(tmp_path / "a.raw")
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(ScanReadError, match="unsupported file type"):
        read_scan(tmp_path / "a.txt")


def _write_dicom_series(folder: Path, uid: str, modality: str = "CT", n: int = 3) -> None:
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = sitk.GetImageFromArray(np.full((1, 4, 5), 10 * i - 1000, np.int16))
        image.SetSpacing((0.7, 0.7, 2.5))
        image.SetOrigin((-10.0, -20.0, -30.0 + 2.5 * i))
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for tag, value in {
            "0008|0060": modality,
            "0020|000e": uid,
            "0020|000d": "1.2.3.4",
            "0008|0018": f"{uid}.{i + 1}",
            "0020|0013": str(i + 1),
            "0020|0032": f"-10\\-20\\{-30.0 + 2.5 * i}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": "0.7\\0.7",
            "0018|0050": "2.5",
        }.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{i:03d}.dcm"))
        writer.Execute(image)


def test_dicom_series_reads_and_several_series_need_a_uid(tmp_path):
    _write_dicom_series(tmp_path / "a", "1.2.3.100")
    scan = read_scan(tmp_path)
    assert scan.shape == (3, 4, 5)
    assert scan.seriesuid == "1.2.3.100"
    assert scan.metadata["Modality"] == "CT"
    np.testing.assert_allclose(scan.origin, (-10, -20, -30), atol=1e-4)
    np.testing.assert_allclose(scan.spacing, (0.7, 0.7, 2.5), atol=1e-4)
    _write_dicom_series(tmp_path / "b", "1.2.3.200")
    with pytest.raises(
        ScanReadError, match=r"2 CT series found.*seriesuid=.*1\.2\.3\.100.*1\.2\.3\.200"
    ):
        read_scan(tmp_path)
    assert read_scan(tmp_path, "1.2.3.200").seriesuid == "1.2.3.200"
    with pytest.raises(ScanReadError, match=r"no DICOM series with UID 1\.2\.3\.201.*close"):
        read_scan(tmp_path, "1.2.3.201")


def test_dicom_folder_without_ct_lists_what_it_found(tmp_path):
    _write_dicom_series(tmp_path, "1.2.3.300", modality="MR")
    with pytest.raises(ScanReadError, match=r"no CT series here; found 1\.2\.3\.300 \(MR"):
        read_scan(tmp_path)


@pytest.mark.sample
def test_real_mhd_and_dicom_give_identical_voxels_and_geometry(sample_dir):
    mhd = read_scan(sample_dir / "luna16-mini" / "subset0" / f"{SAMPLE_UID}.mhd")
    dicom = read_scan(sample_dir / "lidc-idri-dicom")
    assert mhd.shape == (133, 512, 512)
    assert dicom.seriesuid == mhd.seriesuid == SAMPLE_UID
    assert dicom.same_geometry(mhd, atol_mm=1e-3)
    np.testing.assert_array_equal(dicom.array, mhd.array)
    # the scan's one LUNA16 nodule (23.4 mm) maps to a voxel inside soft tissue
    z, y, x = mhd.world_to_index((56.2, 86.3, -115.9))
    assert mhd.contains((z, y, x))
    assert -100 <= mhd.array[z, y, x] <= 200


def test_deidentified_series_is_not_flagged_as_identifying(tmp_path):
    from nodulekit.data.deid import deidentify_folder
    from tests.privacy_helpers import make_identified_dicom_series

    make_identified_dicom_series(tmp_path / "in")
    assert "PatientName" in read_scan(tmp_path / "in").metadata["identifying_tags"]
    deidentify_folder(tmp_path / "in", tmp_path / "out", salt="a-secret-salt-of-32-characters!!")
    assert read_scan(tmp_path / "out").metadata["identifying_tags"] == []


def test_dicom_series_with_a_missing_slice_is_refused_not_misread(tmp_path):
    _write_dicom_series(tmp_path, "1.2.3.400", n=5)
    (tmp_path / "002.dcm").unlink()
    with pytest.raises(
        ScanReadError,
        match=r"unevenly spaced or missing slices \(gaps between slice positions of \[2\.5, 5\.0\] mm",
    ):
        read_scan(tmp_path)


def test_float_header_over_int16_data_says_the_element_type_and_size_disagree(tmp_path, scan):
    path = write_scan(scan, tmp_path / "f.mhd")  # int16: 210 voxels, 420 bytes
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "ElementType = MET_SHORT", "ElementType = MET_FLOAT"
        )
    )
    with pytest.raises(ScanReadError) as caught:
        read_scan(path)
    message = str(caught.value)
    assert "truncated" not in message
    assert message.startswith(f"{path}: the element type and the file size disagree")
    assert "ElementType = MET_FLOAT is 4 bytes per voxel (840 bytes for DimSize = 7 6 5)" in message
    assert "f.raw holds 420 bytes, exactly 2 per voxel (MET_SHORT or MET_USHORT)" in message
    assert "fix the ElementType line (MET_SHORT for int16 CT)" in message


def test_header_geometry_reads_shape_and_spacing_without_voxels(tmp_path, scan):
    from nodulekit.data.metaimage import header_geometry, read_header

    path = write_scan(scan, tmp_path / "g.mhd")
    shape, spacing = header_geometry(read_header(path))
    assert shape == scan.shape and header_geometry(path) == (shape, spacing)
    np.testing.assert_allclose(spacing, scan.spacing_zyx_mm)
    with pytest.raises(ScanReadError, match=r"g\.mhd: needs DimSize"):
        header_geometry({"DimSize": "1 2"}, source=str(tmp_path / "g.mhd"))


def test_read_mask_keeps_labels_and_geometry(tmp_path, scan):
    import SimpleITK as sitk

    from nodulekit.data import Mask, read_mask

    labels = np.zeros(scan.shape, np.uint8)
    labels[1:3, 2:4, 1:5] = 3
    labels[4, 0, 0] = 5
    mask = Mask.like(scan, labels)
    sitk.WriteImage(mask.to_sitk(), str(tmp_path / "1.2.3.mhd"))
    back = read_mask(tmp_path / "1.2.3.mhd", name="lungs")
    assert back.dtype == np.uint8 and back.seriesuid == "1.2.3" and back.name == "lungs"
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.origin, scan.origin, atol=1e-4)
    np.testing.assert_allclose(back.direction, scan.direction, atol=1e-6)
    assert "labels=[3, 5]" in repr(back) and back.voxel_count == 2 * 2 * 4 + 1
    wide = sitk.GetImageFromArray(np.full((2, 2, 2), 300, np.int16))
    sitk.WriteImage(wide, str(tmp_path / "wide.mhd"))
    with pytest.raises(ScanReadError, match=r"wide\.mhd: mask labels 300\.\.300 do not fit uint8"):
        read_mask(tmp_path / "wide.mhd")
