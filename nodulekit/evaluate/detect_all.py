"""Detection over a whole data set: worker processes on one machine, shards under ``torchrun``.

Each scan's marks are written to ``<out>.parts/<seriesuid>.csv`` (atomically) as soon as the
scan is done, so a run that dies half-way resumes with the scans it has not done. The parts
folder holds a ``manifest.json`` (the checkpoint's SHA-256 and the detection options): parts
made with another checkpoint or other options are never reused (refused unless ``overwrite``).
Under ``torchrun`` every rank takes its own shard (scans ``rank::world_size``, the launcher
training uses) on its own GPU (``LOCAL_RANK``); the ranks' marks are gathered over the process
group, so rank 0 writes the whole file even when the nodes share no file system.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from nodulekit._files import atomic_write, write_text_atomic
from nodulekit.errors import NodulekitError, OutputExistsError
from nodulekit.evaluate.predictions import write_predictions

_WORKER: dict[str, Any] = {}
_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "probability"]


def _init_worker(
    checkpoint: str, device: str, threads: int | None, segmenter: str | None = None
) -> None:
    """Load the model (and the segmenter for ``--candidates unet``); ``threads`` sets torch's
    threads (pool workers only: ``None`` in the caller's process, whose setting is left alone)."""
    from nodulekit.evaluate.scoring import load_model

    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))
    _WORKER["model"] = load_model(checkpoint, device=device)
    _WORKER["device"] = device
    if segmenter:  # candidates from the segmentation (--candidates unet)
        from nodulekit.evaluate.segmentation import load_segmenter

        _WORKER["segmenter"] = load_segmenter(segmenter, device=device)


def _detect_one(task: tuple[str, str, str, int]) -> str:
    from nodulekit.data import read_scan
    from nodulekit.evaluate.detect import detect_scan

    uid, path, part, max_candidates = task
    marks = detect_scan(
        read_scan(path), _WORKER["model"], seriesuid=uid, max_candidates=max_candidates,
        device=_WORKER["device"], segmenter=_WORKER.get("segmenter"),
        candidates="unet" if "segmenter" in _WORKER else "blob",
    )  # fmt: skip
    with atomic_write(part, "w", permissions=None) as handle:
        marks.to_csv(handle, index=False, float_format="%.6f")
    return uid


def process_device(device: str = "auto") -> Any:
    """This process's device: ``"auto"`` under ``torchrun`` is ``cuda:<LOCAL_RANK>``."""
    from nodulekit.train.loop import resolve_device

    return resolve_device(device, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def check_manifest(parts: Path, manifest: dict[str, Any], *, overwrite: bool = False) -> None:
    """Refuse part files made with another checkpoint or options (``overwrite``: delete them)."""
    path = parts / "manifest.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    stale = sorted(parts.glob("*.csv"))
    if not stale:  # nothing to reuse
        return
    if old != manifest and not overwrite:
        raise OutputExistsError(
            f"{parts}: its {len(stale)} part file(s) were made with "
            f"{old or 'an unknown checkpoint/options (no manifest.json)'}, not {manifest}; "
            "pass overwrite=True (or delete the folder) to detect again"
        )
    if old != manifest:
        for part in stale:
            part.unlink(missing_ok=True)


def detect_dataset(
    data: str | os.PathLike,
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    subsets: Iterable[int] | None = None,
    workers: int = 1,
    device: str = "auto",
    max_candidates: int = 200,
    progress: bool = False,
    overwrite: bool = False,
    segmenter: str | os.PathLike | None = None,
) -> Path:
    """Detect nodules in every scan of a LUNA16 root (or ``subsets``); one merged CSV.

    Resumes: scans whose part file exists are skipped, when ``.parts/manifest.json`` says
    they were made with this checkpoint (SHA-256), ``max_candidates`` and candidate source;
    otherwise they are refused (`OutputExistsError`), or deleted and done again with
    ``overwrite``. With ``segmenter`` (a ``--task segment`` checkpoint) candidates come from its
    segmentation, not from blobs. Returns ``out``.
    """
    segmenter = str(segmenter) if segmenter else None
    from nodulekit.data import Luna16
    from nodulekit.train import distributed as ddp
    from nodulekit.train.checkpoint import sha256_of

    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    scans = Luna16(data, warn_missing=False).scans
    if subsets is not None:
        scans = scans[scans["subset"].isin([int(s) for s in subsets])]
    dev = process_device(device)
    info = ddp.init_distributed(dev.type)
    manifest = {
        "checkpoint_sha256": sha256_of(checkpoint),
        "max_candidates": int(max_candidates),
        "segmenter_sha256": sha256_of(segmenter) if segmenter else None,
    }
    check_manifest(parts, manifest, overwrite=overwrite)
    ddp.barrier(info)  # every rank checked before any writes the new manifest
    write_text_atomic(parts / "manifest.json", json.dumps(manifest, indent=2) + "\n",
                      permissions=None)  # fmt: skip
    mine = scans.iloc[info.rank :: info.world_size]
    tasks = [
        (uid, str(path), str(parts / f"{uid}.csv"), max_candidates)
        for uid, path in zip(mine["seriesuid"], mine["path"], strict=True)
        if not (parts / f"{uid}.csv").is_file()
    ]
    _run(tasks, str(checkpoint), str(dev), workers, progress, segmenter)
    gathered = ddp.all_gather_objects(info, read_parts(parts, mine["seriesuid"]))
    if info.is_main:
        tables = {uid: table for shard in gathered for uid, table in shard.items()}
        _write_merged([tables[uid] for uid in scans["seriesuid"] if uid in tables], out)
    ddp.barrier(info)
    return out


def _run(
    tasks: list, checkpoint: str, device: str, workers: int, progress: bool, segmenter=None
) -> None:
    """Detect ``tasks`` in this process (threads untouched) or in a pool of ``workers``."""
    if workers <= 1:
        _init_worker(checkpoint, device, None, segmenter)
        try:
            for task in _progress(tasks, progress):
                _detect_one(task)
        finally:
            _WORKER.clear()  # do not keep the model alive in the caller (a notebook)
        return
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // workers)  # the CPUs shared by the workers
    context = mp.get_context("spawn")  # safe with torch and CUDA
    with context.Pool(workers, _init_worker, (checkpoint, device, threads, segmenter)) as pool:
        for _ in _progress(pool.imap_unordered(_detect_one, tasks), progress, len(tasks)):
            pass


def _progress(items: Any, enabled: bool, total: int | None = None) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc="detect", unit="scan")


def read_parts(parts: Path, uids: Iterable[str]) -> dict[str, pd.DataFrame]:
    """The part file of every scan in ``uids``; a missing one is an error naming the scans."""
    uids = list(uids)
    missing = [uid for uid in uids if not (parts / f"{uid}.csv").is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise NodulekitError(
            f"{parts}: no marks for {len(missing)} scan(s): {shown}; run the detection again "
            "(it resumes) before merging: a scan without its part would count as unmarked"
        )
    return {uid: pd.read_csv(parts / f"{uid}.csv", dtype={"seriesuid": str}) for uid in uids}


def _write_merged(tables: list[pd.DataFrame], out: Path) -> Path:
    tables = [t for t in tables if len(t)]
    merged = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=_COLUMNS)
    return write_predictions(merged, out)
