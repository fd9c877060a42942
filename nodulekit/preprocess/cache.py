"""The crop cache: every candidate's crop, cut once, stored as one memory-mappable array.

Layout of a cache folder (all folders user-only, 0o700)::

    out_dir/
      params.json            pointer to the data folder built or opened last (parameters too)
      data-<fp>/             one per fingerprint, immutable once in place (renamed in whole
        crops.npy            from a temp folder); int16 HU, shape (N, D, H, W), mmap_mode="r"
        index.csv            one row per crop (see CropCache.index)
        params.json          the parameters, for a data folder opened on its own
        .readers             every open CropCache holds a shared lock on it; its date is the
                             folder's last use
      shards-<fp>/<uid>.npz  per-scan results while a build runs (resume after interruption)
      .lock                  fcntl lock: one builder at a time

The fingerprint is a sha256 of the crop parameters, the candidate table's contents, and for
each scan its size plus a hash of its header and first and last MiB (not its date). Builds
with other parameters (or other sources) make their own data folder beside the others, so a
run still reading one set of crops keeps it while another run builds a second set.
``CropCache.open(out_dir, expect=...)`` finds the data folder with the parameters asked for.

Pruning: after each build, data folders beyond the ``keep`` most recently used are deleted,
except those an open `CropCache` holds (in any process on this machine); a folder in use is
never removed under a reader.

After a kill: a finished scan's shard is kept and the next build resumes from it (the crops
are the same as an uninterrupted build's); temporaries a kill left behind (a half-written
``.data-*`` folder, ``*.tmp`` files) are deleted by the next build, under the lock. Worker
processes watch their parent and exit when it dies. Workers are started with ``spawn``, which
re-imports the calling script: a script must call `build_crop_cache` under
``if __name__ == "__main__":`` (or use ``workers=0``); without that guard the build fails
saying so rather than waiting forever.

Where: ``out_dir=None`` puts the cache in the user's own cache folder,
``$XDG_CACHE_HOME/nodulekit/crops/<data root name>-<hash of its path>`` (`user_cache_dir`;
``~/.cache`` when XDG_CACHE_HOME is unset), so users sharing a data folder do not share (or
trip over) each other's private caches. A cache folder the caller cannot use (another user's
0o700 folder) is refused naming the folder, its owner and the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nodulekit._checks import positive_int_triple, positive_triple
from nodulekit._files import atomic_write, write_text_atomic
from nodulekit.data.metaimage import read_header
from nodulekit.errors import CacheError, ScanReadError, TableError, UnknownSeriesError
from nodulekit.preprocess.crop import DEFAULT_CROP_SHAPE_ZYX, DEFAULT_CROP_SIZE_MM

CACHE_VERSION = 1
INDEX_COLUMNS = [
    "seriesuid",
    "coordX",
    "coordY",
    "coordZ",
    "class",
    "diameter_mm",
    "subset",
    "outside",
    "outside_fraction",
    "candidate_row",
]
_CHUNK = 1 << 20  # bytes hashed at each end of a source file
# The training crop (nodulekit.train uses it): one set of defaults, crop()'s.
DEFAULT_SIZE_MM = DEFAULT_CROP_SIZE_MM
DEFAULT_SHAPE_ZYX = DEFAULT_CROP_SHAPE_ZYX
KEEP_RECENT = 2  # data folders kept after a build, besides those in use (a LUNA16 cache is GBs)
_PARENT_POLL_S = 0.2  # how often a worker checks that its parent still lives


# -- small file helpers -----------------------------------------------------------------
def _mkdir_private(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        path.chmod(0o700)
    return path


def user_cache_dir(data_root: str | Path) -> Path:
    """The user's own crop-cache folder for a data root (the default of `build_crop_cache`).

    ``$XDG_CACHE_HOME/nodulekit/crops/<root name>-<12 hex of its resolved path>``, with
    ``~/.cache`` when ``XDG_CACHE_HOME`` is unset: private to the user, one per data root.

    Examples
    --------
    >>> user_cache_dir("/data/luna16").name.startswith("luna16-")
    True
    """
    root = Path(data_root).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return base / "nodulekit" / "crops" / f"{root.name or 'root'}-{key}"


def _data_root(scans: pd.DataFrame) -> Path:
    """The folder holding every scan (above ``subsetN`` folders): what a cache is keyed by."""
    folders = [Path(p).expanduser().resolve().parent for p in scans["path"]]
    root = Path(os.path.commonpath(folders)) if folders else Path.cwd()
    return root.parent if re.fullmatch(r"subset\d+", root.name) else root


def _check_usable(folder: Path, scans: pd.DataFrame) -> None:
    """Refuse a cache folder (or its nearest existing parent) that this user cannot write."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    if os.access(existing, os.R_OK | os.W_OK | os.X_OK):
        return
    try:
        import pwd

        owner = pwd.getpwuid(existing.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        owner = f"uid {existing.stat().st_uid}" if existing.exists() else "another user"
    mode = oct(existing.stat().st_mode & 0o777) if existing.exists() else "?"
    raise CacheError(
        f"{folder}: cannot use this crop cache folder: {existing} belongs to {owner} (mode "
        f"{mode}) and this user cannot write to it; crop caches are private to whoever built "
        f"them. Give a folder of your own: --cache DIR on the command line, "
        f"TrainConfig(cache=...), or build_crop_cache(..., out_dir=None) for your own "
        f"cache folder, here {user_cache_dir(_data_root(scans))}"
    )


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``folder/.lock`` (no-op where fcntl is absent)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _hash_file(path: Path, digest: Any) -> None:
    """Feed a file's size and its first and last MiB (or all of it, if small) to ``digest``."""
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}:".encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(_CHUNK))
        if size > 2 * _CHUNK:
            fh.seek(size - _CHUNK)
            digest.update(fh.read(_CHUNK))
        elif size > _CHUNK:
            digest.update(fh.read())


def source_fingerprint(path: str | Path) -> str:
    """sha256 of a scan's files: size plus header and first/last MiB (a MetaImage's data
    file too; every file of a DICOM folder by name and size, the first and last in full)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        for p in files:
            digest.update(f"{p.relative_to(path)}:{p.stat().st_size};".encode())
        for p in files[:1] + files[-1:]:
            _hash_file(p, digest)
        return digest.hexdigest()
    _hash_file(path, digest)
    if path.suffix.lower() == ".mhd":
        with contextlib.suppress(ScanReadError):
            name = read_header(path).get("ElementDataFile", "")
            if name and name not in ("LOCAL", "LIST") and "%" not in name:
                data = path.parent / name
                if data.is_file():
                    _hash_file(data, digest)
    return digest.hexdigest()


# -- inputs ------------------------------------------------------------------------------
def _scan_table(scan_paths: Mapping[str, str | Path] | pd.DataFrame) -> pd.DataFrame:
    """``scan_paths`` as a table with seriesuid, path, subset (-1 if unknown)."""
    if isinstance(scan_paths, pd.DataFrame):
        missing = {"seriesuid", "path"} - set(scan_paths.columns)
        if missing:
            raise TableError(
                f"scan_paths table lacks column(s) {sorted(missing)}; expected seriesuid, "
                "path (and optionally subset), as Luna16(root).scans gives"
            )
        table = scan_paths[["seriesuid", "path"]].copy()
        table["subset"] = scan_paths["subset"] if "subset" in scan_paths else np.nan
    else:
        table = pd.DataFrame(
            {"seriesuid": list(scan_paths.keys()), "path": list(scan_paths.values())}
        )
        table["subset"] = np.nan
    table["seriesuid"] = table["seriesuid"].astype(str)
    table["path"] = [Path(p) for p in table["path"]]
    guessed = []
    for subset, path in zip(table["subset"], table["path"], strict=True):
        if pd.notna(subset):
            guessed.append(int(subset))
            continue
        match = re.fullmatch(r"subset(\d+)", path.parent.name)
        guessed.append(int(match.group(1)) if match else -1)
    table["subset"] = guessed
    return table.drop_duplicates("seriesuid").set_index("seriesuid", drop=False)


def _candidate_table(candidates: pd.DataFrame) -> pd.DataFrame:
    """The candidates as the index's columns; NaN coordinates raise naming the row."""
    if not isinstance(candidates, pd.DataFrame):
        raise TypeError(f"candidates must be a pandas DataFrame, not {type(candidates).__name__}")
    needed = ["seriesuid", "coordX", "coordY", "coordZ"]
    missing = [c for c in needed if c not in candidates.columns]
    if missing:
        raise TableError(
            f"candidates table lacks column(s) {missing}; expected LUNA16 columns "
            "seriesuid, coordX, coordY, coordZ (and class, diameter_mm if known)"
        )
    table = pd.DataFrame(
        {
            "seriesuid": candidates["seriesuid"].astype(str).to_numpy(),
            "coordX": pd.to_numeric(candidates["coordX"], errors="coerce").to_numpy(float),
            "coordY": pd.to_numeric(candidates["coordY"], errors="coerce").to_numpy(float),
            "coordZ": pd.to_numeric(candidates["coordZ"], errors="coerce").to_numpy(float),
        }
    )
    coords = table[["coordX", "coordY", "coordZ"]].to_numpy()
    bad = ~np.isfinite(coords).all(axis=1)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        row = candidates.iloc[pos]
        raise TableError(
            f"candidates row {candidates.index[pos]!r} (position {pos}, seriesuid "
            f"{row['seriesuid']}) has a NaN or non-numeric coordinate: coordX={row['coordX']!r}, "
            f"coordY={row['coordY']!r}, coordZ={row['coordZ']!r}; {int(bad.sum())} row(s) in "
            "all. Drop or fix them before building the cache."
        )
    if "class" in candidates.columns:
        labels = pd.to_numeric(candidates["class"], errors="coerce")
        if labels.isna().any():
            pos = int(np.flatnonzero(labels.isna().to_numpy())[0])
            raise TableError(
                f"candidates row {candidates.index[pos]!r} has class "
                f"{candidates['class'].iloc[pos]!r}; expected 0 or 1"
            )
        table["class"] = labels.to_numpy().astype(np.int64)
    else:
        table["class"] = -1
    if "diameter_mm" in candidates.columns:
        table["diameter_mm"] = pd.to_numeric(candidates["diameter_mm"], errors="coerce").to_numpy(
            float
        )
    else:
        table["diameter_mm"] = np.nan
    table["candidate_row"] = np.arange(len(table), dtype=np.int64)
    return table


def _params(size_mm: Any, shape_zyx: Any, pad_hu: float) -> dict[str, Any]:
    size = list(positive_triple(size_mm, "size_mm", error=CacheError))
    shape = list(positive_int_triple(shape_zyx, "shape_zyx", error=CacheError))
    size_out: float | list[float] = size[0] if len(set(size)) == 1 else size
    return {
        "version": CACHE_VERSION,
        "size_mm": size_out,
        "shape_zyx": shape,
        "pad_hu": float(pad_hu),
        "dtype": "int16",
    }


def _fingerprint(params: Mapping[str, Any], table: pd.DataFrame, scans: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(table.drop(columns="candidate_row").to_csv(index=False).encode())
    for uid in sorted(table["seriesuid"].unique()):
        digest.update(f"{uid}={source_fingerprint(scans.loc[uid, 'path'])};".encode())
    return digest.hexdigest()


# -- the worker ----------------------------------------------------------------------------
def _shard_name(uid: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9._-]{1,200}", uid):
        return f"{uid}.npz"
    return hashlib.sha1(uid.encode()).hexdigest() + ".npz"


def _crop_scan_task(
    path: str, centers_xyz: np.ndarray, params: dict[str, Any], shard: str
) -> tuple[str, int]:
    """Read one scan, crop all its candidates, write ``shard`` atomically. Runs in a worker."""
    from nodulekit.data.io import read_scan
    from nodulekit.preprocess.crop import crop_many

    scan = read_scan(path)
    shape = tuple(params["shape_zyx"])
    crops = np.empty((len(centers_xyz), *shape), dtype=np.int16)
    outside = np.zeros(len(centers_xyz), dtype=bool)
    fraction = np.zeros(len(centers_xyz), dtype=np.float32)
    for lo in range(0, len(centers_xyz), 1024):  # batched (same values as crop()), bounded memory
        part = np.asarray(centers_xyz[lo : lo + 1024], dtype=float).reshape(-1, 3)
        batch = crop_many(scan, part, params["size_mm"], shape, pad_hu=params["pad_hu"])
        crops[lo : lo + len(part)] = np.clip(np.rint(batch.arrays), -32768, 32767)
        outside[lo : lo + len(part)] = ~np.atleast_1d(scan.contains(scan.world_to_voxel(part)))
        fraction[lo : lo + len(part)] = batch.outside_fractions
    with atomic_write(shard) as fh:
        np.savez(fh, crops=crops, outside=outside, outside_fraction=fraction)
    return shard, int(outside.sum())


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: a daemon thread ends this process once its parent is gone.

    A killed parent cannot shut its pool down; without this its workers would finish their
    scan and then wait for work forever (they hold both ends of the pool's queues).
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    """The build's process pool: ``spawn`` (the caller may run torch or CUDA threads, which
    ``fork`` can deadlock), each worker exiting when this process dies."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


def _refuse_while_spawning() -> None:
    """Fail fast in a worker that is re-importing a script which builds at import time."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise CacheError(_NO_MAIN_GUARD)


_NO_MAIN_GUARD = (
    "build_crop_cache starts worker processes with 'spawn', which re-imports the script that "
    "called it, and the script called it again while a worker was starting: put the code "
    'that builds the cache (or trains) under `if __name__ == "__main__":`, or pass '
    "workers=0 to build in this process"
)


# -- the cache -------------------------------------------------------------------------------
class CropCache:
    """A built crop cache, opened read-only.

    While it is open (until `close`, or garbage collection) it holds a shared lock on its
    data folder, so that no build prunes the folder under it; copies pickled into DataLoader
    workers reopen the memory map and rely on their parent's lock.

    Attributes
    ----------
    folder : Path
        The data folder holding ``crops.npy``, ``index.csv``, ``params.json``.
    index : DataFrame
        One row per crop, in the candidate table's order: seriesuid, coordX, coordY, coordZ,
        class (-1 if the table had none), diameter_mm (NaN if unknown), subset (-1 if
        unknown), outside (bool: the centre lies outside its scan; the crop is padded),
        outside_fraction, candidate_row (position in the candidate table given to the build).
    crops : np.memmap of int16, shape (N, D, H, W)
        HU, read-only. Normalise with `nodulekit.preprocess.normalize_hu`.
    params : dict
        size_mm, shape_zyx, pad_hu, fingerprint, version.
    """

    def __init__(self, folder: Path, index: pd.DataFrame, params: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.index = index
        self.params = params
        self._crops: np.ndarray | None = None
        self._reader_fd: int | None = None

    @property
    def crops(self) -> np.ndarray:
        if self._crops is None:
            self._crops = np.load(self.folder / "crops.npy", mmap_mode="r")
        return self._crops

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen the memmap
        state = self.__dict__.copy()
        state["_crops"] = None
        state["_reader_fd"] = None
        return state

    def __repr__(self) -> str:
        n_pos = int((self.index["class"] == 1).sum())
        return (
            f"CropCache({str(self.folder)!r}, n={len(self)}, positives={n_pos}, "
            f"shape_zyx={tuple(self.params['shape_zyx'])}, size_mm={self.params['size_mm']}, "
            f"fingerprint={self.params['fingerprint'][:12]})"
        )

    def __enter__(self) -> CropCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be gone already
            pass

    def close(self) -> None:
        """Release the data folder (a later build may prune it); the crops stay readable
        through an existing memory map."""
        fd, self._reader_fd = getattr(self, "_reader_fd", None), None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _hold(self) -> None:
        """Take the shared reader lock of the data folder and mark it used now.

        Raises FileNotFoundError when a build pruned the folder meanwhile (`open` retries).
        """
        fd = _reader_lock(self.folder, shared=True, wait=True)
        if fd is None:
            return
        try:
            same = os.stat(self.folder / ".readers").st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # locked the file of a folder that was moved away to be deleted
            os.close(fd)
            raise FileNotFoundError(2, "pruned while opening", str(self.folder))
        self._reader_fd = fd

    @classmethod
    def open(cls, folder: str | Path, *, expect: Mapping[str, Any] | None = None) -> CropCache:
        """Open a cache folder (as `build_crop_cache` wrote it, or one of its data folders).

        Parameters
        ----------
        folder : path
        expect : mapping, optional
            Parameters the caller needs (any of size_mm, shape_zyx, pad_hu, fingerprint).
            Of a cache folder's data folders, the one built last that has them is opened;
            none raises `CacheError` rather than handing out a cache of other crops.
        """
        folder = Path(folder)
        for attempt in range(3):  # a builder may swap the data folder while we open it
            try:
                return cls._open_once(folder, expect)
            except FileNotFoundError as e:
                if attempt == 2:
                    raise CacheError(
                        f"{folder}: not a complete crop cache ({e.filename} is missing); "
                        "build it with nodulekit.preprocess.build_crop_cache"
                    ) from e
            except PermissionError as e:
                raise CacheError(
                    f"{folder}: cannot read this crop cache ({e.strerror}: {e.filename}); "
                    "it belongs to another user: build your own with --cache DIR, "
                    "TrainConfig(cache=...) or build_crop_cache(..., out_dir=None)"
                ) from e
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _open_once(cls, folder: Path, expect: Mapping[str, Any] | None) -> CropCache:
        params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
        data = folder / params["data"] if "data" in params else folder
        if data != folder:
            params = json.loads((data / "params.json").read_text(encoding="utf-8"))
        if expect and _mismatch(params, expect):
            data, params = _find_data(folder, expect, data, params)
        return cls._open_data(data, params)

    @classmethod
    def _open_data(cls, data: Path, params: dict[str, Any]) -> CropCache:
        index = pd.read_csv(data / "index.csv", dtype={"seriesuid": str})
        index["outside"] = index["outside"].astype(bool)
        cache = cls(data, index, params)
        cache._hold()
        crops = cache.crops
        expected = (len(index), *params["shape_zyx"])
        if crops.shape != expected or crops.dtype != np.int16:
            cache.close()
            raise CacheError(
                f"{data}: crops.npy holds {crops.dtype} {crops.shape}, the index and params "
                f"say int16 {expected}; the cache is corrupt: delete the folder and rebuild"
            )
        return cache


def _normal(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        values = [float(v) for v in value]
        return values[0] if len(set(values)) == 1 and len(values) == 3 else values
    if isinstance(value, (int, float, np.number)):
        return float(value)
    return value


def _mismatch(params: Mapping[str, Any], expect: Mapping[str, Any]) -> dict[str, tuple]:
    return {
        k: (v, params.get(k)) for k, v in expect.items() if _normal(v) != _normal(params.get(k))
    }


def _find_data(
    folder: Path, expect: Mapping[str, Any], data: Path, params: dict[str, Any]
) -> tuple[Path, dict[str, Any]]:
    """The most recently used data folder of ``folder`` whose parameters match ``expect``."""
    for other in _data_folders(folder):
        with contextlib.suppress(OSError, ValueError):
            candidate = json.loads((other / "params.json").read_text(encoding="utf-8"))
            if not _mismatch(candidate, expect):
                return other, candidate
    detail = ", ".join(
        f"{k}: wanted {v!r}, cache has {h!r}" for k, (v, h) in _mismatch(params, expect).items()
    )
    raise CacheError(
        f"{folder}: this crop cache was built with other parameters ({detail}); "
        "build it with build_crop_cache(..., out_dir=<this folder>) using the parameters "
        "you need (each set of parameters gets its own data folder)"
    )


def _data_folders(folder: Path) -> list[Path]:
    """The complete data folders of a cache folder, most recently used first."""
    found = [d for d in folder.glob("data-*") if (d / "params.json").is_file()]
    return sorted(found, key=_last_used, reverse=True)


def _last_used(data: Path) -> float:
    for name in (".readers", "params.json"):
        with contextlib.suppress(OSError):
            return (data / name).stat().st_mtime
    return 0.0


def _reader_lock(data: Path, *, shared: bool, wait: bool) -> int | None:
    """An fd holding a lock on ``data/.readers`` (None where locking is not possible).

    Readers hold it shared (and touch the file: its date is the folder's last use); pruning
    takes it exclusive without waiting, and raises BlockingIOError when a reader holds it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no pruning protection
        return None
    path = data / ".readers"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        try:  # a read-only cache: lock what is there, or nothing
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    if shared:
        with contextlib.suppress(OSError):
            os.utime(fd)
    return fd


def _point_to(folder: Path, params: Mapping[str, Any], data: Path) -> None:
    """Make ``folder/params.json`` point at ``data`` (the last built or used) atomically."""
    with contextlib.suppress(OSError, ValueError):
        if (
            json.loads((folder / "params.json").read_text(encoding="utf-8")).get("data")
            == data.name
        ):
            return
    with contextlib.suppress(PermissionError):  # a read-only cache folder keeps its pointer
        write_text_atomic(
            folder / "params.json", json.dumps({**params, "data": data.name}, indent=1)
        )


def _prune(out: Path, keep: int, current: Path) -> list[Path]:
    """Delete data folders beyond the ``keep`` most recently used, except those in use."""
    removed = []
    others = [d for d in _data_folders(out) if d != current]
    for data in others[max(keep - 1, 0) :]:
        try:
            fd = _reader_lock(data, shared=False, wait=False)
        except BlockingIOError:
            continue  # an open CropCache reads it
        except OSError:
            continue
        try:
            trash = out / f".trash-{data.name}-{os.getpid()}"
            os.replace(data, trash)  # readers that come now find it gone and re-resolve
        finally:
            if fd is not None:
                os.close(fd)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(data)
    return removed


def _clean_stale(out: Path) -> None:
    """Delete what a killed build left behind (only a lock holder may call this)."""
    for leftover in (*out.glob(".data-*"), *out.glob(".trash-*")):
        shutil.rmtree(leftover, ignore_errors=True)
    for tmp in (*out.glob(".*.tmp"), *out.glob("shards-*/.*.tmp")):
        with contextlib.suppress(OSError):
            tmp.unlink()


# -- the build ---------------------------------------------------------------------------
def build_crop_cache(
    candidates: pd.DataFrame,
    scan_paths: Mapping[str, str | Path] | pd.DataFrame,
    out_dir: str | Path | None = None,
    *,
    size_mm: float | Sequence[float] = DEFAULT_SIZE_MM,
    shape_zyx: int | Sequence[int] = DEFAULT_SHAPE_ZYX,
    pad_hu: float = -1000.0,
    workers: int = 2,
    progress: bool = True,
    missing: str = "error",
    keep: int = KEEP_RECENT,
) -> CropCache:
    """Cut every candidate's crop once, in parallel, into a memory-mapped cache folder.

    Parameters
    ----------
    candidates : DataFrame
        LUNA16 columns seriesuid, coordX, coordY, coordZ (world mm); class and
        diameter_mm if known.
    scan_paths : mapping uid -> path, or DataFrame with seriesuid, path (, subset)
        Where each scan is, e.g. ``Luna16(root).scans``.
    out_dir : path, optional
        The cache folder. A data folder with the same fingerprint is opened as it is; other
        parameters or sources get a data folder of their own (never silently reused).
        Default: the user's own cache folder for the scans' data root, `user_cache_dir`.
    size_mm, shape_zyx, pad_hu
        Crop geometry, as in `nodulekit.preprocess.crop`; by default the training crop,
        32 mm in 24 x 24 x 24 voxels.
    workers : int
        Worker processes, one task per scan (each scan is read once); 0 or 1 works inline.
        Workers are spawned: from a script, call this under ``if __name__ == "__main__":``.
    progress : bool
        Show a tqdm progress bar over scans.
    missing : {"error", "skip"}
        What to do with candidates whose seriesuid has no scan path.
    keep : int
        Data folders kept in ``out_dir`` after the build, the most recently used first
        (this one included); folders an open `CropCache` reads are never deleted.

    Returns
    -------
    CropCache

    Raises
    ------
    TableError
        For a NaN coordinate (naming the row) or missing columns.
    UnknownSeriesError
        For candidates of scans not in ``scan_paths`` (unless ``missing="skip"``).
    CacheError
        For bad crop geometry, a cache folder this user cannot write (naming its owner and
        the fix), or workers started from a script without a ``__main__`` guard.

    Warns
    -----
    UserWarning
        Once, counting candidates whose centre lies outside their scan (their crops are
        padded with ``pad_hu`` and marked ``outside=True``).
    """
    _refuse_while_spawning()
    if missing not in ("error", "skip"):
        raise ValueError(f'missing must be "error" or "skip", not {missing!r}')
    params = _params(size_mm, shape_zyx, pad_hu)
    scans = _scan_table(scan_paths)
    table = _known_candidates(_candidate_table(candidates), scans, missing)
    table["subset"] = scans.loc[table["seriesuid"], "subset"].to_numpy(dtype=np.int64)
    params["fingerprint"] = _fingerprint(params, table, scans)
    out = Path(out_dir).expanduser() if out_dir is not None else user_cache_dir(_data_root(scans))
    _check_usable(out, scans)
    out = _mkdir_private(out)
    with _locked(out):
        _clean_stale(out)
        cache = _build_locked(table, scans, params, out, workers, progress)
        _point_to(out, cache.params, cache.folder)
        _prune(out, keep, cache.folder)
    n_outside = int(cache.index["outside"].sum())
    if n_outside:
        warnings.warn(
            f"{n_outside} of {len(table)} candidates lie outside their scan; their crops are "
            f"padded with {pad_hu:g} HU and marked outside=True in the cache index",
            UserWarning,
            stacklevel=2,
        )
    return cache


def _known_candidates(table: pd.DataFrame, scans: pd.DataFrame, missing: str) -> pd.DataFrame:
    """Candidates whose scan is known; the others raise or are left out with a warning."""
    known = table["seriesuid"].isin(scans.index)
    if known.all():
        return table
    absent = sorted(table.loc[~known, "seriesuid"].unique())
    if missing == "error":
        raise UnknownSeriesError(
            f"{int((~known).sum())} candidate(s) of {len(absent)} series have no scan "
            f"path: {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}; give "
            'their scans, or pass missing="skip" to leave those candidates out'
        )
    warnings.warn(
        f"left out {int((~known).sum())} candidate(s) of {len(absent)} series without a "
        f"scan: {', '.join(absent[:3])}{' ...' if len(absent) > 3 else ''}",
        UserWarning,
        stacklevel=3,
    )
    return table[known].reset_index(drop=True)


def _build_locked(
    table: pd.DataFrame,
    scans: pd.DataFrame,
    params: dict[str, Any],
    out: Path,
    workers: int,
    progress: bool,
) -> CropCache:
    """Open this fingerprint's data folder, or build it (resuming from its shards)."""
    fp = params["fingerprint"][:16]
    data = out / f"data-{fp}"
    with contextlib.suppress(CacheError, FileNotFoundError, json.JSONDecodeError, KeyError):
        found = json.loads((data / "params.json").read_text(encoding="utf-8"))
        if found.get("fingerprint") == params["fingerprint"]:
            return CropCache._open_data(data, found)
    shards = _mkdir_private(out / f"shards-{fp}")
    for stale in out.glob("shards-*"):
        if stale != shards:
            shutil.rmtree(stale, ignore_errors=True)
    _run_tasks(table, scans, params, shards, workers, progress)
    data = _assemble(table, params, shards, out, fp)
    cache = CropCache._open_data(data, params)
    shutil.rmtree(shards, ignore_errors=True)
    return cache


def _check_main_guard(workers: int) -> None:
    """Refuse, before spawning, a script whose source has no ``__main__`` guard at all."""
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if workers <= 1 or not path or getattr(main, "__spec__", None) is not None:
        return
    with contextlib.suppress(OSError):
        source = Path(path).read_text(errors="replace")
        if not re.search(r"__name__\s*==\s*['\"]__main__['\"]", source):
            raise CacheError(f"{path}: {_NO_MAIN_GUARD}")


def _run_tasks(
    table: pd.DataFrame,
    scans: pd.DataFrame,
    params: dict[str, Any],
    shards: Path,
    workers: int,
    progress: bool,
) -> None:
    """Crop every scan whose shard is not there yet (one task per scan)."""
    from tqdm.auto import tqdm

    tasks = []
    for uid, rows in table.groupby("seriesuid", sort=True):
        shard = shards / _shard_name(str(uid))
        if shard.is_file():
            continue
        centers = rows[["coordX", "coordY", "coordZ"]].to_numpy(float)
        tasks.append((str(scans.loc[uid, "path"]), centers, params, str(shard)))
    n_done = table["seriesuid"].nunique() - len(tasks)
    bar = tqdm(
        total=n_done + len(tasks),
        initial=n_done,
        desc="crop cache",
        unit="scan",
        disable=not progress,
    )
    try:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                _crop_scan_task(*task)
                bar.update()
        else:
            _check_main_guard(workers)
            _run_in_pool(tasks, min(workers, len(tasks)), bar)
    finally:
        bar.close()


def _run_in_pool(tasks: list[tuple], workers: int, bar: Any) -> None:
    pool = _worker_pool(workers)
    try:
        futures = [pool.submit(_crop_scan_task, *task) for task in tasks]
        for future in as_completed(futures):
            future.result()
            bar.update()
    except BrokenProcessPool as e:
        raise CacheError(
            f"a crop-cache worker process died before finishing its scan ({e}). From a "
            f"script the usual reason is a missing guard: {_NO_MAIN_GUARD}. Otherwise a "
            "worker ran out of memory or was killed: use fewer workers, or workers=0"
        ) from e
    finally:  # on any error (one bad scan, Ctrl-C): stop now, not after every other scan
        pool.shutdown(wait=True, cancel_futures=True)


def _assemble(
    table: pd.DataFrame, params: dict[str, Any], shards: Path, out: Path, fp: str
) -> Path:
    """Gather the shards into a temp data folder, then rename it into place."""
    from numpy.lib.format import open_memmap

    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".data-{fp}."))
    os.chmod(tmp, 0o700)
    shape = (len(table), *params["shape_zyx"])
    crops = open_memmap(tmp / "crops.npy", mode="w+", dtype=np.int16, shape=shape)
    index = table.copy()
    index["outside"] = False
    index["outside_fraction"] = 0.0
    for uid, rows in table.groupby("seriesuid", sort=True):
        with np.load(shards / _shard_name(str(uid))) as shard:
            positions = rows.index.to_numpy()
            if shard["crops"].shape[0] != len(positions):
                raise CacheError(
                    f"{shards}: shard of {uid} holds {shard['crops'].shape[0]} crops, the "
                    f"table {len(positions)}; delete {shards} and rebuild"
                )
            crops[positions] = shard["crops"]
            index.loc[positions, "outside"] = shard["outside"]
            index.loc[positions, "outside_fraction"] = shard["outside_fraction"]
    crops.flush()
    del crops
    os.chmod(tmp / "crops.npy", 0o600)
    index[INDEX_COLUMNS].to_csv(tmp / "index.csv", index=False)
    os.chmod(tmp / "index.csv", 0o600)
    write_text_atomic(tmp / "params.json", json.dumps(params, indent=1))
    final = out / f"data-{fp}"
    if final.exists():  # a left-over folder of an earlier build with this fingerprint
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final
