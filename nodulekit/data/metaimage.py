"""MetaImage (``.mhd``) headers: the one parser, and checks before SimpleITK reads them.

`read_header` is the project's only MetaImage header parser: anything that needs a header
field without the voxels (a series table, a cache fingerprint, a browser listing) calls it,
or `header_geometry` for the shape and spacing.

SimpleITK reads a short ``.raw`` with a terse message or, for some versions, reads garbage
past the end. LUNA16 users meet truncated downloads often, so the header is checked first and
the error says which file is short, by how much, and what to do. A data file that holds a
whole number of voxels of *another* element type (a ``MET_FLOAT`` header over int16 data) is
not a truncated download: the error says that the element type and the file size disagree.
"""

from __future__ import annotations

from pathlib import Path

from nodulekit.errors import ScanReadError

ELEMENT_BYTES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 8,
    "MET_ULONG": 8,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}

REQUIRED = ("NDims", "DimSize", "ElementType", "ElementDataFile")

__all__ = ["ELEMENT_BYTES", "check_header", "header_geometry", "read_header"]


def read_header(path: str | Path) -> dict[str, str]:
    r"""Parse a MetaImage header into ``{key: value}`` strings (keys as written).

    Reads at most the first 64 KiB and stops at ``ElementDataFile`` (the last header field;
    inline data may follow). Values are left as text: ``"512 512 133"`` for ``DimSize``.
    Nothing is checked; `check_header` checks the fields against the data file.

    Raises
    ------
    ScanReadError
        When the file cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.mhd"
    >>> _ = path.write_text("NDims = 3\nDimSize = 4 3 2\nElementType = MET_SHORT\n"
    ...                     "ElementSpacing = 0.7 0.7 2.5\nElementDataFile = a.raw\n")
    >>> read_header(path)["DimSize"]
    '4 3 2'
    """
    path = Path(path)
    try:
        text = path.read_bytes()[:65536].decode("latin-1")
    except OSError as e:
        raise ScanReadError(f"{path}: cannot read the MetaImage header ({e})") from e
    header: dict[str, str] = {}
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, _, value = line.partition("=")
        header[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break  # data may follow (LOCAL); nothing after it is header
    return header


def header_geometry(
    header: dict[str, str] | str | Path, *, source: str = "header"
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """``(shape_zyx, spacing_zyx_mm)`` of a 3D MetaImage from its header alone, no voxels read.

    ``header`` is a parsed header (`read_header`) or the path of a ``.mhd``/``.mha`` file.
    ``ElementSpacing`` (or ``ElementSize``) defaults to 1 mm when absent, as in ITK.

    Examples
    --------
    >>> header_geometry({"DimSize": "512 512 133", "ElementSpacing": "0.7 0.7 2.5"})
    ((133, 512, 512), (2.5, 0.7, 0.7))
    """
    if not isinstance(header, dict):
        source = str(header)
        header = read_header(header)
    try:
        nx, ny, nz = (int(v) for v in header["DimSize"].split())
        spacing = header.get("ElementSpacing", header.get("ElementSize", "1 1 1"))
        sx, sy, sz = (float(v) for v in spacing.split())
    except (KeyError, ValueError) as e:
        raise ScanReadError(
            f"{source}: needs DimSize and ElementSpacing of 3 numbers each, found "
            f"DimSize = {header.get('DimSize')!r}, ElementSpacing = {header.get('ElementSpacing')!r}"
        ) from e
    return (nz, ny, nx), (sz, sy, sx)


def _other_element_types(actual: int, voxels: int, element: str) -> list[str]:
    """Element types whose size times ``voxels`` is exactly ``actual`` bytes (not ``element``)."""
    if voxels <= 0 or actual % voxels:
        return []
    size = actual // voxels
    return [name for name, n in ELEMENT_BYTES.items() if n == size and name != element]


def check_header(path: str | Path) -> dict[str, str]:
    """Validate a ``.mhd`` header against its data file; return the parsed header.

    Raises `ScanReadError` naming the file, the field and the fix when a required field is
    missing, the data file is absent, or its size disagrees with ``DimSize`` x ``ElementType``.
    """
    path = Path(path)
    header = read_header(path)
    for key in REQUIRED:
        if key not in header:
            raise ScanReadError(
                f"{path}: the MetaImage header has no '{key}' field; a .mhd header needs "
                f"{', '.join(REQUIRED)} (re-extract the file from its archive)"
            )
    try:
        ndims = int(header["NDims"])
        dims = [int(v) for v in header["DimSize"].split()]
    except ValueError as e:
        raise ScanReadError(
            f"{path}: NDims/DimSize must be integers, found NDims = {header['NDims']!r}, "
            f"DimSize = {header['DimSize']!r}"
        ) from e
    if ndims != 3 or len(dims) != 3 or min(dims) < 1:
        raise ScanReadError(
            f"{path}: a CT scan needs NDims = 3 and three positive DimSize values, "
            f"found NDims = {ndims}, DimSize = {header['DimSize']!r}"
        )
    element = header["ElementType"]
    if element not in ELEMENT_BYTES:
        raise ScanReadError(
            f"{path}: unknown ElementType {element!r}; expected one of {sorted(ELEMENT_BYTES)}"
        )
    data_name = header["ElementDataFile"]
    if data_name.upper() == "LOCAL" or data_name.upper().startswith("LIST"):
        return header  # data inline or listed: leave the details to SimpleITK
    data_path = path.parent / data_name
    if not data_path.is_file():
        raise ScanReadError(
            f"{path}: ElementDataFile = {data_name} but {data_path} does not exist; "
            "keep the .mhd and its .raw/.zraw in the same folder (re-extract the subset zip)"
        )
    compressed = header.get("CompressedData", "False").lower() == "true"
    if compressed:
        return header
    channels = int(header.get("ElementNumberOfChannels", "1"))
    expected = dims[0] * dims[1] * dims[2] * ELEMENT_BYTES[element] * channels
    header_size = int(header.get("HeaderSize", "0"))
    if header_size == -1:  # data at the end of the file, after any header bytes
        header_size = max(0, data_path.stat().st_size - expected)
    actual = data_path.stat().st_size - header_size
    voxels = dims[0] * dims[1] * dims[2] * channels
    others = _other_element_types(actual, voxels, element) if actual != expected else []
    if others:
        fits = " or ".join(others[:2])
        raise ScanReadError(
            f"{path}: the element type and the file size disagree: ElementType = {element} is "
            f"{ELEMENT_BYTES[element]} bytes per voxel ({expected:,} bytes for DimSize = "
            f"{' '.join(map(str, dims))}), but {data_path.name} holds {actual:,} bytes, exactly "
            f"{actual // voxels} per voxel ({fits}); the data was written with another type "
            f"than the header says: fix the ElementType line (MET_SHORT for int16 CT) or "
            "write the scan again"
            + (
                "; if the header is right, the file was cut short: download it again"
                if actual < expected
                else ""
            )
        )
    if actual < expected:
        raise ScanReadError(
            f"{data_path}: truncated: holds {actual:,} bytes but {path.name} says DimSize = "
            f"{' '.join(map(str, dims))} of {element} ({expected:,} bytes); the download or "
            "extraction was cut short: download the subset again (nodulekit download resumes)"
        )
    if actual > expected:
        raise ScanReadError(
            f"{path}: the header does not match its data: DimSize = {' '.join(map(str, dims))} "
            f"of {element} is {expected:,} bytes but {data_path.name} holds {actual:,}; "
            "the header was edited or belongs to another scan"
        )
    return header
