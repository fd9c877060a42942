"""The crop cache: every candidate's crop, cut once, stored as one memory-mappable array.

Layout of a cache folder (all folders user-only, 0o700)::

    out_dir/
      params.json            the pointer: parameters, fingerprint, which data folder is live
      data-<fp>/             immutable once in place (renamed in whole from a temp folder)
        crops.npy            int16 HU, shape (N, D, H, W), opened with mmap_mode="r"
        index.csv            one row per crop (see CropCache.index)
        params.json          the same parameters, for a data folder opened on its own
      shards-<fp>/<uid>.npz  per-scan results while a build runs (resume after interruption)
      .lock                  fcntl lock: one builder at a time

The fingerprint is a sha256 of the crop parameters, the candidate table's contents, and for
each scan its size plus a hash of its header and first and last MiB (not its date). A build
with a different fingerprint makes a new data folder and switches ``params.json`` to it in
one atomic ``os.replace``; readers see the old cache or the new one, never half of one.
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
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nodulekit.errors import CacheError, TableError, UnknownSeriesError

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


# -- small file helpers -----------------------------------------------------------------
def _mkdir_private(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        path.chmod(0o700)
    return path


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
        text = path.read_text(errors="replace")
        match = re.search(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", text, re.MULTILINE)
        if match and match.group(1) not in ("LOCAL", "LIST") and "%" not in match.group(1):
            data = path.parent / match.group(1)
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


def _params(size_mm: Any, shape_zyx: Sequence[int], pad_hu: float) -> dict[str, Any]:
    size = [float(size_mm)] * 3 if np.isscalar(size_mm) else [float(v) for v in size_mm]
    if len(size) != 3 or not all(np.isfinite(v) and v > 0 for v in size):
        raise CacheError(f"size_mm must be one or 3 positive numbers (x, y, z), not {size_mm!r}")
    shape = [int(n) for n in shape_zyx]
    if len(shape) != 3 or min(shape) < 1:
        raise CacheError(f"shape_zyx must be 3 positive integers (z, y, x), not {shape_zyx!r}")
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
    shard_path = Path(shard)
    tmp = shard_path.with_name(f".{shard_path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, crops=crops, outside=outside, outside_fraction=fraction)
    os.replace(tmp, shard_path)
    return shard, int(outside.sum())


# -- the cache -------------------------------------------------------------------------------
class CropCache:
    """A built crop cache, opened read-only.

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
        return state

    def __repr__(self) -> str:
        n_pos = int((self.index["class"] == 1).sum())
        return (
            f"CropCache({str(self.folder)!r}, n={len(self)}, positives={n_pos}, "
            f"shape_zyx={tuple(self.params['shape_zyx'])}, size_mm={self.params['size_mm']}, "
            f"fingerprint={self.params['fingerprint'][:12]})"
        )

    @classmethod
    def open(cls, folder: str | Path, *, expect: Mapping[str, Any] | None = None) -> CropCache:
        """Open a cache folder (as `build_crop_cache` wrote it, or one of its data folders).

        Parameters
        ----------
        folder : path
        expect : mapping, optional
            Parameters the caller needs (any of size_mm, shape_zyx, pad_hu, fingerprint);
            a mismatch raises `CacheError` rather than handing out a cache of other crops.
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
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _open_once(cls, folder: Path, expect: Mapping[str, Any] | None) -> CropCache:
        params = json.loads((folder / "params.json").read_text())
        data = folder / params["data"] if "data" in params else folder
        if data != folder:
            params = json.loads((data / "params.json").read_text())
        if expect:
            wrong = {
                k: (v, params.get(k))
                for k, v in expect.items()
                if _normal(v) != _normal(params.get(k))
            }
            if wrong:
                detail = ", ".join(
                    f"{k}: wanted {v!r}, cache has {h!r}" for k, (v, h) in wrong.items()
                )
                raise CacheError(
                    f"{folder}: this crop cache was built with other parameters ({detail}); "
                    "rebuild it with build_crop_cache(..., out_dir=<this folder>) using the "
                    "parameters you need"
                )
        index = pd.read_csv(data / "index.csv", dtype={"seriesuid": str})
        index["outside"] = index["outside"].astype(bool)
        cache = cls(data, index, params)
        crops = cache.crops
        expected = (len(index), *params["shape_zyx"])
        if crops.shape != expected or crops.dtype != np.int16:
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


# -- the build ---------------------------------------------------------------------------
def build_crop_cache(
    candidates: pd.DataFrame,
    scan_paths: Mapping[str, str | Path] | pd.DataFrame,
    out_dir: str | Path,
    *,
    size_mm: float | Sequence[float] = 40.0,
    shape_zyx: Sequence[int] = (32, 32, 32),
    pad_hu: float = -1000.0,
    workers: int = 2,
    progress: bool = True,
    missing: str = "error",
) -> CropCache:
    """Cut every candidate's crop once, in parallel, into a memory-mapped cache folder.

    Parameters
    ----------
    candidates : DataFrame
        LUNA16 columns seriesuid, coordX, coordY, coordZ (world mm); class and
        diameter_mm if known.
    scan_paths : mapping uid -> path, or DataFrame with seriesuid, path (, subset)
        Where each scan is, e.g. ``Luna16(root).scans``.
    out_dir : path
        The cache folder. An existing cache with the same fingerprint is opened as it is;
        one with another fingerprint is rebuilt (never silently reused).
    size_mm, shape_zyx, pad_hu
        Crop geometry, as in `nodulekit.preprocess.crop`.
    workers : int
        Worker processes, one task per scan (each scan is read once); 0 or 1 works inline.
    progress : bool
        Show a tqdm progress bar over scans.
    missing : {"error", "skip"}
        What to do with candidates whose seriesuid has no scan path.

    Returns
    -------
    CropCache

    Raises
    ------
    TableError
        For a NaN coordinate (naming the row) or missing columns.
    UnknownSeriesError
        For candidates of scans not in ``scan_paths`` (unless ``missing="skip"``).

    Warns
    -----
    UserWarning
        Once, counting candidates whose centre lies outside their scan (their crops are
        padded with ``pad_hu`` and marked ``outside=True``).
    """
    if missing not in ("error", "skip"):
        raise ValueError(f'missing must be "error" or "skip", not {missing!r}')
    params = _params(size_mm, shape_zyx, pad_hu)
    table = _candidate_table(candidates)
    scans = _scan_table(scan_paths)
    known = table["seriesuid"].isin(scans.index)
    if not known.all():
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
            stacklevel=2,
        )
        table = table[known].reset_index(drop=True)
    table["subset"] = scans.loc[table["seriesuid"], "subset"].to_numpy(dtype=np.int64)
    params["fingerprint"] = _fingerprint(params, table, scans)
    fp = params["fingerprint"][:16]

    out = _mkdir_private(Path(out_dir))
    with _locked(out):
        with contextlib.suppress(CacheError, FileNotFoundError, json.JSONDecodeError, KeyError):
            cache = CropCache.open(out)
            if cache.params.get("fingerprint") == params["fingerprint"]:
                return cache
        shards = _mkdir_private(out / f"shards-{fp}")
        for stale in out.glob("shards-*"):
            if stale != shards:
                shutil.rmtree(stale, ignore_errors=True)
        _run_tasks(table, scans, params, shards, workers, progress)
        data = _assemble(table, params, shards, out, fp)
        _write_text_atomic(out / "params.json", json.dumps({**params, "data": data.name}, indent=1))
        shutil.rmtree(shards, ignore_errors=True)
        for old in out.glob("data-*"):
            if old != data:
                shutil.rmtree(old, ignore_errors=True)
        cache = CropCache.open(out)
    n_outside = int(cache.index["outside"].sum())
    if n_outside:
        warnings.warn(
            f"{n_outside} of {len(table)} candidates lie outside their scan; their crops are "
            f"padded with {pad_hu:g} HU and marked outside=True in the cache index",
            UserWarning,
            stacklevel=2,
        )
    return cache


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
            # spawn: the caller may already run torch or CUDA threads, which fork can deadlock
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context) as pool:
                futures = [pool.submit(_crop_scan_task, *task) for task in tasks]
                try:
                    for future in as_completed(futures):
                        future.result()
                        bar.update()
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # one bad scan: say so now, not at the end
                    raise
    finally:
        bar.close()


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
    (tmp / "params.json").write_text(json.dumps(params, indent=1))
    for name in ("index.csv", "params.json"):
        os.chmod(tmp / name, 0o600)
    final = out / f"data-{fp}"
    if final.exists():  # a complete folder from an earlier build with this fingerprint
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, final)
    return final
