"""Download LUNA16 from its public Zenodo records, with resume, checksums and safe extraction.

LUNA16 is split over two Zenodo records (one record holds at most 50 GB): ``3723295``
(subset0-6 and the tables) and ``4121926`` (subset7-9). Both are read and files are picked
by name, so it does not matter which record holds which file.

Only the standard library talks to the network (``urllib.request``), and only when
:func:`download_luna16` or :func:`download_file` is called: nothing else in nodulekit does.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nodulekit._files import atomic_write, write_text_atomic
from nodulekit.data.archive import check_free_space, safe_extract
from nodulekit.data.checksums import file_digest, parse_checksum
from nodulekit.errors import ChecksumError, DownloadError

DEFAULT_BASE_URL = "https://zenodo.org"
LUNA16_RECORDS = ("3723295", "4121926")
ALL_SUBSETS = tuple(range(10))
TABLE_FILES = (
    "annotations.csv",
    "candidates_V2.zip",
    "sampleSubmission.csv",
    "evaluationScript.zip",
)
LUNG_MASK_FILE = "seg-lungs-LUNA16.zip"
# tables found inside extracted zips that are copied to the root, where Luna16 looks for them
ROOT_TABLES = ("candidates_V2.csv", "annotations_excluded.csv", "seriesuids.csv")
COMPLETE_MARKER = ".nodulekit-complete"
_STAGING_PREFIX = ".nodulekit-extract-"
_SUBSET = re.compile(r"^subset(\d+)\.zip$")
_CHUNK = 1 << 20
_USER_AGENT = "nodulekit (https://github.com/nodulekit/nodulekit)"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a Zenodo record."""

    key: str
    size: int
    checksum: str  # "md5:<hex>" as Zenodo gives it; "" if the record has none
    url: str
    record: str

    @property
    def subset(self) -> int | None:
        """The LUNA16 subset number for ``subsetN.zip``, else None."""
        match = _SUBSET.match(self.key)
        return int(match.group(1)) if match else None

    @property
    def is_archive(self) -> bool:
        return self.key.lower().endswith(".zip")

    @property
    def stem(self) -> str:
        return self.key[:-4] if self.is_archive else self.key


@dataclass
class PlanItem:
    """A file in the plan and what is already on disk for it."""

    file: RemoteFile
    status: str  # "to download", "partial", "downloaded", "done", "present"
    have_bytes: int = 0


@dataclass
class DownloadPlan:
    """What :func:`download_luna16` would do; ``str(plan)`` is the table it prints."""

    out_dir: Path
    items: list[PlanItem]
    extract: bool
    free_bytes: int
    not_found: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(item.file.size for item in self.items)

    @property
    def remaining_bytes(self) -> int:
        """Bytes still to transfer (partial downloads count only their missing part)."""
        return sum(
            item.file.size - item.have_bytes
            for item in self.items
            if item.status in ("to download", "partial")
        )

    @property
    def needed_bytes(self) -> int:
        """Disk needed, roughly: what is left to download plus room to extract the archives."""
        extracting = sum(
            item.file.size
            for item in self.items
            if self.extract and item.file.is_archive and item.status not in ("done", "present")
        )
        return self.remaining_bytes + extracting

    def __str__(self) -> str:
        width = max([len(item.file.key) for item in self.items] + [4])
        lines = [f"LUNA16 download plan -> {self.out_dir}"]
        lines.append(f"  {'file':<{width}}  {'size':>9}  {'record':<8}  status")
        for item in self.items:
            status = item.status
            if status == "partial":
                status = f"partial ({_human(item.have_bytes)} here, resumes)"
            lines.append(
                f"  {item.file.key:<{width}}  {_human(item.file.size):>9}  "
                f"{item.file.record:<8}  {status}"
            )
        for key in self.not_found:
            lines.append(f"  {key:<{width}}  {'-':>9}  {'-':<8}  not in the records, skipped")
        lines.append(
            f"  total {_human(self.total_bytes)}; to download {_human(self.remaining_bytes)}; "
            f"disk needed about {_human(self.needed_bytes)}, free {_human(self.free_bytes)}"
        )
        return "\n".join(lines)


def _human(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n_bytes) < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.1f} GB"  # pragma: no cover


def _say(message: str) -> None:
    print(message, flush=True)


def _open_url(url: str, *, timeout: float, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"{url}: could not connect ({reason}); check the network connection and the base "
            "URL, then run the same command again (finished files are kept)"
        ) from error


def parse_subsets(text: str | Iterable[int] | None) -> tuple[int, ...]:
    """``"all"``, ``"none"``, ``"0,1,5"``, ``"0-3"`` (or a list of ints) -> sorted subset numbers.

    Examples
    --------
    >>> parse_subsets("0-2,7")
    (0, 1, 2, 7)
    >>> parse_subsets("none")
    ()
    """
    if text is None:
        return ALL_SUBSETS
    if not isinstance(text, str):
        numbers = {int(n) for n in text}
    elif text.strip().lower() == "all":
        return ALL_SUBSETS
    elif text.strip().lower() in ("", "none"):
        return ()
    else:
        numbers = set()
        for part in text.split(","):
            part = part.strip()
            if re.fullmatch(r"\d+", part):
                numbers.add(int(part))
            elif match := re.fullmatch(r"(\d+)\s*-\s*(\d+)", part):
                numbers.update(range(int(match.group(1)), int(match.group(2)) + 1))
            else:
                raise ValueError(
                    f"subsets {text!r}: cannot read {part!r}; expected numbers 0-9 such as "
                    "'0,1', a range such as '0-3', 'all' or 'none'"
                )
    bad = sorted(n for n in numbers if n not in ALL_SUBSETS)
    if bad:
        raise ValueError(f"subsets {bad} do not exist; LUNA16 has subsets 0 to 9")
    return tuple(sorted(numbers))


def fetch_record(
    record_id: str, *, base_url: str = DEFAULT_BASE_URL, timeout: float = 60.0
) -> list[RemoteFile]:
    """The files of one Zenodo record (``<base_url>/api/records/<record_id>``)."""
    url = f"{base_url.rstrip('/')}/api/records/{record_id}"
    try:
        with _open_url(url, timeout=timeout, headers={"Accept": "application/json"}) as response:
            record = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        raise DownloadError(
            f"{url}: the server answered HTTP {error.code} {error.reason}; check the record "
            "number and the base URL, or try again later"
        ) from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DownloadError(
            f"{url}: the answer is not JSON ({error}); check the base URL"
        ) from error
    files = record.get("files") if isinstance(record, dict) else None
    if isinstance(files, dict):  # InvenioRDM form: {"entries": {key: {...}} or [...]}
        files = files.get("entries", [])
        files = list(files.values()) if isinstance(files, dict) else files
    if not isinstance(files, list):
        raise DownloadError(f"{url}: the record lists no files (no 'files' entry); check the URL")
    out = []
    for entry in files:
        key = entry.get("key") or entry.get("filename")
        if not key:
            continue
        links = entry.get("links") or {}
        file_url = (
            links.get("self")
            or links.get("content")
            or links.get("download")
            or f"{base_url.rstrip('/')}/api/records/{record_id}/files/{key}/content"
        )
        out.append(
            RemoteFile(
                key=str(key),
                size=int(entry.get("size") or entry.get("filesize") or 0),
                checksum=str(entry.get("checksum") or ""),
                url=str(file_url),
                record=str(record_id),
            )
        )
    return out


def _target(out_dir: Path, remote: RemoteFile, extract: bool) -> Path:
    """Where the finished result of ``remote`` lives: a folder for extracted zips, else a file."""
    return out_dir / (remote.stem if extract and remote.is_archive else remote.key)


def _status(out_dir: Path, remote: RemoteFile, extract: bool) -> PlanItem:
    target = _target(out_dir, remote, extract)
    local = out_dir / remote.key
    part = local.with_name(local.name + ".part")
    if extract and remote.is_archive and target.is_dir():
        done = (target / COMPLETE_MARKER).exists()
        return PlanItem(remote, "done" if done else "present")
    if local.is_file() and (not remote.size or local.stat().st_size == remote.size):
        finished = not (extract and remote.is_archive)
        return PlanItem(remote, "done" if finished else "downloaded", remote.size)
    if part.is_file() and 0 < part.stat().st_size <= remote.size:
        return PlanItem(remote, "partial", part.stat().st_size)
    return PlanItem(remote, "to download")


def plan_luna16(
    out_dir: str | Path,
    *,
    subsets: str | Iterable[int] | None = ALL_SUBSETS,
    tables: bool = True,
    lung_masks: bool = False,
    extract: bool = True,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 60.0,
    records: Sequence[str] = LUNA16_RECORDS,
) -> DownloadPlan:
    """Read the LUNA16 records and say what a download would fetch; nothing is written.

    Parameters are those of :func:`download_luna16`. ``str(plan)`` is a table of the files,
    their sizes, what is already on disk, and the disk space needed.
    """
    out_dir = Path(out_dir).expanduser()
    wanted_subsets = parse_subsets(subsets)
    available: dict[str, RemoteFile] = {}
    for record_id in records:
        for remote in fetch_record(record_id, base_url=base_url, timeout=timeout):
            available.setdefault(remote.key, remote)
    wanted = [f"subset{n}.zip" for n in wanted_subsets]
    if tables:
        wanted += list(TABLE_FILES)
    if lung_masks:
        wanted.append(LUNG_MASK_FILE)
    missing_subsets = [k for k in wanted if _SUBSET.match(k) and k not in available]
    if missing_subsets:
        raise DownloadError(
            f"records {', '.join(records)} at {base_url} hold no {', '.join(missing_subsets)} "
            f"(they hold: {', '.join(sorted(available)) or 'nothing'}); check the base URL"
        )
    items = [_status(out_dir, available[k], extract) for k in wanted if k in available]
    probe = out_dir.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return DownloadPlan(
        out_dir=out_dir,
        items=items,
        extract=extract,
        free_bytes=shutil.disk_usage(probe).free,
        not_found=[k for k in wanted if k not in available],
    )


def _move_aside(part: Path, dest: Path) -> Path:
    corrupt = dest.with_name(dest.name + ".corrupt")
    os.replace(part, corrupt)
    return corrupt


def download_file(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    checksum: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a partial ``.part``.

    A ``.part`` left by a broken transfer is continued with an HTTP Range request; a server
    that ignores Range sends the whole file, which then replaces the ``.part``. The finished
    file is checked against ``size`` and ``checksum`` (``"md5:<hex>"``, ``"sha256:<hex>"``
    or bare hex) before it gets its real name.

    Raises
    ------
    ChecksumError
        Wrong checksum or too many bytes; the file is moved to ``<dest>.corrupt`` so the next
        run downloads it afresh.
    DownloadError
        Network failure or HTTP error; a partial ``.part`` is kept for the next run to resume.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if checksum:
        parse_checksum(checksum)  # a malformed checksum fails before any transfer
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is None or have < size or size == 0:
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            response = _open_url(url, timeout=timeout, headers=headers)
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:  # the .part is not a prefix the server knows
                part.unlink()
                return download_file(
                    url, dest, size=size, checksum=checksum, progress=progress, timeout=timeout
                )
            raise DownloadError(
                f"{url}: the server answered HTTP {error.code} {error.reason} for {dest.name}; "
                "try again later (a partial download is kept and resumes)"
            ) from error
        with response:
            content_range = response.headers.get("Content-Range", "")
            resumed = have and response.status == 206 and content_range.startswith(f"bytes {have}-")
            if have and not resumed:
                have = 0  # server ignored the Range request: start again from byte 0
            length = response.headers.get("Content-Length")
            total = size if size is not None else (have + int(length) if length else None)
            _stream(response, part, append=bool(have), total=total, have=have, url=url,
                    progress=progress, name=dest.name)  # fmt: skip
    got = part.stat().st_size
    if size is not None and got < size:
        raise DownloadError(
            f"{url}: the transfer of {dest.name} stopped at {got} of {size} bytes; run the "
            "same command again to resume it"
        )
    if size is not None and got > size:
        corrupt = _move_aside(part, dest)
        raise ChecksumError(
            f"{dest.name}: got {got} bytes, the record says {size}; moved to {corrupt}. "
            "Run the download again to fetch it afresh"
        )
    if checksum:
        _verify_or_move_aside(part, dest, checksum)
    os.replace(part, dest)
    return dest


def _verify_or_move_aside(path: Path, dest: Path, checksum: str) -> None:
    """Check ``path`` (the download of ``dest``); on mismatch rename it ``<dest>.corrupt``."""
    algorithm, digest = parse_checksum(checksum)
    actual = file_digest(path, algorithm)
    if actual != digest:
        corrupt = _move_aside(path, dest)
        raise ChecksumError(
            f"{dest}: {algorithm} checksum is {actual}, the record says {digest}: the download "
            f"is damaged. Moved it to {corrupt.name}; run the download again to fetch it afresh"
        )


def _stream(response, part: Path, *, append: bool, total: int | None, have: int, url: str,
            progress: bool, name: str) -> None:  # fmt: skip
    """Copy the response body into ``part``; keep what arrived if the connection breaks."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=name, file=sys.stderr)
    try:
        with open(part, "ab" if append else "wb") as out:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as error:
                    raise DownloadError(
                        f"{url}: the connection broke after {out.tell()} bytes of {name} "
                        f"({error}); run the same command again to resume"
                    ) from error
                if not chunk:
                    break
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()


def _copy_atomic(source: Path, dest: Path) -> None:
    with open(source, "rb") as src, atomic_write(dest, "wb", permissions=None) as out:
        shutil.copyfileobj(src, out, _CHUNK)


def _extract_into(archive: Path, out_dir: Path, stem: str, *, progress: bool) -> Path:
    """Extract ``archive`` to ``out_dir/stem`` so the folder appears only when complete."""
    final = out_dir / stem
    if final.exists():
        raise DownloadError(
            f"{final} exists but holds no {COMPLETE_MARKER} marker (an earlier, unfinished or "
            "hand-made extraction); move it away and run the command again"
        )
    staging = out_dir / f"{_STAGING_PREFIX}{stem}"
    if staging.exists():
        shutil.rmtree(staging)  # leftover of an interrupted run
    files = safe_extract(archive, staging, progress=None if progress else False)
    shutil.rmtree(staging / "__MACOSX", ignore_errors=True)
    entries = list(staging.iterdir())
    content = staging
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name == stem:
        content = entries[0]
    marker = {"archive": archive.name, "files": len(files)}
    write_text_atomic(content / COMPLETE_MARKER, json.dumps(marker) + "\n", permissions=None)
    os.replace(content, final)
    shutil.rmtree(staging, ignore_errors=True)
    for name in ROOT_TABLES:
        found = sorted(p for p in final.rglob(name) if "__MACOSX" not in p.parts)
        if found and not (out_dir / name).exists():
            _copy_atomic(found[0], out_dir / name)  # a half table would never be replaced
    return final


def download_luna16(
    out_dir: str | Path,
    *,
    subsets: str | Iterable[int] | None = ALL_SUBSETS,
    tables: bool = True,
    lung_masks: bool = False,
    extract: bool = True,
    base_url: str = DEFAULT_BASE_URL,
    dry_run: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download LUNA16 (or part of it) from Zenodo into the LUNA16 layout.

    Prints the plan (files, sizes, what is on disk, disk needed) first, then fetches one file
    at a time: download with resume, md5 check against the record, extraction, next file.

    Parameters
    ----------
    out_dir : path
        The LUNA16 root: ``subsetN/<uid>.mhd+.raw``, the CSV tables, ``seg-lungs-LUNA16/``.
    subsets : "all", "0,1", "0-3", list of int, default all ten
        Which of subset0-9 (about 6-7 GB each as zip). ``()`` or ``"none"`` for tables only.
    tables : bool, default True
        Also fetch ``annotations.csv``, ``candidates_V2``, ``sampleSubmission.csv`` and the
        evaluation script (which holds ``annotations_excluded.csv`` and ``seriesuids.csv``;
        those two and ``candidates_V2.csv`` are copied to ``out_dir``).
    lung_masks : bool, default False
        Also fetch ``seg-lungs-LUNA16.zip`` (LUNA16's lung masks).
    extract : bool, default True
        Unzip each archive (safely) and delete the zip; a finished folder holds a
        ``.nodulekit-complete`` marker, and an interrupted one is never left under its name.
    base_url : str
        The Zenodo server (tests point this at a local server).
    dry_run : bool, default False
        Only print the plan; nothing is downloaded or written.
    progress : bool, default True
        Show tqdm progress bars.
    timeout : float, default 60
        Seconds to wait for the server on each network operation.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ChecksumError
        A download does not match the record's md5; it is moved to ``<name>.corrupt`` and the
        next run downloads it afresh.
    DownloadError, DiskSpaceError, UnsafeArchiveError
        Network or HTTP failure (run again: finished files are kept, partial ones resume),
        too little disk, an archive member that would leave ``out_dir``.
    """
    out_dir = Path(out_dir).expanduser()
    plan = plan_luna16(
        out_dir,
        subsets=subsets,
        tables=tables,
        lung_masks=lung_masks,
        extract=extract,
        base_url=base_url,
        timeout=timeout,
    )
    _say(str(plan))
    if dry_run:
        _say("dry run: nothing downloaded")
        return out_dir
    check_free_space(out_dir, plan.needed_bytes, f"downloading LUNA16 into {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in plan.items:
        remote = item.file
        if item.status == "done":
            continue
        if item.status == "present":
            _say(f"{remote.key}: {out_dir / remote.stem} exists without a marker; left alone")
            continue
        local = out_dir / remote.key
        if not remote.checksum:
            _say(f"{remote.key}: WARNING: the record gives no checksum; only the size is checked")
        if item.status == "downloaded" and remote.checksum:
            _verify_or_move_aside(local, local, remote.checksum)
        elif item.status != "downloaded":
            download_file(
                remote.url,
                local,
                size=remote.size or None,
                checksum=remote.checksum or None,
                progress=progress,
                timeout=timeout,
            )
        if extract and remote.is_archive:
            folder = _extract_into(local, out_dir, remote.stem, progress=progress)
            local.unlink()
            checked = "verified" if remote.checksum else "size checked"
            _say(f"{remote.key}: {checked} and extracted into {folder}")
        else:
            _say(f"{remote.key}: {'verified' if remote.checksum else 'size checked'}, {local}")
    _say(f"LUNA16 ready in {out_dir}")
    return out_dir
