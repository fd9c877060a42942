"""File checksums: streaming digests and verification against a recorded value.

A recorded checksum is written ``"md5:<hex>"`` or ``"sha256:<hex>"`` (Zenodo's form), or as
bare hex, whose length says the algorithm (32 digits md5, 64 digits sha256).
"""

from __future__ import annotations

import hashlib
import string
from pathlib import Path

from nodulekit.errors import ChecksumError

ALGORITHMS = ("md5", "sha256")
_HEX_LENGTH = {"md5": 32, "sha256": 64}
_CHUNK = 1 << 20


def parse_checksum(expected: str) -> tuple[str, str]:
    """Split a recorded checksum into ``(algorithm, lowercase hex)``.

    Examples
    --------
    >>> parse_checksum("md5:D41D8CD98F00B204E9800998ECF8427E")
    ('md5', 'd41d8cd98f00b204e9800998ecf8427e')
    >>> parse_checksum("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")[0]
    'sha256'
    """
    text = str(expected).strip()
    algorithm, sep, digest = text.partition(":")
    if sep:
        algorithm = algorithm.strip().lower().replace("-", "")
    else:
        digest = text
        by_length = {n: name for name, n in _HEX_LENGTH.items()}
        algorithm = by_length.get(len(digest), "")
        if not algorithm:
            raise ChecksumError(
                f"checksum {expected!r} has {len(digest)} characters; expected 32 (md5) or 64 "
                "(sha256) hex digits, or a prefixed form such as 'sha256:<hex>'"
            )
    digest = digest.strip().lower()
    if algorithm not in _HEX_LENGTH:
        raise ChecksumError(
            f"checksum {expected!r} uses algorithm {algorithm!r}; expected one of {ALGORITHMS}"
        )
    if len(digest) != _HEX_LENGTH[algorithm] or set(digest) - set(string.hexdigits.lower()):
        raise ChecksumError(
            f"checksum {expected!r} is not a {algorithm} digest; expected "
            f"{_HEX_LENGTH[algorithm]} hex digits after '{algorithm}:'"
        )
    return algorithm, digest


def new_hasher(algorithm: str) -> hashlib._Hash:
    """A fresh hashlib object for ``"md5"`` or ``"sha256"``."""
    if algorithm not in _HEX_LENGTH:
        raise ChecksumError(
            f"unknown checksum algorithm {algorithm!r}; expected one of {ALGORITHMS}"
        )
    if algorithm == "md5":
        return hashlib.md5(usedforsecurity=False)
    return hashlib.sha256()


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB chunks (constant memory for any size).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "empty"
    >>> _ = p.write_bytes(b"")
    >>> file_digest(p)
    'd41d8cd98f00b204e9800998ecf8427e'
    """
    hasher = new_hasher(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def checksum_mismatch_message(path: str | Path, algorithm: str, expected: str, actual: str) -> str:
    """The one wording used for every checksum mismatch."""
    return (
        f"{path}: {algorithm} checksum is {actual}, expected {expected}; the file is damaged or "
        "incomplete. Delete it and download it again"
    )


def verify_file(path: str | Path, expected: str) -> str:
    """Check a file against its recorded checksum; return the digest when it matches.

    Parameters
    ----------
    path : path
        The file to check.
    expected : str
        ``"md5:<hex>"``, ``"sha256:<hex>"``, or bare hex (32 digits md5, 64 sha256).

    Raises
    ------
    ChecksumError
        When the digest differs (the message names the file, both digests and the fix), or
        ``expected`` is not a checksum.
    FileNotFoundError
        When the file does not exist.
    """
    algorithm, digest = parse_checksum(expected)
    actual = file_digest(path, algorithm)
    if actual != digest:
        raise ChecksumError(checksum_mismatch_message(path, algorithm, digest, actual))
    return actual
