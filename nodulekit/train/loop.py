"""The training loop: `fit`, its typed state, and the handlers it attaches.

Per epoch: draw a balanced, augmented sample of training crops; step AdamW under a one-cycle
(or warm-up + cosine) schedule with gradient clipping, in mixed precision on CUDA; validate on
held-out series (AUC, AP, recall, precision, F1); then the handlers of
`nodulekit.train.handlers` write ``metrics.csv``, ``last.pt`` and, when the validation AUC
improved, ``best.pt``, print a progress line, and stop early when the AUC has not improved for
``patience`` epochs. At the end the best weights score the test split at the operating point
chosen on validation. Under ``torchrun`` every process trains on its own shard and only rank
0 writes files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from nodulekit._files import write_text_atomic
from nodulekit.models import build_model
from nodulekit.train import distributed as ddp
from nodulekit.train.callbacks import CallbackList
from nodulekit.train.checkpoint import load_checkpoint
from nodulekit.train.config import TrainConfig
from nodulekit.train.handlers import (
    METRIC_COLUMNS,
    Checkpointer,
    EarlyStopping,
    MetricsFile,
    ProgressLine,
    metrics_frame,
)
from nodulekit.train.layout import channels_last, to_input
from nodulekit.train.resume import load_resume_checkpoint, schedule_changed
from nodulekit.train.run_dir import claim_run, make_run_dir
from nodulekit.train.sampler import BalancedSampler
from nodulekit.train.schedule import fast_forward, make_scheduler
from nodulekit.train.state import LoopState
from nodulekit.train.task import BinaryClassification, Task, evaluate_split, predict_logits

__all__ = [
    "METRIC_COLUMNS",
    "TrainResult",
    "Trainer",
    "data_fingerprint",
    "evaluate_split",
    "fit",
    "make_run_dir",
    "predict_logits",
    "resolve_device",
]


@dataclass
class TrainResult:
    """What a run produced.

    ``best_epoch`` is 0-based like the ``epoch`` column of ``metrics.csv`` (the progress line
    counts from 1); ``best_val_auc`` is the best value of the task's monitored column (the
    validation ROC AUC for the default `BinaryClassification`). ``stop_reason`` is one of `nodulekit.train.state.STOP_REASONS`;
    ``test_metrics`` is empty when there was no test split or the run was stopped by a
    callback (e.g. `StopAfter`): only a finished run scores the test split.
    """

    run_dir: Path
    metrics: pd.DataFrame
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_epoch: int | None
    best_val_auc: float
    test_metrics: dict[str, Any] = field(default_factory=dict)
    model: torch.nn.Module | None = None
    stop_reason: str = "completed"
    monitor: str = "val_auc"  # the task's monitored column (``best_val_auc`` holds its best)


@dataclass
class Trainer:
    """Everything one run works with; the handlers hold it and read ``state``."""

    config: TrainConfig
    info: ddp.DistInfo
    device: torch.device
    amp: torch.dtype | None
    task: Task
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    sampler: BalancedSampler
    loader: DataLoader
    run_dir: Path
    state: LoopState
    data_fingerprint: str = ""
    show_bars: bool = False

    @property
    def net(self) -> torch.nn.Module:
        """The plain model (unwrapped from DistributedDataParallel)."""
        return getattr(self.model, "module", self.model)


def resolve_device(name: str = "auto", *, local_rank: int = 0) -> torch.device:
    """``"auto"``: CUDA (this process's GPU), then MPS, then CPU; other names as given."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The mixed-precision dtype on CUDA (bf16 where supported, else fp16); None elsewhere or
    when not ``enabled``."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _progress(iterable: Iterable, *, enabled: bool, desc: str, total: int):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False)


@contextlib.contextmanager
def _torch_settings(config: TrainConfig, device: torch.device) -> Iterator[None]:
    """Threads and (on the CPU) deterministic algorithms for the run; restored after."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads_before = torch.get_num_threads()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(threads_before)
        if device.type == "cpu":
            torch.use_deterministic_algorithms(was_deterministic)


def _build_trainer(
    config: TrainConfig,
    info: ddp.DistInfo,
    device: torch.device,
    train_dataset: Dataset,
    run_dir: Path,
    checkpoint: dict[str, Any] | None,
    **extra: Any,
) -> Trainer:
    """Model, sampler, loader, optimiser and schedule; the checkpoint's state when resuming."""
    torch.manual_seed(config.seed)
    model = channels_last(build_model(config.model, **config.model_options).to(device))
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
    scheduler = make_scheduler(optimizer, config, config.epochs * len(loader))
    amp = amp_dtype(device, config.amp)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    trainer = Trainer(
        config=config,
        info=info,
        device=device,
        amp=amp,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        sampler=sampler,
        loader=loader,
        run_dir=run_dir,
        state=LoopState(),
        **extra,
    )
    if checkpoint is not None:
        _restore(trainer, checkpoint)
    trainer.state.monitor = trainer.task.monitor
    return trainer


def _restore(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    """Weights, optimiser, schedule (planned again if it changed), scaler and loop state."""
    trainer.net.load_state_dict(checkpoint["model"])
    trainer.optimizer.load_state_dict(checkpoint["optimizer"])
    trainer.state = LoopState.from_checkpoint(checkpoint, len(trainer.loader))
    step, config = trainer.state.step, trainer.config
    if schedule_changed(checkpoint, config, trainer.scheduler, step):
        for group in trainer.optimizer.param_groups:  # the new plan starts from this run's lr
            group["lr"] = group["initial_lr"] = config.lr
        trainer.scheduler = make_scheduler(
            trainer.optimizer, config, config.epochs * len(trainer.loader)
        )
        fast_forward(trainer.scheduler, step)
        if trainer.info.is_main and not config.quiet:
            print(
                f"resume: the learning-rate schedule is planned again over {config.epochs} "
                f"epochs and continues at step {step} of {config.epochs * len(trainer.loader)}",
                flush=True,
            )
    else:
        trainer.scheduler.load_state_dict(checkpoint["scheduler"])
    if trainer.scaler is not None and checkpoint.get("scaler"):
        trainer.scaler.load_state_dict(checkpoint["scaler"])


def _train_one_epoch(trainer: Trainer, hooks: CallbackList) -> tuple[float, int]:
    """One pass over the loader; returns (summed loss, samples)."""
    t, config = trainer, trainer.config
    t.model.train()
    total, seen = 0.0, 0
    batches = _progress(t.loader, enabled=t.show_bars, desc="train", total=len(t.loader))
    for x, y, _meta in batches:
        x, y = to_input(x, t.device), y.to(t.device, non_blocking=True).float()
        with torch.autocast(t.device.type, dtype=t.amp or torch.float32, enabled=t.amp is not None):
            loss = t.task.loss(t.model(x), y)
        t.optimizer.zero_grad(set_to_none=True)
        if t.scaler is not None:  # fp16: scale the loss so small gradients survive
            t.scaler.scale(loss).backward()
            t.scaler.unscale_(t.optimizer)
        else:
            loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(t.model.parameters(), config.grad_clip)
        if t.scaler is not None:
            t.scaler.step(t.optimizer)
            t.scaler.update()
        else:
            t.optimizer.step()
        t.scheduler.step()
        batch_loss = float(loss.detach())  # one device sync per batch
        total += batch_loss * len(y)
        seen += len(y)
        hooks.call("on_batch_end", t.state.step, batch_loss)
        t.state.step += 1
    return total, seen


def _run_epoch(trainer: Trainer, train_dataset: Dataset, val_dataset: Dataset, hooks) -> dict:
    """Train and validate epoch ``trainer.state.epoch``; return its metrics row."""
    t, epoch = trainer, trainer.state.epoch
    torch.manual_seed(t.config.seed + epoch)  # same epoch, same randomness on resume
    t.sampler.set_epoch(epoch)
    if hasattr(train_dataset, "set_epoch"):
        train_dataset.set_epoch(epoch)
    started = time.perf_counter()
    loss_sum, seen = _train_one_epoch(t, hooks)
    train_seconds = time.perf_counter() - started
    loss_sum, seen = np.sum(ddp.all_gather_objects(t.info, (loss_sum, seen)), axis=0)
    val = t.task.evaluate(
        t.model,
        val_dataset,
        device=t.device,
        batch_size=t.config.batch_size,
        amp=t.amp,
        info=t.info,
    )
    return {
        "epoch": epoch,
        "train_loss": loss_sum / max(seen, 1),
        "val_loss": val["loss"],
        **{f"val_{k}": v for k, v in val.items() if k != "loss"},
        "lr": t.scheduler.get_last_lr()[0],
        "samples_per_s": seen / train_seconds,
        "seconds": time.perf_counter() - started,
    }


def _handlers(trainer: Trainer) -> CallbackList:
    """The loop's own handlers for this rank: files and the progress line on rank 0 only."""
    handlers: list[Any] = []
    if trainer.info.is_main:
        handlers += [MetricsFile(trainer), Checkpointer(trainer)]
        if not trainer.config.quiet:
            handlers.append(ProgressLine(trainer.config.epochs, monitor=trainer.task.monitor))
    handlers.append(EarlyStopping(trainer, trainer.config.patience))
    return CallbackList(handlers)


def _run_epochs(trainer: Trainer, train_dataset, val_dataset, handlers, hooks) -> None:
    """Epochs until the last, early stopping, or a callback's stop; Ctrl-C propagates."""
    state = trainer.state
    try:
        while state.epoch < trainer.config.epochs:
            row = _run_epoch(trainer, train_dataset, val_dataset, hooks)
            state.record(row)
            payload = {
                **row,
                "best_epoch": state.best_epoch,
                "best_checkpoint": str(trainer.run_dir / "best.pt"),
            }
            handlers.call("on_epoch_end", payload)
            if hooks.call("on_epoch_end", payload) and state.stop_reason == "completed":
                state.stop_reason = "stopped"
            state.stop_reason = ddp.broadcast_object(trainer.info, state.stop_reason)
            if state.stop_reason != "completed":
                break
            state.epoch += 1
    except KeyboardInterrupt:
        state.stop_reason = "interrupted"  # last.pt holds the last finished epoch: --resume it
        raise


def _load_best(trainer: Trainer) -> None:
    """Every rank takes rank 0's ``best.pt`` weights (sent over the process group: other
    ranks may not see rank 0's files, there is no shared filesystem across nodes)."""
    best_path, info = trainer.run_dir / "best.pt", trainer.info
    ddp.barrier(info)
    if ddp.broadcast_object(info, best_path.is_file() if info.is_main else None):
        if info.is_main:
            trainer.net.load_state_dict(
                load_checkpoint(best_path, map_location=trainer.device)["model"]
            )
        ddp.broadcast_tensors(info, list(trainer.net.state_dict().values()))


def _final_test(trainer: Trainer, test_dataset: Dataset | None) -> dict[str, Any]:
    """The test split scored with the best weights at the validation's operating point."""
    state = trainer.state
    if not state.tests or test_dataset is None or len(test_dataset) == 0:
        return {}
    best_row = next((r for r in state.history if r["epoch"] == state.best_epoch), None)
    metrics: dict[str, Any] = trainer.task.evaluate(
        trainer.net,
        test_dataset,
        device=trainer.device,
        batch_size=trainer.config.batch_size,
        amp=trainer.amp,
        info=trainer.info,
        thresholds=trainer.task.operating_point(best_row),
    )
    metrics["threshold_source"] = "validation"
    if trainer.info.is_main:
        text = json.dumps(metrics, indent=2) + "\n"
        write_text_atomic(trainer.run_dir / "test_metrics.json", text)
    return metrics


def _result(trainer: Trainer, test_metrics: dict[str, Any]) -> TrainResult:
    best, last = trainer.run_dir / "best.pt", trainer.run_dir / "last.pt"
    state = trainer.state
    return TrainResult(
        run_dir=trainer.run_dir,
        metrics=metrics_frame(state.history),
        best_checkpoint=best if best.is_file() else None,  # rank 0's view
        last_checkpoint=last if last.is_file() else None,
        best_epoch=state.best_epoch,
        best_val_auc=float("nan") if state.best_score is None else state.best_score,
        test_metrics=test_metrics,
        model=trainer.net.cpu(),
        stop_reason=state.stop_reason,
        monitor=trainer.task.monitor,
    )


def fit(
    config: TrainConfig,
    train_dataset: Dataset,
    val_dataset: Dataset,
    *,
    test_dataset: Dataset | None = None,
    callbacks: Iterable[Any] = (),
    data_fingerprint: str = "",
    task: Task | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``train_dataset`` and validate on ``val_dataset``.

    ``train_dataset`` needs a ``labels`` array (for the balanced sampler) and may have
    ``set_epoch`` (for augmentation); samples are ``(x, label, meta)``. ``task`` gives the
    loss and the metrics (`BinaryClassification` by default). Under ``torchrun`` call it in
    every process. Returns a `TrainResult`; files go to ``config.out``, which must be empty
    unless ``config.resume`` is a checkpoint inside it or ``config.overwrite`` is set.

    Raises
    ------
    OutputExistsError
        ``config.out`` holds another run's files, or another run is writing to it.
    CheckpointError
        ``config.resume`` is damaged, or holds another model, or more epochs than asked.
    """
    info = ddp.init_distributed(resolve_device(config.device).type)
    device = resolve_device(config.device, local_rank=info.local_rank)
    checkpoint = load_resume_checkpoint(config, device) if config.resume else None
    hooks = CallbackList(callbacks if info.is_main else ())
    with _torch_settings(config, device), claim_run(config, info) as run_dir:
        trainer = _build_trainer(
            config,
            info,
            device,
            train_dataset,
            run_dir,
            checkpoint,
            task=task or BinaryClassification(),
            data_fingerprint=data_fingerprint,
            show_bars=info.is_main
            and (config.progress if config.progress is not None else sys.stderr.isatty()),
        )
        if info.is_main:
            write_text_atomic(
                run_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n"
            )
        handlers = _handlers(trainer)
        hooks.call("on_train_begin", config)
        _run_epochs(trainer, train_dataset, val_dataset, handlers, hooks)
        _load_best(trainer)
        result = _result(trainer, _final_test(trainer, test_dataset))
        hooks.call("on_train_end", result)
        return result


def data_fingerprint(cache_fingerprint: str, splits: dict[str, np.ndarray], uids) -> str:
    """SHA-256 (first 16 hex digits) of the cache's fingerprint and the series of each split."""
    payload = {name: sorted({str(uids[i]) for i in rows}) for name, rows in splits.items()}
    text = json.dumps({"cache": cache_fingerprint, "splits": payload}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
