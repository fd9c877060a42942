"""Find and read DICOM CT series (through SimpleITK/GDCM), keeping identifiers out by default."""

from __future__ import annotations

import difflib
import itertools
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodulekit.data.scan import Scan
from nodulekit.errors import ScanReadError

# Tags that say something about a person (DICOM PS3.15 basic profile, the common ones).
# Their *names* may be reported (to warn); their values never leave `read_scan` unless asked.
IDENTIFYING_TAGS: dict[str, str] = {
    "0010|0010": "PatientName",
    "0010|0020": "PatientID",
    "0010|0030": "PatientBirthDate",
    "0010|0032": "PatientBirthTime",
    "0010|1000": "OtherPatientIDs",
    "0010|1001": "OtherPatientNames",
    "0010|1040": "PatientAddress",
    "0010|2154": "PatientTelephoneNumbers",
    "0008|0050": "AccessionNumber",
    "0008|0080": "InstitutionName",
    "0008|0081": "InstitutionAddress",
    "0008|0090": "ReferringPhysicianName",
    "0008|1050": "PerformingPhysicianName",
    "0008|1070": "OperatorsName",
    "0020|0010": "StudyID",
    "0008|0020": "StudyDate",
    "0008|0030": "StudyTime",
}

# Acquisition facts that identify no one; these go into Scan.metadata. (SeriesDescription is
# free text that may name someone: shown when listing series, never kept in a Scan.)
SAFE_TAGS: dict[str, str] = {
    "0008|0060": "Modality",
    "0018|0050": "SliceThickness",
    "0018|1210": "ConvolutionKernel",
    "0008|0070": "Manufacturer",
    "0018|0060": "KVP",
}


def pixel_data_problem(ds: Any) -> str | None:
    """Why ``ds`` (a pydicom Dataset with PixelData) cannot be a complete image, or None.

    Native (uncompressed) pixel data must hold Rows x Columns x SamplesPerPixel x
    BitsAllocated/8 x NumberOfFrames bytes: a shorter value is a truncated file, which a
    reader pads with zeros (air, after the rescale) without saying so. Compressed
    (encapsulated) pixel data must parse into one item per frame.
    """
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    frames = int(ds.get("NumberOfFrames") or 1)
    value = ds.PixelData
    if syntax is not None and syntax.is_encapsulated:
        return _encapsulated_problem(value, frames)
    sizes = {k: ds.get(k) for k in ("Rows", "Columns", "BitsAllocated")}
    absent = [k for k, v in sizes.items() if not v]
    if absent:
        return f"an image without {', '.join(absent)}: its PixelData cannot be checked"
    rows, cols, bits = (int(v) for v in sizes.values())
    samples = int(ds.get("SamplesPerPixel") or 1)
    expected = (rows * cols * samples * frames * bits + 7) // 8
    if len(value) < expected:
        return (
            f"PixelData holds {len(value)} bytes, the header needs Rows x Columns x "
            f"SamplesPerPixel x BitsAllocated/8 x NumberOfFrames = {rows} x {cols} x {samples} "
            f"x {bits}/8 x {frames} = {expected}: the file is truncated"
        )
    return None


def _encapsulated_problem(value: bytes, frames: int) -> str | None:
    """Walk the items of compressed pixel data: each must fit, one per frame at least."""
    position, items = 0, 0
    while position + 8 <= len(value):
        group, element, length = struct.unpack_from("<HHI", value, position)
        if (group, element) == (0xFFFE, 0xE0DD):  # sequence delimiter
            break
        if (group, element) != (0xFFFE, 0xE000):
            return (
                f"compressed PixelData holds tag ({group:04X},{element:04X}) at byte "
                f"{position} where an item belongs: the file is corrupt"
            )
        if position + 8 + length > len(value):
            return (
                f"compressed PixelData item {items} needs {length} bytes, {len(value) - position - 8}"
                " are left: the file is truncated"
            )
        position += 8 + length
        items += 1
    fragments = items - 1  # the first item is the basic offset table
    if fragments < 1 or (frames > 1 and fragments < frames and _offsets(value) < frames):
        return f"compressed PixelData holds {max(fragments, 0)} fragment(s) for {frames} frame(s)"
    return None


def _offsets(value: bytes) -> int:
    """Number of entries of the basic offset table (the first item)."""
    return struct.unpack_from("<I", value, 4)[0] // 4 if len(value) >= 8 else 0


def _no_pixels_problem(ds: Any) -> str | None:
    """An image storage file (by its SOP class) without PixelData was cut before its pixels."""
    meta = getattr(ds, "file_meta", None)
    sop_class = meta.get("MediaStorageSOPClassUID") if meta is not None else None
    name = getattr(sop_class, "name", "") or ""
    if "Image Storage" in name:
        return (
            f"a {name} file without PixelData ({len(ds)} attribute(s) read): the file is truncated"
        )
    return None


def _has_dicom_magic(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(132)[128:132] == b"DICM"


def check_dicom_file(path: str | Path) -> tuple[Any, str | None]:
    """Read one file with pydicom and say whether it is a complete DICOM file.

    Returns
    -------
    (dataset, None)
        A DICOM file that reads whole (with complete pixel data, if it has any).
    (None, None)
        Not a DICOM file (no ``DICM`` marker, and pydicom cannot read it).
    (dataset or None, reason)
        A broken DICOM file: it says it is DICOM but does not read, an image storage file
        without pixel data, or pixel data shorter than its header needs (a reader would pad
        the missing pixels with zeros). ``reason`` says which, with the numbers.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:  # our own words, below
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path)
        problem = pixel_data_problem(ds) if "PixelData" in ds else _no_pixels_problem(ds)
        ended = [str(w.message) for w in caught if "End of file" in str(w.message)]
        if problem is None and ended:
            problem = f"pydicom: {ended[0].split(' in file ')[0]}: the file is truncated"
    except InvalidDicomError:
        return None, None
    except (OSError, ValueError, EOFError, KeyError, IndexError, struct.error) as e:
        if not _has_dicom_magic(path):
            return None, None
        return None, f"does not read as DICOM ({type(e).__name__}: {e}): truncated or corrupt"
    meta = getattr(ds, "file_meta", None)
    if problem is None and (meta is None or "TransferSyntaxUID" not in meta):
        if _has_dicom_magic(path):  # a Part 10 file whose file meta stops short
            problem = "its file meta information stops before TransferSyntaxUID: truncated"
    return ds, problem


DICOM_HINT = "keep each series' .dcm files together; nodulekit deid IN OUT removes identifiers"


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series found on disk: its UID, folder, files and a few safe header facts."""

    seriesuid: str
    folder: Path
    files: tuple[str, ...] = field(repr=False)
    modality: str = ""
    description: str = ""
    identifying_tags: tuple[str, ...] = ()

    @property
    def n_files(self) -> int:
        return len(self.files)

    def __str__(self) -> str:
        desc = f" {self.description!r}" if self.description else ""
        return (
            f"{self.seriesuid} ({self.modality or '?'}{desc}, {self.n_files} files, {self.folder})"
        )


def _header(path: str) -> dict[str, str]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()
    return {key: reader.GetMetaData(key).strip() for key in reader.GetMetaDataKeys()}


def find_dicom_series(root: str | Path) -> list[DicomSeries]:
    """All DICOM series under ``root`` (searched recursively), CT first.

    Raises `ScanReadError` if the folder holds no DICOM series at all.
    """
    import SimpleITK as sitk

    root = Path(root)
    found: list[DicomSeries] = []
    warnings_were_shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # GDCM warns on every non-DICOM folder
    try:
        walked = sorted(os.walk(root))
        series_ids = {
            folder: sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
            for folder, _dirs, files in walked
            if files
        }
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_were_shown)
    for folder, uids in series_ids.items():
        for uid in uids:
            names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)
            if not names:
                continue
            try:
                header = _header(names[0])
            except RuntimeError:
                continue
            # a de-identified series (PatientIdentityRemoved = YES) holds pseudonyms, not people
            deidentified = header.get("0012|0062", "").strip().upper() == "YES"
            identifying = (
                ()
                if deidentified
                else tuple(
                    name for tag, name in IDENTIFYING_TAGS.items() if header.get(tag, "").strip()
                )
            )
            found.append(
                DicomSeries(
                    seriesuid=uid,
                    folder=Path(folder),
                    files=tuple(names),
                    modality=header.get("0008|0060", ""),
                    description=header.get("0008|103e", ""),
                    identifying_tags=identifying,
                )
            )
    if not found:
        contents = sorted(p.name for p in root.iterdir())[:5] if root.is_dir() else []
        raise ScanReadError(
            f"{root}: no readable scan here: no DICOM series (searched all subfolders) and "
            f"the path is not a .mhd/.nii file (first entries: {contents or 'none, it is empty'}); "
            "point to a .mhd or .nii.gz file, or to a folder of DICOM slices"
        )
    found.sort(key=lambda s: (s.modality != "CT", str(s.folder), s.seriesuid))
    return found


def read_dicom_series(
    series: list[DicomSeries],
    seriesuid: str | None = None,
    *,
    keep_identifiers: bool = False,
    root: Path | None = None,
) -> Scan:
    """Read one CT series out of ``series`` (from `find_dicom_series`) as a `Scan`."""
    import SimpleITK as sitk

    where = root or (series[0].folder if series else Path("."))
    if seriesuid is not None:
        chosen = [s for s in series if s.seriesuid == seriesuid]
        if not chosen:
            close = difflib.get_close_matches(seriesuid, [s.seriesuid for s in series], n=3)
            raise ScanReadError(
                f"{where}: no DICOM series with UID {seriesuid}; "
                + (f"close: {', '.join(close)}; " if close else "")
                + "found: "
                + "; ".join(map(str, series))
            )
    else:
        chosen = [s for s in series if s.modality == "CT"]
        if not chosen:
            raise ScanReadError(
                f"{where}: no CT series here; found "
                + "; ".join(map(str, series))
                + ". nodulekit reads CT only (Modality CT)"
            )
        if len(chosen) > 1:
            raise ScanReadError(
                f"{where}: {len(chosen)} CT series found; pick one with "
                "read_scan(path, seriesuid=...): " + "; ".join(map(str, chosen))
            )
    pick = chosen[0]
    if len(pick.files) < 2:
        raise ScanReadError(
            f"{pick.folder}: series {pick.seriesuid} has a single slice; a CT volume needs "
            f"several ({DICOM_HINT})"
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(pick.files))
    warnings_were_shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # uneven slices: our own error below
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise ScanReadError(
            f"{pick.folder}: cannot read DICOM series {pick.seriesuid}: "
            f"{str(e).strip().splitlines()[-1]} ({DICOM_HINT})"
        ) from e
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_were_shown)
    _refuse_broken_files(pick, series)  # GDCM leaves a broken slice out without a word
    if image.HasMetaDataKey("ITK_non_uniform_sampling_deviation"):
        z_mm = sorted(
            float(_header(f).get("0020|0032", "0\\0\\0").split("\\")[2]) for f in pick.files
        )
        gaps = sorted({round(b - a, 3) for a, b in itertools.pairwise(z_mm)})
        raise ScanReadError(
            f"{pick.folder}: series {pick.seriesuid} has unevenly spaced or missing slices "
            f"(gaps between slice positions of {gaps} mm over {len(pick.files)} files); "
            "a volume built from it would have wrong geometry. "
            "Check that no .dcm file of the series is missing (re-export or re-download it)"
        )
    header = _header(pick.files[0])
    metadata: dict[str, object] = {"format": "DICOM"}
    metadata.update({name: header[tag] for tag, name in SAFE_TAGS.items() if header.get(tag)})
    metadata["identifying_tags"] = list(pick.identifying_tags)
    if keep_identifiers:
        metadata["identifiers"] = {
            name: header[tag] for tag, name in IDENTIFYING_TAGS.items() if header.get(tag)
        }
    return Scan.from_sitk(image, seriesuid=pick.seriesuid, path=pick.folder, metadata=metadata)


def _refuse_broken_files(series: DicomSeries, found: list[DicomSeries]) -> None:
    """Refuse a series whose folder holds broken DICOM files: GDCM leaves them out of every
    series without a word, so a slice cut short at either end would just be missing. Only
    files of no series found there are read (usually none, or a few non-DICOM files)."""
    listed = {f for s in found if s.folder == series.folder for f in s.files}
    broken = []
    for path in sorted(series.folder.iterdir()):
        if path.is_file() and str(path) not in listed:
            _ds, problem = check_dicom_file(path)
            if problem:
                broken.append(f"{path.name}: {problem}")
    if broken:
        raise ScanReadError(
            f"{series.folder}: series {series.seriesuid} sits beside {len(broken)} broken DICOM "
            f"file(s) that would be left out of the volume: {'; '.join(broken[:3])}"
            f"{' ...' if len(broken) > 3 else ''}; re-export or re-download them"
        )
