"""Safe extraction of zip and tar archives.

Every member is checked before anything is written: absolute paths, ``..`` components,
drive letters, backslashes, special files, and links that could point outside the target
folder are refused with :class:`~nodulekit.errors.UnsafeArchiveError`. Each file is written
under a temporary name and renamed when complete, so a crash leaves no half-written file
under its real name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from nodulekit._files import atomic_write
from nodulekit.errors import DiskSpaceError, UnsafeArchiveError

_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 20
_PROGRESS_MIN_BYTES = 64 << 20  # show a bar for archives bigger than this


@dataclass(frozen=True)
class _Member:
    """One checked archive member: where it goes and what it is."""

    parts: tuple[str, ...]  # path components under the target folder
    kind: str  # "file", "dir", "symlink", "hardlink"
    size: int
    link: str = ""  # symlink target (as stored) or hard-link source member
    handle: object = None  # ZipInfo or TarInfo


def _refuse(archive: Path, name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive}: member {name!r} {why}; refusing to extract anything from this archive. "
        "Get the archive from its official source, or extract it by hand after inspecting it"
    )


def _member_parts(archive: Path, name: str) -> tuple[str, ...]:
    """Split a member name into safe path components, or refuse it."""
    if "\x00" in name:
        raise _refuse(archive, name, "contains a NUL character")
    if "\\" in name:
        raise _refuse(archive, name, "contains a backslash (a Windows path separator)")
    if name.startswith("/"):
        raise _refuse(archive, name, "is an absolute path")
    if _DRIVE.match(name):
        raise _refuse(archive, name, "starts with a drive letter")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise _refuse(archive, name, "has a '..' component that leaves the target folder")
    if not parts:
        raise _refuse(archive, name, "has an empty path")
    return parts


def _check_link(archive: Path, name: str, target: str) -> None:
    """A symlink may only point down into its own folder: relative, no ``..``, no drive."""
    if not target:
        raise _refuse(archive, name, "is a link with an empty target")
    if target.startswith(("/", "\\")) or _DRIVE.match(target) or "\\" in target:
        raise _refuse(archive, name, f"is a link to {target!r}, outside the target folder")
    if ".." in PurePosixPath(target).parts:
        raise _refuse(archive, name, f"is a link to {target!r}, which may leave the target folder")


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[_Member]:
    members = []
    for info in zf.infolist():
        parts = _member_parts(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            target = zf.read(info).decode("utf-8", "replace")
            _check_link(archive, info.filename, target)
            members.append(_Member(parts, "symlink", 0, target, info))
        elif info.is_dir() or stat.S_ISDIR(mode):
            members.append(_Member(parts, "dir", 0, handle=info))
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: type bits not recorded
            raise _refuse(archive, info.filename, "is a special file (device, fifo or socket)")
        else:
            members.append(_Member(parts, "file", info.file_size, handle=info))
    return members


def _tar_members(archive: Path, tf: tarfile.TarFile) -> list[_Member]:
    members = []
    for info in tf.getmembers():
        parts = _member_parts(archive, info.name)
        if info.issym():
            _check_link(archive, info.name, info.linkname)
            members.append(_Member(parts, "symlink", 0, info.linkname, info))
        elif info.islnk():
            source = _member_parts(archive, info.linkname)
            members.append(_Member(parts, "hardlink", 0, "/".join(source), info))
        elif info.isdir():
            members.append(_Member(parts, "dir", 0, handle=info))
        elif info.isfile():
            members.append(_Member(parts, "file", info.size, handle=info))
        else:
            raise _refuse(archive, info.name, "is a special file (device, fifo or socket)")
    return members


@contextlib.contextmanager
def _open_archive(archive: Path) -> Iterator[tuple[str, zipfile.ZipFile | tarfile.TarFile]]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            yield "zip", zf
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            yield "tar", tf
    else:
        raise UnsafeArchiveError(
            f"{archive}: not a zip or tar archive (damaged or incomplete?); delete it and "
            "download it again"
        )


def _check_tree(archive: Path, members: list[_Member]) -> None:
    """Refuse members that would be written through (or over) a link or a file."""
    links = {m.parts for m in members if m.kind == "symlink"}
    files = {m.parts for m in members if m.kind != "dir"}
    for m in members:
        for depth in range(1, len(m.parts)):
            prefix = m.parts[:depth]
            if prefix in links:
                raise _refuse(archive, "/".join(m.parts), "is written through a link member")
            if prefix in files:
                raise _refuse(archive, "/".join(m.parts), "sits under a member that is a file")
    names = [m.parts for m in members if m.kind != "dir"]
    known = set(names)
    for m in members:
        if m.kind == "hardlink" and tuple(m.link.split("/")) not in known:
            raise _refuse(archive, "/".join(m.parts), f"is a hard link to {m.link!r}, not a file")


def _write_atomic(source: IO[bytes], dest: Path, bar: object | None) -> None:
    with atomic_write(dest, "wb", permissions=None) as out:  # the umask's mode, like unzip
        while chunk := source.read(_CHUNK):
            out.write(chunk)
            if bar is not None:
                bar.update(len(chunk))  # type: ignore[attr-defined]


def check_free_space(folder: Path, needed_bytes: int, what: str) -> None:
    """Raise :class:`DiskSpaceError` when ``folder``'s disk has less than ``needed_bytes`` free."""
    probe = Path(folder).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        raise DiskSpaceError(
            f"{what} needs {needed_bytes / 1e9:.2f} GB but {probe} has {free / 1e9:.2f} GB free; "
            "free some space or choose another folder"
        )


def list_members(archive_path: str | Path) -> list[str]:
    """Names of an archive's members after the safety checks (nothing is written)."""
    archive = Path(archive_path)
    with _open_archive(archive) as (kind, handle):
        members = _zip_members(archive, handle) if kind == "zip" else _tar_members(archive, handle)
        _check_tree(archive, members)
    return ["/".join(m.parts) for m in members]


def safe_extract(
    archive_path: str | Path,
    target_dir: str | Path,
    *,
    progress: bool | None = None,
) -> list[Path]:
    """Extract a zip or tar archive into ``target_dir``, refusing anything unsafe.

    Parameters
    ----------
    archive_path : path
        A ``.zip`` or a (compressed) tar archive.
    target_dir : path
        Where the members go; created if needed (only once every member has passed).
    progress : bool, optional
        Show a tqdm bar; by default only for archives above 64 MB of content.

    Returns
    -------
    list of Path
        The files and links written, in archive order (folders are not listed).

    Raises
    ------
    UnsafeArchiveError
        A member with an absolute path, a drive letter, a backslash, a ``..`` component, a link
        that could leave the target, or a special file; raised before anything is written.
        Also for a file that is not a zip or tar archive.
    DiskSpaceError
        When the target's disk cannot hold the extracted content.
    """
    archive = Path(archive_path)
    target = Path(target_dir)
    with _open_archive(archive) as (kind, handle):
        members = _zip_members(archive, handle) if kind == "zip" else _tar_members(archive, handle)
        _check_tree(archive, members)
        total = sum(m.size for m in members)
        check_free_space(target, total, f"extracting {archive.name}")
        target.mkdir(parents=True, exist_ok=True)
        show = total >= _PROGRESS_MIN_BYTES if progress is None else progress
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"extract {archive.name}")
        written: list[Path] = []
        try:
            for m in members:
                dest = target.joinpath(*m.parts)
                if m.kind == "dir":
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.is_symlink() or (dest.exists() and not dest.is_file()):
                    if dest.is_dir() and not dest.is_symlink():
                        raise _refuse(archive, "/".join(m.parts), f"would replace folder {dest}")
                    dest.unlink()
                if m.kind == "symlink":
                    os.symlink(m.link, dest)
                elif m.kind == "hardlink":
                    with (
                        open(target.joinpath(*m.link.split("/")), "rb") as source,
                        atomic_write(dest, "wb", permissions=None) as out,
                    ):
                        shutil.copyfileobj(source, out, _CHUNK)
                elif kind == "zip":
                    with handle.open(m.handle) as source:  # type: ignore[union-attr,arg-type]
                        _write_atomic(source, dest, bar)
                else:
                    source = handle.extractfile(m.handle)  # type: ignore[union-attr,arg-type]
                    with contextlib.closing(source):
                        _write_atomic(source, dest, bar)  # type: ignore[arg-type]
                written.append(dest)
        finally:
            if bar is not None:
                bar.close()
    return written
