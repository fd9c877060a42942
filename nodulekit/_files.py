"""One atomic file write for every layer (below every layer, like ``errors``).

A file is written to a hidden temporary name in its own folder, flushed to disk, given its
mode, and renamed over the target with :func:`os.replace`: a reader sees the old file or the
new one, never half of one, and a crash leaves no partial target (the temporary is removed).
`check_writable` refuses an output folder that cannot be written before any work starts.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "write_bytes_atomic", "write_text_atomic"]


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "wb", *, permissions: int | None = 0o600
) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    Parameters
    ----------
    path : path-like
        The final file. Its folder is created if needed.
    mode : {"wb", "w"}
        Binary or text.
    permissions : int or None
        Mode bits of the final file (``0o600`` by default: runs and caches are private);
        ``None`` keeps the process umask.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_write(target, "w") as fh:
    ...     _ = fh.write("hello")
    >>> target.read_text(encoding="utf-8")
    'hello'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # text is always UTF-8: a report or a table must not depend on the locale (CI runs in C)
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if permissions is not None:
            os.chmod(tmp, permissions)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(
    path: str | os.PathLike[str], text: str, *, permissions: int | None = 0o600
) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`); return the path."""
    with atomic_write(path, "w", permissions=permissions) as fh:
        fh.write(text)
    return Path(path)


def write_bytes_atomic(
    path: str | os.PathLike[str], data: bytes, *, permissions: int | None = 0o600
) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`); return the path."""
    with atomic_write(path, "wb", permissions=permissions) as fh:
        fh.write(data)
    return Path(path)


def check_writable(folder: str | Path, option: str) -> None:
    """Refuse a folder that cannot be created or written, before any work is done."""
    from nodulekit.errors import NodulekitError

    path = Path(folder).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise NodulekitError(
            f"{option} {folder}: {existing} is not a folder you can write; choose another "
            f"{option}, or fix the folder's permissions"
        )
