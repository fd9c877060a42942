"""Find and read DICOM CT series (through SimpleITK/GDCM), keeping identifiers out by default."""

from __future__ import annotations

import difflib
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

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
