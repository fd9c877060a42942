"""The training loop: one readable function, `fit`, plus `train` that starts from a data root.

Per epoch: draw a balanced, augmented sample of training crops; step AdamW under a one-cycle
(or warm-up + cosine) schedule with gradient clipping, in mixed precision on CUDA; validate on
held-out series (AUC, AP, recall, precision, F1); write ``metrics.csv``, ``last.pt`` and, when
the validation AUC improved, ``best.pt``; stop early when it has not improved for ``patience``
epochs. Under ``torchrun`` every process trains on its own shard and only rank 0 writes files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from nodulekit.errors import CheckpointError
from nodulekit.models import build_model
from nodulekit.train import distributed as ddp
from nodulekit.train.callbacks import CallbackList
from nodulekit.train.checkpoint import load_checkpoint, save_checkpoint
from nodulekit.train.config import TrainConfig
from nodulekit.train.metrics import binary_metrics, is_better
from nodulekit.train.sampler import BalancedSampler

#: metrics.csv columns, in order (more follow: the best-F1 threshold and its scores)
METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "val_loss",
    "val_auc",
    "val_ap",
    "val_recall",
    "val_precision",
    "val_f1",
    "lr",
    "samples_per_s",
    "seconds",
]


@dataclass
class TrainResult:
    """What a run produced."""

    run_dir: Path
    metrics: pd.DataFrame
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_epoch: int | None
    best_val_auc: float
    test_metrics: dict[str, float] = field(default_factory=dict)
    model: torch.nn.Module | None = None


def resolve_device(name: str = "auto", *, local_rank: int = 0) -> torch.device:
    """``"auto"``: CUDA (this process's GPU), then MPS, then CPU; other names as given."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    warmup = max(1, int(config.warmup_fraction * total_steps))
    if config.schedule == "onecycle" and total_steps >= 4:
        warmup = min(max(2, warmup), total_steps - 2)  # OneCycleLR needs two steps per phase
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=warmup / total_steps
        )

    def factor(step: int) -> float:  # linear warm-up, then cosine to zero
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _progress(iterable: Iterable, *, enabled: bool, desc: str, total: int):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False)


def _write_csv(rows: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in METRIC_COLUMNS]
    frame = frame.reindex(columns=METRIC_COLUMNS + extra)
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return frame


def make_run_dir(path: str | os.PathLike) -> Path:
    """Create the run folder readable by the user only (mode 0700)."""
    run_dir = Path(path)
    existed = run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not existed:
        os.chmod(run_dir, 0o700)
    return run_dir


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, loader: DataLoader, device: torch.device, amp: torch.dtype | None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every batch of ``loader`` (model in eval mode)."""
    model.eval()
    logits, labels = [], []
    for x, y, _meta in loader:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(x.to(device, non_blocking=True))
        logits.append(out.float().cpu().numpy())
        labels.append(np.asarray(y))
    if not logits:
        return np.empty(0, np.float32), np.empty(0, np.int64)
    return np.concatenate(logits), np.concatenate(labels)


def evaluate_split(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int,
    amp: torch.dtype | None = None,
    info: ddp.DistInfo | None = None,
) -> dict[str, float]:
    """Loss and `binary_metrics` on ``dataset``; each rank scores a shard, all get the result."""
    info = info or ddp.DistInfo()
    shard = Subset(dataset, range(info.rank, len(dataset), info.world_size))
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False)
    logits, labels = predict_logits(getattr(model, "module", model), loader, device, amp)
    parts = ddp.all_gather_objects(info, (logits, labels))
    logits = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if logits.size == 0:
        return {"loss": float("nan"), **binary_metrics(labels, logits)}
    t_logits = torch.from_numpy(logits).double()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        t_logits, torch.from_numpy(labels).double()
    )
    return {"loss": float(loss), **binary_metrics(labels, torch.sigmoid(t_logits).numpy())}


def _train_one_epoch(
    model, loader, optimizer, scheduler, scaler, *, device, amp, config, callbacks, step, show
) -> tuple[float, int, int]:
    """One pass over ``loader``; returns (summed loss, samples, global step)."""
    model.train()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    total, seen = 0.0, 0
    for x, y, _meta in _progress(loader, enabled=show, desc="train", total=len(loader)):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True).float()
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:  # fp16: scale the loss so small gradients survive
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        total += float(loss.detach()) * len(y)
        seen += len(y)
        callbacks.call("on_batch_end", step, float(loss.detach()))
        step += 1
    return total, seen, step


def fit(
    config: TrainConfig,
    train_dataset: Dataset,
    val_dataset: Dataset,
    *,
    test_dataset: Dataset | None = None,
    callbacks: Iterable[Any] = (),
    data_fingerprint: str = "",
) -> TrainResult:
    """Train ``config.model`` on ``train_dataset`` and validate on ``val_dataset``.

    ``train_dataset`` needs a ``labels`` array (for the balanced sampler) and may have
    ``set_epoch`` (for augmentation); samples are ``(x, label, meta)``. Under ``torchrun``
    call it in every process. Returns a `TrainResult`; files go to ``config.out``.
    """
    info = ddp.init_distributed(resolve_device(config.device).type)
    device = resolve_device(config.device, local_rank=info.local_rank)
    amp = _amp_dtype(device, config.amp)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads_before = torch.get_num_threads()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    hooks = CallbackList(callbacks if info.is_main else ())
    show = info.is_main and (
        config.progress if config.progress is not None else sys.stderr.isatty()
    )
    try:
        # --- model, optimiser, schedule ------------------------------------------------
        torch.manual_seed(config.seed)
        model = build_model(config.model, **config.model_options).to(device)
        if info.enabled:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        sampler = BalancedSampler(
            np.asarray(train_dataset.labels),
            positive_fraction=config.positive_fraction,
            num_samples=config.samples_per_epoch,
            seed=config.seed,
            rank=info.rank,
            world_size=info.world_size,
        )
        loader = DataLoader(
            train_dataset,
            batch_size=config.batch_size,
            sampler=sampler,
            drop_last=False,
            num_workers=config.workers,
            pin_memory=device.type == "cuda",
        )
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        scheduler = _make_scheduler(optimizer, config, config.epochs * len(loader))
        scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None

        # --- resume -----------------------------------------------------------------
        start_epoch, history, state = 0, [], {"best_auc": None, "best_epoch": None, "bad": 0}
        if config.resume:
            ckpt = load_checkpoint(config.resume, map_location=device)
            if ckpt["config"].get("model") != config.model:
                raise CheckpointError(
                    f"checkpoint {config.resume} holds model {ckpt['config'].get('model')!r}, "
                    f"not {config.model!r}; resume with the same --model"
                )
            getattr(model, "module", model).load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if scaler is not None and ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            start_epoch, history = int(ckpt["epoch"]) + 1, list(ckpt["history"])
            state.update(ckpt.get("extra", {}).get("loop", {}))

        run_dir = Path(config.out)
        if info.is_main:
            make_run_dir(run_dir)
            (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        hooks.call("on_train_begin", config)

        # --- epochs -----------------------------------------------------------------
        step = start_epoch * len(loader)
        for epoch in range(start_epoch, config.epochs):
            torch.manual_seed(config.seed + epoch)  # same epoch, same randomness on resume
            sampler.set_epoch(epoch)
            if hasattr(train_dataset, "set_epoch"):
                train_dataset.set_epoch(epoch)
            started = time.perf_counter()
            loss_sum, seen, step = _train_one_epoch(
                model,
                loader,
                optimizer,
                scheduler,
                scaler,
                device=device,
                amp=amp,
                config=config,
                callbacks=hooks,
                step=step,
                show=show,
            )
            train_seconds = time.perf_counter() - started
            loss_sum, seen = np.sum(ddp.all_gather_objects(info, (loss_sum, seen)), axis=0)
            val = evaluate_split(
                model, val_dataset, device=device, batch_size=config.batch_size, amp=amp, info=info
            )
            row = {
                "epoch": epoch,
                "train_loss": loss_sum / max(seen, 1),
                "val_loss": val["loss"],
                **{f"val_{k}": v for k, v in val.items() if k != "loss"},
                "lr": scheduler.get_last_lr()[0],
                "samples_per_s": seen / train_seconds,
                "seconds": time.perf_counter() - started,
            }
            history.append(row)
            improved = is_better(row["val_auc"], state["best_auc"])
            if improved:
                state.update(best_auc=row["val_auc"], best_epoch=epoch, bad=0)
            else:
                state["bad"] += 1
            if info.is_main:
                _write_csv(history, run_dir / "metrics.csv")
                saved = dict(
                    model=model,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    scaler=scaler,
                    epoch=epoch,
                    config=config.to_dict(),
                    metrics=row,
                    data_fingerprint=data_fingerprint,
                    history=history,
                    extra={"loop": state},
                )
                save_checkpoint(run_dir / "last.pt", **saved)
                if improved:
                    save_checkpoint(run_dir / "best.pt", **saved)
            stop = hooks.call(
                "on_epoch_end",
                {
                    **row,
                    "best_epoch": state["best_epoch"],
                    "best_checkpoint": str(run_dir / "best.pt"),
                },
            )
            stop = stop or (config.patience > 0 and state["bad"] >= config.patience)
            if ddp.broadcast_object(info, bool(stop)):
                break

        # --- final test on held-out series with the best weights --------------------
        net = getattr(model, "module", model)
        best_path = run_dir / "best.pt"
        ddp.barrier(info)
        test_metrics: dict[str, float] = {}
        # rank 0 wrote best.pt; every rank tests rank 0's best weights, sent over the process
        # group (other ranks may not see rank 0's files: no shared filesystem across nodes)
        if ddp.broadcast_object(info, best_path.is_file() if info.is_main else None):
            if info.is_main:
                net.load_state_dict(load_checkpoint(best_path, map_location=device)["model"])
            ddp.broadcast_tensors(info, list(net.state_dict().values()))
        if test_dataset is not None and len(test_dataset) > 0:
            test_metrics = evaluate_split(
                net, test_dataset, device=device, batch_size=config.batch_size, amp=amp, info=info
            )
            if info.is_main:
                (run_dir / "test_metrics.json").write_text(json.dumps(test_metrics, indent=2))
        frame = pd.DataFrame(history).reindex(
            columns=METRIC_COLUMNS
            + [c for c in (history[0] if history else {}) if c not in METRIC_COLUMNS]
        )
        result = TrainResult(
            run_dir=run_dir,
            metrics=frame,
            best_checkpoint=best_path if best_path.is_file() else None,  # rank 0's view
            last_checkpoint=run_dir / "last.pt" if (run_dir / "last.pt").is_file() else None,
            best_epoch=state["best_epoch"],
            best_val_auc=float("nan") if state["best_auc"] is None else state["best_auc"],
            test_metrics=test_metrics,
            model=net.cpu(),
        )
        hooks.call("on_train_end", result)
        return result
    finally:
        torch.set_num_threads(threads_before)
        if device.type == "cpu":
            torch.use_deterministic_algorithms(was_deterministic)


def data_fingerprint(cache_fingerprint: str, splits: dict[str, np.ndarray], uids) -> str:
    """SHA-256 (first 16 hex digits) of the cache's fingerprint and the series of each split."""
    payload = {name: sorted({str(uids[i]) for i in rows}) for name, rows in splits.items()}
    text = json.dumps({"cache": cache_fingerprint, "splits": payload}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
