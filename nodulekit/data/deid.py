"""De-identify a folder of DICOM files (DICOM PS3.15, basic application confidentiality profile).

What each file goes through (the commonly implemented subset of PS3.15 table E.1-1, with the
options *retain longitudinal temporal information with modified dates* and *retain patient
characteristics*):

==========================================  ==============================================
attributes                                  action
==========================================  ==============================================
PatientName, PatientID                      replaced by a pseudonym ``NK-<10 hex>``, the same
                                            for every file of one patient (keyed hash of the
                                            PatientID)
every other person name (VR PN)             emptied
IDs, addresses, phone numbers, comments,    removed (or emptied where DICOM requires the
institution and device identifiers,         attribute: AccessionNumber, StudyID)
descriptions, other names and IDs...
every private tag, curves and overlays      removed
every instance UID (VR UI), file meta too   remapped to ``2.25.<int>`` by a keyed hash, so
                                            a series stays a series and references still
                                            point at the right file
every date (VR DA, and the date of DT)      shifted by a per-patient number of days
                                            (1 to 3650 back), so intervals survive
times of day, age, sex, size, weight        kept
pixel data and geometry                     untouched
==========================================  ==============================================

The keyed hash is HMAC-SHA256 with a secret salt: the same salt gives the same UIDs, pseudonyms
and date shifts on every run (new files of a patient join the old ones); without the salt
nobody can recompute them from an original PatientID. Text burned into the pixels is *not*
removed: look at the images before sharing them.

Every file is read and checked before anything is written. A broken DICOM file (cut short, or
whose pixel data is shorter than Rows x Columns x SamplesPerPixel x BitsAllocated/8 x
NumberOfFrames) is never copied: re-saved, it would read as a whole slice padded with air where
the original refuses to read. By default the run is refused naming each broken file; with
``broken="skip"`` (``--skip-broken``) they are left out and listed in the report. A folder with
no DICOM image at all is an error too, not an empty success.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from nodulekit._files import atomic_write
from nodulekit.data.dicom import check_dicom_file
from nodulekit.errors import DeidError

SALT_ENV = "NODULEKIT_DEID_SALT"
MIN_SALT_LENGTH = 16
MAX_SHIFT_DAYS = 3650
METHOD = "nodulekit deid: PS3.15 basic profile, dates shifted"
SALT_HELP = (
    "a secret salt keys the pseudonyms, the new UIDs and the date shifts: with it the same "
    "patient gets the same pseudonym on every run, without it nobody can recompute them from "
    "the original IDs. Make one once with "
    '`python -c "import secrets; print(secrets.token_hex(32))"`, keep it private (not in the '
    f"output folder, not in git), and pass it as --salt or in the environment variable {SALT_ENV}"
    "; or pass --random-salt (random_salt=True) for a one-off run whose pseudonyms and UIDs "
    "cannot be reproduced"
)

PSEUDONYM = frozenset({"PatientName", "PatientID"})
# Type 2 attributes: must be present, so emptied rather than removed.
EMPTY = frozenset({"AccessionNumber", "StudyID", "ReferringPhysicianName"})
REMOVE = frozenset(
    {
        # patient
        "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName",
        "PatientMotherBirthName", "PatientBirthTime", "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence", "MedicalRecordLocator", "EthnicGroup",
        "Occupation", "AdditionalPatientHistory", "PatientReligiousPreference", "MilitaryRank",
        "BranchOfService", "MedicalAlerts", "Allergies", "CountryOfResidence", "RegionOfResidence",
        "PatientInsurancePlanCodeSequence", "PatientPrimaryLanguageCodeSequence",
        "PatientState", "SpecialNeeds", "CurrentPatientLocation", "PatientInstitutionResidence",
        "PatientTransportArrangements", "ResponsibleOrganization", "ReferencedPatientSequence",
        "ReferencedPatientPhotoSequence", "PatientSexNeutered",
        # visit, request and procedure identifiers
        "AdmissionID", "IssuerOfAdmissionID", "IssuerOfAdmissionIDSequence", "ServiceEpisodeID",
        "ServiceEpisodeDescription", "AdmittingDiagnosesDescription",
        "AdmittingDiagnosesCodeSequence", "PerformedProcedureStepID", "ScheduledProcedureStepID",
        "RequestedProcedureID", "PlacerOrderNumberImagingServiceRequest",
        "FillerOrderNumberImagingServiceRequest", "RequestAttributesSequence", "RequestingService",
        "IssuerOfAccessionNumberSequence", "ReferencedPerformedProcedureStepSequence",
        # institution, people and devices
        "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
        "InstitutionCodeSequence", "InstitutionalDepartmentTypeCodeSequence",
        "ReferringPhysicianIdentificationSequence", "PhysiciansOfRecordIdentificationSequence",
        "PerformingPhysicianIdentificationSequence", "PhysiciansReadingStudyIdentificationSequence",
        "OperatorIdentificationSequence", "PersonIdentificationCodeSequence",
        "StationName", "DeviceSerialNumber", "DetectorID", "GantryID", "PlateID", "CassetteID",
        "SoftwareVersions", "SourceApplicationEntityTitle", "ScheduledStationAETitle",
        "PerformedStationAETitle", "ScheduledStationName", "PerformedStationName",
        "PerformedLocation", "ScheduledProcedureStepLocation",
        "DeviceDescription", "ModifiedAttributesSequence", "OriginalAttributesSequence",
        # free text that may name someone
        "StudyDescription", "SeriesDescription", "ProtocolName",
        "PerformedProcedureStepDescription", "RequestedProcedureDescription", "ScheduledProcedureStepDescription",
        "DerivationDescription", "ReasonForStudy", "ReasonForTheRequestedProcedure",
        "TextComments", "TextString", "DigitalSignaturesSequence", "ImagePresentationComments",
    }
)  # fmt: skip
REMOVE_IF_KEYWORD_CONTAINS = ("Comment", "Address", "Telephone", "Telecom")


@dataclass(frozen=True)
class DeidReport:
    """What `deidentify_folder` did. ``actions`` counts changed attributes by action."""

    out_dir: Path
    files_written: int
    files_skipped: int
    patients: int
    series: int
    log_path: Path
    reproducible: bool = True
    burned_in_files: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    broken_files: tuple[tuple[str, str], ...] = ()

    @property
    def files_broken(self) -> int:
        return len(self.broken_files)

    def __str__(self) -> str:
        skipped = (
            f"; skipped {self.files_skipped} file(s) that are not DICOM images (not copied)"
            if self.files_skipped
            else ""
        )
        lines = [
            f"de-identified {self.files_written} DICOM file(s) of {self.patients} patient(s), "
            f"{self.series} series, into {self.out_dir}{skipped}",
            "changed attributes: "
            + (", ".join(f"{n} {a}" for a, n in sorted(self.actions.items())) or "none"),
            f"log (tag names and actions only, no values): {self.log_path}",
        ]
        if self.reproducible:
            lines.append("pseudonyms, UIDs and date shifts are reproducible with the same salt")
        else:
            lines.append(
                "random salt: pseudonyms, UIDs and date shifts differ on every run "
                "(pass --salt to make them reproducible)"
            )
        if self.broken_files:
            lines.append(
                f"warning: left out {len(self.broken_files)} broken DICOM file(s) (not copied; "
                "their series will read as missing slices): "
                + "; ".join(f"{path}: {why}" for path, why in self.broken_files)
            )
        if self.burned_in_files:
            lines.append(
                f"warning: {self.burned_in_files} file(s) say BurnedInAnnotation=YES; text in "
                "the pixels is not removed, check the images before sharing"
            )
        return "\n".join(lines)


def _key(salt: str | bytes | None, random_salt: bool) -> tuple[bytes, bool]:
    """The HMAC key and whether it is reproducible; refuse without a good salt."""
    if salt is None and not random_salt:
        salt = os.environ.get(SALT_ENV) or None
    if salt is None:
        if random_salt:
            return secrets.token_bytes(32), False
        raise DeidError(f"no salt given: {SALT_HELP}")
    if random_salt:
        raise DeidError("give either a salt or random_salt=True (--random-salt), not both")
    key = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)
    if len(key) < MIN_SALT_LENGTH:
        raise DeidError(
            f"the salt is {len(key)} characters long; use at least {MIN_SALT_LENGTH} random "
            f"characters, since a short salt can be guessed and the pseudonyms reversed. "
            f"{SALT_HELP[0].upper()}{SALT_HELP[1:]}"
        )
    return key, True


class _Keyed:
    """The keyed hashes of one run: UIDs, pseudonyms and date shifts."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256).digest()

    def uid(self, uid: str) -> str:
        return "2.25." + str(int.from_bytes(self._digest("uid", uid.strip())[:16], "big"))

    def pseudonym(self, patient: str) -> str:
        return "NK-" + self._digest("patient", patient).hex()[:10].upper()

    def shift_days(self, patient: str) -> int:
        number = int.from_bytes(self._digest("dateshift", patient)[:4], "big")
        return -(1 + number % MAX_SHIFT_DAYS)


def _keep_uid(keyword: str, value: str) -> bool:
    """Registered DICOM UIDs (SOP classes, transfer syntaxes) name no one; keep them."""
    return (
        value.startswith("1.2.840.10008.")
        or keyword.endswith("ClassUID")
        or keyword == "TransferSyntaxUID"
    )


def _shift_date(value: str, days: int) -> str | None:
    """``YYYYMMDD`` (or a DT starting with it) moved by ``days``; None if it is no full date."""
    text = value.strip()
    head, tail = text[:8], text[8:]
    if len(head) != 8 or not head.isdigit():
        return None
    try:
        day = date(int(head[:4]), int(head[4:6]), int(head[6:8]))
    except ValueError:
        return None
    return (day + timedelta(days=days)).strftime("%Y%m%d") + tail


def _multi(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes):
        return [value.decode("ascii", "replace") if isinstance(value, bytes) else value]
    return [str(v) for v in value]


def _clean(ds: Any, keyed: _Keyed, patient: str, prefix: str, changes: list[tuple]) -> None:
    """De-identify ``ds`` in place (recursing into sequences); append (tag, path, action)."""
    for tag in list(ds.keys()):
        elem = ds[tag]
        keyword = elem.keyword or ""
        where = prefix + ("private tag" if tag.is_private else keyword or str(tag))
        tag_text = f"({tag.group:04X},{tag.element:04X})"

        def note(action: str, tag_text: str = tag_text, where: str = where) -> None:
            changes.append((tag_text, where, action))

        if tag.is_private or 0x5000 <= tag.group <= 0x50FF or 0x6000 <= tag.group <= 0x60FF:
            del ds[tag]
            note("removed")
        elif keyword in PSEUDONYM and not prefix:
            elem.value = keyed.pseudonym(patient)
            note("replaced")
        elif keyword in REMOVE or any(w in keyword for w in REMOVE_IF_KEYWORD_CONTAINS):
            del ds[tag]
            note("removed")
        elif keyword in EMPTY or elem.VR == "PN" or keyword in PSEUDONYM:
            if _multi(elem.value):
                elem.value = ""
                note("emptied")
        elif elem.VR == "UI":
            values = _multi(elem.value)
            if values and not all(_keep_uid(keyword, v) for v in values):
                new = [v if _keep_uid(keyword, v) else keyed.uid(v) for v in values]
                elem.value = new[0] if len(new) == 1 else new
                note("remapped")
        elif elem.VR in ("DA", "DT"):
            values = _multi(elem.value)
            if values:
                shifted = [_shift_date(v, keyed.shift_days(patient)) for v in values]
                if any(s is None for s in shifted):
                    elem.value = ""
                    note("emptied")
                else:
                    elem.value = shifted[0] if len(shifted) == 1 else shifted
                    note("shifted")
        elif elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                _clean(item, keyed, patient, f"{where}[{i}].", changes)


def _clean_file_meta(meta: Any, keyed: _Keyed, sop_uid: str | None, changes: list) -> None:
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    for keyword in (
        "SourceApplicationEntityTitle",
        "SendingApplicationEntityTitle",
        "ReceivingApplicationEntityTitle",
        "PrivateInformationCreatorUID",
        "PrivateInformation",
        "ImplementationVersionName",
    ):
        if keyword in meta:
            tag = meta.data_element(keyword).tag
            del meta[keyword]
            changes.append((f"({tag.group:04X},{tag.element:04X})", f"meta.{keyword}", "removed"))
    if "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = sop_uid or keyed.uid(meta.MediaStorageSOPInstanceUID)
        changes.append(("(0002,0003)", "meta.MediaStorageSOPInstanceUID", "remapped"))
    if meta.get("ImplementationClassUID", PYDICOM_IMPLEMENTATION_UID) != PYDICOM_IMPLEMENTATION_UID:
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        changes.append(("(0002,0012)", "meta.ImplementationClassUID", "replaced"))


def _mark(ds: Any) -> None:
    """Say in the header that this file was de-identified, and how (PS3.15 codes)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    codes = []
    for value, meaning in (
        ("113100", "Basic Application Confidentiality Profile"),
        ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
        ("113108", "Retain Patient Characteristics Option"),
    ):
        code = Dataset()
        code.CodeValue = value
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    ds.LongitudinalTemporalInformationModified = "MODIFIED"


def _check_folders(in_dir: Path, out_dir: Path, log_path: Path) -> None:
    if not in_dir.is_dir():
        raise DeidError(f"{in_dir}: no such folder; give the folder that holds the DICOM files")
    src, dst = in_dir.resolve(), out_dir.resolve()
    if dst == src or src in dst.parents:
        raise DeidError(
            f"{out_dir}: the output folder is the input folder or inside it ({in_dir}); "
            "de-identified files must go to a separate, new folder, e.g. "
            f"{src.parent / (src.name + '-deid')}"
        )
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise DeidError(
            f"{out_dir}: the output folder is not empty (or is a file); nodulekit deid writes "
            "only into a new or empty folder so that nothing identified can mix with its "
            "output; give another folder or empty this one"
        )
    log = log_path.resolve()
    if log == src or src in log.parents:
        raise DeidError(f"{log_path}: the log must not be written inside the input folder")


def _open_private(path: Path, mode: str = "wb") -> Any:
    """A new file readable by its owner only (0o600); refuses to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding="utf-8", newline="")


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


BROKEN_HELP = (
    "re-export or re-download the file, or move it out of the folder; or pass "
    'broken="skip" (the CLI: --skip-broken) to leave broken files out, which makes their '
    "series read as missing slices, never as a volume padded with air"
)


def _survey(in_dir: Path) -> tuple[list[Path], int, list[tuple[str, str]]]:
    """Every file under ``in_dir``: DICOM images, count of others skipped, broken ones.

    A file that says it is DICOM (``DICM`` after the preamble) but does not read, or whose
    pixel data is incomplete, is broken; other unreadable files are simply not DICOM.
    """
    images: list[Path] = []
    skipped = 0
    broken: list[tuple[str, str]] = []
    for path in sorted(p for p in in_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        ds, problem = check_dicom_file(path)
        if problem:
            broken.append((path.relative_to(in_dir).as_posix(), problem))
        elif ds is None or "PixelData" not in ds or path.name.upper() == "DICOMDIR":
            skipped += 1
        else:
            images.append(path)
    return images, skipped, broken


def _check_survey(
    in_dir: Path, images: list, skipped: int, broken: list[tuple[str, str]], policy: str
) -> None:
    """Refuse a folder without DICOM images, and broken files unless told to skip them."""
    if broken and policy == "error":
        listed = "; ".join(f"{path}: {why}" for path, why in broken[:5])
        more = f" (and {len(broken) - 5} more)" if len(broken) > 5 else ""
        raise DeidError(
            f"{in_dir}: {len(broken)} broken DICOM file(s), nothing written: {listed}{more}. "
            f"{BROKEN_HELP[0].upper()}{BROKEN_HELP[1:]}"
        )
    if not images:
        raise DeidError(
            f"{in_dir}: no DICOM image files ({skipped + len(broken)} file(s) searched in all "
            f"subfolders, none a readable DICOM file with pixel data"
            + (f", {len(broken)} broken" if broken else "")
            + "); give the folder that holds the .dcm files"
        )


def deidentify_folder(
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    salt: str | bytes | None = None,
    log_path: str | Path | None = None,
    random_salt: bool = False,
    broken: str = "error",
) -> DeidReport:
    """De-identify every DICOM file under ``in_dir`` into the new folder ``out_dir``.

    Every file is read and checked before anything is written.

    Parameters
    ----------
    in_dir : path
        Folder searched recursively. Files that are not DICOM images (and DICOMDIR files) are
        skipped and counted, never copied.
    out_dir : path
        A new or empty folder, not inside ``in_dir``. Files go to
        ``<pseudonym>/<new SeriesInstanceUID>/<new SOPInstanceUID>.dcm`` (no original name
        or UID appears in a path), with owner-only permissions (files 0o600, folders 0o700).
    salt : str or bytes, optional
        Secret of at least 16 characters that keys pseudonyms, UIDs and date shifts; default:
        the environment variable ``NODULEKIT_DEID_SALT``. Never written anywhere.
    log_path : path, optional
        CSV log of what changed per output file (tag, attribute, action; never a value).
        Default ``out_dir / "deid_log.csv"``.
    random_salt : bool, default False
        Use a random salt instead: a one-off run whose pseudonyms and UIDs cannot be reproduced.
    broken : {"error", "skip"}
        What to do with a broken DICOM file (one that says it is DICOM but does not read, or
        whose pixel data is shorter than its header needs, see `nodulekit.data.dicom.check_dicom_file`):
        refuse the whole run before writing anything (default), or leave the file out and
        list it in `DeidReport.broken_files`. A broken file is never copied: a reader pads
        missing pixels with zeros, so the copy would read better than its source.

    Returns
    -------
    DeidReport

    Raises
    ------
    DeidError
        Without a salt (saying how to make one), with a short salt, when ``out_dir`` is
        ``in_dir``, lies inside it, or is not empty, when ``in_dir`` holds no DICOM image, or
        (with ``broken="error"``) naming each broken file and why.
    """
    if broken not in ("error", "skip"):
        raise ValueError(f'broken must be "error" or "skip", not {broken!r}')
    in_dir, out_dir = Path(in_dir).expanduser(), Path(out_dir).expanduser()
    log_path = Path(log_path).expanduser() if log_path else out_dir / "deid_log.csv"
    _check_folders(in_dir, out_dir, log_path)
    key, reproducible = _key(salt, random_salt)
    images, skipped, broken_files = _survey(in_dir)
    _check_survey(in_dir, images, skipped, broken_files, broken)
    _mkdir_private(out_dir)
    _mkdir_private(log_path.parent)
    tally = _Tally()
    with _open_private(log_path, "w") as log_file:
        log = csv.writer(log_file)
        log.writerow(["file", "tag", "attribute", "action"])
        for path in images:
            _deidentify_file(path, out_dir, _Keyed(key), log, tally)
    return DeidReport(
        out_dir=out_dir,
        files_written=tally.written,
        files_skipped=skipped,
        patients=len(tally.patients),
        series=len(tally.series),
        log_path=log_path,
        reproducible=reproducible,
        burned_in_files=tally.burned_in,
        actions=dict(tally.actions),
        broken_files=tuple(broken_files),
    )


@dataclass
class _Tally:
    written: int = 0
    burned_in: int = 0
    patients: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    actions: Counter[str] = field(default_factory=Counter)


def _deidentify_file(path: Path, out_dir: Path, keyed: _Keyed, log: Any, tally: _Tally) -> None:
    """De-identify one (already checked) DICOM image into ``out_dir``; log and count it."""
    import pydicom

    ds = pydicom.dcmread(path)
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        tally.burned_in += 1
    patient = str(ds.get("PatientID", "") or ds.get("PatientName", "") or "")
    changes: list[tuple[str, str, str]] = []
    _clean(ds, keyed, patient, "", changes)
    sop_uid = ds.get("SOPInstanceUID")
    _clean_file_meta(ds.file_meta, keyed, sop_uid, changes)
    _mark(ds)
    ds.preamble = b"\0" * 128
    pseudonym = keyed.pseudonym(patient)
    series_uid = str(ds.get("SeriesInstanceUID", "") or "no-series")
    folder = out_dir / pseudonym / series_uid
    _mkdir_private(out_dir / pseudonym)
    _mkdir_private(folder)
    stem = sop_uid or f"{tally.written:06d}"
    target = folder / f"{stem}.dcm"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{stem}_{n}.dcm"
    with atomic_write(target) as out:  # 0o600; a kill leaves no half file under its name
        ds.save_as(out)
    relative = target.relative_to(out_dir).as_posix()
    for tag_text, where, action in changes:
        log.writerow([relative, tag_text, where, action])
        tally.actions[action] += 1
    tally.written += 1
    tally.patients.add(pseudonym)
    tally.series.add(series_uid)
