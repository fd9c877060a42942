"""Test helpers for patient privacy: DICOM files that carry planted identifiers, and a search
for those identifiers in everything a command wrote.

``make_identified_dicom_series`` writes a tiny but valid CT series (SimpleITK and pydicom read
it) whose headers hold a made-up name, ID, birth date, institution, physician, device serial
number and a private tag. ``find_in_tree`` then looks for those strings in every file (text or
binary, inside zip/npz/pt archives and .gz files too) and in every file and folder name.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass(frozen=True)
class IdentifiedSeries:
    """What `make_identified_dicom_series` wrote.

    ``array`` is the HU volume ``(z, y, x)`` int16; ``origin`` and ``spacing`` are (x, y, z) mm
    as SimpleITK reports them; ``identifiers`` maps DICOM keywords to the planted values.
    """

    folder: Path
    files: list[Path]
    array: np.ndarray = field(repr=False)
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    identifiers: dict[str, str]
    uids: dict[str, str]

    @property
    def needles(self) -> list[str]:
        """The planted strings worth searching outputs for."""
        return list(self.identifiers.values())


def make_identified_dicom_series(
    folder: str | Path,
    n_slices: int = 4,
    patient_name: str = "Doe^Jane",
    birth_date: str = "19450317",
    *,
    patient_id: str = "PAT-0042-JD",
    institution: str = "Saint Elsewhere General Hospital",
    referring_physician: str = "Kildare^James",
    study_date: str = "20240105",
    accession_number: str = "ACC99887766",
    device_serial: str = "SN-CT-555123",
    private_value: str = "PRIVATE-NOTE-JANE-7731",
    shape_yx: tuple[int, int] = (12, 16),
    spacing_xyz_mm: tuple[float, float, float] = (0.75, 0.8, 2.5),
    origin_xyz_mm: tuple[float, float, float] = (-100.5, -120.25, -300.0),
    uid_root: str = "1.2.826.0.1.3680043.10.1234",
    seed: int = 0,
) -> IdentifiedSeries:
    """Write a small CT DICOM series with planted identifiers into ``folder``.

    One file per slice (``IM0000.dcm``...), explicit VR little endian, int16 stored values with
    RescaleSlope 1 and RescaleIntercept -1024, axial orientation, slices ``spacing_xyz_mm[2]``
    apart starting at ``origin_xyz_mm``. Each slice after the first references the one before
    it (ReferencedImageSequence), so UID remapping can be checked for consistency.
    Different ``uid_root`` values give different studies/series.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = shape_yx
    sx, sy, sz = spacing_xyz_mm
    ox, oy, oz = origin_xyz_mm
    rng = np.random.default_rng(seed)
    hu = rng.integers(-1000, 400, size=(n_slices, rows, cols)).astype(np.int16)
    hu[:, 0, 0] = np.arange(n_slices, dtype=np.int16) * 100 - 1000  # slice order is visible
    study_uid = f"{uid_root}.1"
    series_uid = f"{uid_root}.2"
    frame_uid = f"{uid_root}.3"
    sop_uids = [f"{uid_root}.4.{k + 1}" for k in range(n_slices)]
    files: list[Path] = []
    for k in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uids[k]
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.SourceApplicationEntityTitle = "ELSEWHERE_CT1"
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_uids[k]
        ds.StudyDate = study_date
        ds.SeriesDate = study_date
        ds.AcquisitionDate = study_date
        ds.ContentDate = study_date
        ds.StudyTime = "101500"
        ds.AcquisitionTime = f"1016{k:02d}"
        ds.AccessionNumber = accession_number
        ds.Modality = "CT"
        ds.Manufacturer = "ACME MEDICAL"
        ds.InstitutionName = institution
        ds.InstitutionAddress = "1 Hospital Road, Springfield"
        ds.ReferringPhysicianName = referring_physician
        ds.StationName = "CTROOM7"
        ds.StudyDescription = "CHEST CT for Jane"
        ds.SeriesDescription = "Lung 2.5mm"
        ds.OperatorsName = "Operator^Olivia"
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = birth_date
        ds.PatientSex = "F"
        ds.PatientAge = "078Y"
        ds.PatientAddress = "42 Elm Street, Springfield"
        ds.OtherPatientIDs = f"{patient_id}-OLD"
        ds.PatientComments = f"{patient_name} prefers mornings"
        ds.SliceThickness = f"{sz:g}"
        ds.KVP = "120"
        ds.DeviceSerialNumber = device_serial
        ds.ConvolutionKernel = "STANDARD"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "STUDY77"
        ds.SeriesNumber = 3
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{ox:g}", f"{oy:g}", f"{oz + k * sz:g}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.FrameOfReferenceUID = frame_uid
        ds.SliceLocation = f"{oz + k * sz:g}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.PixelSpacing = [f"{sy:g}", f"{sx:g}"]  # (row spacing = y, column spacing = x)
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        if k > 0:
            ref = Dataset()
            ref.ReferencedSOPClassUID = CT_IMAGE_STORAGE
            ref.ReferencedSOPInstanceUID = sop_uids[k - 1]
            ds.ReferencedImageSequence = DicomSequence([ref])
        block = ds.private_block(0x0011, "NODULEKIT TEST", create=True)
        block.add_new(0x01, "LO", private_value)
        ds.PixelData = (hu[k].astype(np.int32) + 1024).astype(np.int16).tobytes()
        path = folder / f"IM{k:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        files.append(path)
    identifiers = {
        "PatientName": patient_name,
        "PatientID": patient_id,
        "PatientBirthDate": birth_date,
        "InstitutionName": institution,
        "ReferringPhysicianName": referring_physician,
        "AccessionNumber": accession_number,
        "DeviceSerialNumber": device_serial,
        "PrivateValue": private_value,
    }
    uids = {
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid,
        "FrameOfReferenceUID": frame_uid,
    }
    return IdentifiedSeries(
        folder=folder,
        files=files,
        array=hu,
        origin=(float(ox), float(oy), float(oz)),
        spacing=(float(sx), float(sy), float(sz)),
        identifiers=identifiers,
        uids=uids,
    )


def _contents(data: bytes, name: str, depth: int = 0) -> Iterable[bytes]:
    """The bytes of a file, plus those of its members if it is a zip (npz, pt) or gzip file."""
    yield data
    if depth > 2:
        return
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    yield member.encode("utf-8", "replace")
                    yield from _contents(archive.read(member), member, depth + 1)
        except (zipfile.BadZipFile, OSError, ValueError):
            pass
    elif data[:2] == b"\x1f\x8b":
        try:
            yield from _contents(gzip.decompress(data), name, depth + 1)
        except (OSError, EOFError):
            pass


def _forms(needle: str) -> list[bytes]:
    """Byte forms a string can take in a file: UTF-8 and UTF-16 (little and big endian)."""
    low = needle.lower()
    return [low.encode("utf-8"), low.encode("utf-16-le"), low.encode("utf-16-be")]


def find_in_tree(root: str | Path, needles: Sequence[str]) -> list[tuple[Path, str]]:
    """Every ``(path, needle)`` where a needle occurs under ``root``, case-insensitively.

    Searches each file's bytes (as UTF-8 and UTF-16), the members of zip-based files (``.npz``,
    ``.pt``, ``.zip``...) and gzip files, and the file and folder names relative to ``root``.
    An empty list means none of the needles was found anywhere.
    """
    root = Path(root)
    wanted = [n for n in needles if n]
    hits: list[tuple[Path, str]] = []
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root)).lower()
        found = {n for n in wanted if n.lower() in relative}
        if path.is_file() and not path.is_symlink():
            for chunk in _contents(path.read_bytes(), path.name):
                chunk = chunk.lower()
                for needle in wanted:
                    if needle not in found and any(f in chunk for f in _forms(needle)):
                        found.add(needle)
        hits.extend((path, n) for n in wanted if n in found)
    return hits
