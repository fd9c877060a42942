"""Read and write scans: MetaImage (LUNA16), NIfTI and DICOM series, all through SimpleITK."""

from __future__ import annotations

from pathlib import Path

from nodulekit.data.dicom import find_dicom_series, read_dicom_series
from nodulekit.data.mask import Mask
from nodulekit.data.metaimage import check_header
from nodulekit.data.scan import Scan
from nodulekit.errors import ScanReadError

MHD_SUFFIXES = (".mhd", ".mha")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
SUPPORTED = "a .mhd/.mha MetaImage, a .nii/.nii.gz NIfTI file, or a folder of DICOM files"


def uid_from_filename(path: str | Path) -> str:
    """The series UID a scan file stands for: its name without the extension (LUNA16's way).

    >>> uid_from_filename("subset0/1.2.840.113.mhd"), uid_from_filename("1.2.3.nii.gz")
    ('1.2.840.113', '1.2.3')
    """
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", *MHD_SUFFIXES, ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_scan(
    path: str | Path,
    seriesuid: str | None = None,
    *,
    keep_identifiers: bool = False,
) -> Scan:
    """Read a CT scan from a MetaImage or NIfTI file, or a DICOM series folder.

    Parameters
    ----------
    path : path
        A ``.mhd``/``.mha`` file (LUNA16's format), a ``.nii``/``.nii.gz`` file, or a folder
        holding DICOM files (searched recursively).
    seriesuid : str, optional
        Which DICOM series to read when the folder holds more than one CT series.
    keep_identifiers : bool, default False
        DICOM only: also keep patient-identifying tags (name, ID, birth date...) in
        ``Scan.metadata["identifiers"]``. Off by default so that nothing nodulekit writes
        can carry them.

    Returns
    -------
    Scan
        int16 HU voxels ``(z, y, x)`` with origin, spacing and direction. For a file, the
        series UID is the file name without its extension (the LUNA16 convention).

    Raises
    ------
    ScanReadError
        For a missing, truncated or inconsistent file, an empty folder, or a folder without
        (exactly one) CT series; the message names the file and the fix.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ScanReadError(f"{path}: no such file or folder; expected {SUPPORTED}")
    if path.is_dir():
        series = find_dicom_series(path)
        return read_dicom_series(series, seriesuid, keep_identifiers=keep_identifiers, root=path)
    name = path.name.lower()
    if name.endswith(MHD_SUFFIXES):
        if name.endswith(".mhd"):
            header = check_header(path)
            if _plain_int16(header):
                return _read_plain_mhd(path, header)
        kind = "MetaImage"
    elif name.endswith(NIFTI_SUFFIXES):
        kind = "NIfTI"
    elif name.endswith((".raw", ".zraw")):
        raise ScanReadError(
            f"{path}: this is the voxel data of a MetaImage; read the .mhd header beside it "
            f"({path.with_suffix('.mhd').name})"
        )
    else:
        raise ScanReadError(f"{path}: unsupported file type; expected {SUPPORTED}")

    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        raise ScanReadError(f"{path}: SimpleITK cannot read this {kind} file: {first}") from e
    metadata = {"format": kind}
    return Scan.from_sitk(image, seriesuid=uid_from_filename(path), path=path, metadata=metadata)


def _plain_int16(header: dict[str, str]) -> bool:
    """True for the LUNA16 case: uncompressed little-endian int16 in a separate file."""
    msb = header.get("BinaryDataByteOrderMSB", header.get("ElementByteOrderMSB", "False"))
    return (
        header["ElementType"] == "MET_SHORT"
        and header.get("CompressedData", "False").lower() == "false"
        and msb.lower() == "false"
        and header.get("ElementNumberOfChannels", "1") == "1"
        and header.get("HeaderSize", "0") == "0"
        and header["ElementDataFile"].upper() != "LOCAL"
        and not header["ElementDataFile"].upper().startswith("LIST")
    )


def _read_plain_mhd(path: Path, header: dict[str, str]) -> Scan:
    """Geometry from SimpleITK's header reader, voxels straight from the ``.raw`` with numpy.

    One copy of the voxels in memory and no second pass, where ``sitk.ReadImage`` followed by
    ``GetArrayFromImage`` holds two (the header was checked against the file size already).
    """
    import numpy as np
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise ScanReadError(f"{path}: SimpleITK cannot read this MetaImage header: {e}") from e
    nx, ny, nz = reader.GetSize()
    array = np.fromfile(path.parent / header["ElementDataFile"], dtype="<i2")
    array = array.reshape(nz, ny, nx).astype(np.int16, copy=False)
    return Scan(
        array,
        reader.GetOrigin(),
        reader.GetSpacing(),
        reader.GetDirection(),
        seriesuid=uid_from_filename(path),
        path=path,
        metadata={"format": "MetaImage"},
    )


def read_mask(path: str | Path, *, name: str = "") -> Mask:
    """Read a label volume (a ``.mhd``/``.mha`` or NIfTI file) as a uint8 `Mask` with its grid.

    For example LUNA16's own lung masks, ``seg-lungs-LUNA16/<seriesuid>.mhd`` (labels 3 and 4:
    the lungs, 5: airways): ``read_mask(path).array >= 3``. The series UID is the file name.

    Raises
    ------
    ScanReadError
        For a missing or unreadable file, or labels outside 0..255.
    """
    import SimpleITK as sitk

    from nodulekit.errors import GeometryError

    path = Path(path).expanduser()
    if not path.is_file():
        raise ScanReadError(f"{path}: no such mask file; expected a .mhd, .mha, .nii or .nii.gz")
    if path.name.lower().endswith(".mhd"):
        check_header(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        raise ScanReadError(f"{path}: SimpleITK cannot read this mask: {first}") from e
    try:
        return Mask.from_sitk(image, seriesuid=uid_from_filename(path), name=name)
    except GeometryError as e:
        raise ScanReadError(f"{path}: {e}") from e


def write_scan(scan: Scan, path: str | Path, *, compress: bool = False) -> Path:
    """Write ``scan`` as MetaImage (``.mhd`` + ``.raw``/``.zraw``) or NIfTI, by the suffix.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> scan = Scan(np.arange(24, dtype=np.int16).reshape(2, 3, 4), (1, 2, 3), (0.7, 0.7, 2.5))
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> back = read_scan(write_scan(scan, folder / "1.2.3.mhd"))
    >>> back.seriesuid, back.spacing, bool((back.array == scan.array).all())
    ('1.2.3', (0.7, 0.7, 2.5), True)
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.name.lower().endswith((*MHD_SUFFIXES, *NIFTI_SUFFIXES)):
        raise ValueError(f"{path}: write_scan writes .mhd, .mha, .nii or .nii.gz files")
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(scan.to_sitk(), str(path), useCompression=compress)
    return path
