"""Detection over a whole data set: worker processes on one machine, shards under ``torchrun``.

Each scan's marks are written to ``<out>.parts/<seriesuid>.csv`` (atomically) as soon as the
scan is done, so a run that dies half-way resumes with the scans it has not done. Under
``torchrun`` every rank takes its own shard (scans ``rank::world_size``, the launcher training
uses; no shared state but the file system); rank 0 merges the parts into one file at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from nodulekit._files import atomic_write
from nodulekit.evaluate.predictions import write_predictions

_WORKER: dict[str, Any] = {}


def _init_worker(checkpoint: str, device: str, threads: int, segmenter: str | None = None) -> None:
    import torch

    from nodulekit.evaluate.scoring import load_model

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
    segmenter: str | os.PathLike | None = None,
) -> Path:
    """Detect nodules in every scan of a LUNA16 root (or ``subsets``); one merged CSV.

    Resumes: scans whose part file exists are skipped. Returns ``out``. With ``segmenter`` (a
    ``--task segment`` checkpoint) candidates come from its segmentation, not from blobs.
    """
    segmenter = str(segmenter) if segmenter else None
    from nodulekit.data import Luna16
    from nodulekit.train import distributed as ddp

    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    scans = Luna16(data, warn_missing=False).scans
    if subsets is not None:
        scans = scans[scans["subset"].isin([int(s) for s in subsets])]
    info = ddp.init_distributed("cuda" if device.startswith("cuda") else "cpu")
    mine = scans.iloc[info.rank :: info.world_size]
    tasks = [
        (uid, str(path), str(parts / f"{uid}.csv"), max_candidates)
        for uid, path in zip(mine["seriesuid"], mine["path"], strict=True)
        if not (parts / f"{uid}.csv").is_file()
    ]
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    if workers <= 1:
        _init_worker(str(checkpoint), device, 0 if device != "cpu" else threads, segmenter)
        for task in _progress(tasks, progress):
            _detect_one(task)
    else:
        import multiprocessing as mp

        context = mp.get_context("spawn")  # safe with torch and CUDA
        with context.Pool(
            workers, _init_worker, (str(checkpoint), device, threads, segmenter)
        ) as pool:
            for _ in _progress(pool.imap_unordered(_detect_one, tasks), progress, len(tasks)):
                pass
    ddp.barrier(info)
    if info.is_main:
        merge_parts(parts, scans["seriesuid"], out)
    ddp.barrier(info)
    return out


def _progress(items: Any, enabled: bool, total: int | None = None) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc="detect", unit="scan")


def merge_parts(parts: Path, uids: Iterable[str], out: Path) -> Path:
    """One LUNA16 submission from the per-scan part files (scans in ``uids`` order)."""
    tables = [pd.read_csv(parts / f"{uid}.csv", dtype={"seriesuid": str}) for uid in uids
              if (parts / f"{uid}.csv").is_file()]  # fmt: skip
    if tables:
        merged = pd.concat(tables, ignore_index=True)
    else:
        merged = pd.DataFrame(columns=["seriesuid", "coordX", "coordY", "coordZ", "probability"])
    return write_predictions(merged, out)
