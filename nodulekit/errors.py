"""Exceptions shared by every layer of nodulekit.

Each one is also a built-in exception type (``ValueError``, ``FileNotFoundError``...), so
code that catches the built-in keeps working. Messages name the file, the field, what was
expected, what came, and what to do.
"""

from __future__ import annotations


class NodulekitError(Exception):
    """Base class of every error nodulekit raises on purpose."""


class ScanReadError(NodulekitError, ValueError):
    """A scan file or folder could not be read as a CT volume."""


class TableError(NodulekitError, ValueError):
    """A LUNA16-style CSV table is missing a column or holds a bad value."""


class UnknownSeriesError(NodulekitError, KeyError):
    """A series UID that the data set does not hold."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class GeometryError(NodulekitError, ValueError):
    """Two scans or masks do not occupy the same physical space, or a geometry is invalid."""


class UnsafeArchiveError(NodulekitError, ValueError):
    """An archive member would be written outside the target folder."""


class ChecksumError(NodulekitError, ValueError):
    """A file's checksum does not match the recorded one."""


class CheckpointError(NodulekitError, ValueError):
    """A checkpoint file is corrupt, truncated, foreign, or fails its recorded checksum."""


class DownloadError(NodulekitError, OSError):
    """A download failed (network, HTTP status, a server answer that makes no sense)."""


class DiskSpaceError(NodulekitError, OSError):
    """Not enough free disk space for a download or an extraction."""


class DeidError(NodulekitError, ValueError):
    """De-identification refused: no secret salt, or an unsafe output folder."""


class CacheError(NodulekitError, ValueError):
    """A crop cache is incomplete, corrupt, or was built from other parameters or sources."""


class OutputExistsError(NodulekitError, FileExistsError):
    """An output folder already holds something that would be overwritten."""
