"""Checks on MetaImage (``.mhd``) headers before SimpleITK reads them.

SimpleITK reads a short ``.raw`` with a terse message or, for some versions, reads garbage
past the end. LUNA16 users meet truncated downloads often, so the header is checked first and
the error says which file is short, by how much, and what to do.
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


def read_header(path: str | Path) -> dict[str, str]:
    """Parse a MetaImage header into ``{key: value}`` strings (keys as written)."""
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
