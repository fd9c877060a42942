"""Training throughput, and whether the data pipeline keeps up with it.

Run: ``python benchmarks/bench_train.py [--threads 2] [--shape 24] [--batch 32] [--steps 6]``.

Prints, measured in this one run:

1. training samples per second on the CPU (``torch.set_num_threads(threads)``) for each model,
   with the weights and crops channels-first (PyTorch's default) and channels-last
   (`nodulekit.train.layout`, what `fit` uses), and the ratio;
2. crops per second from a crop cache (a memory-mapped ``crops.npy`` opened as
   `nodulekit.preprocess.CropCache`) through `CandidateDataset` with `Augment` and a
   ``DataLoader`` with 2 workers, against the default model's training samples per second:
   the ratio should be at least 3 (data is never the bottleneck);
3. the first batch of an epoch: seconds from ``iter(loader)`` (fresh workers, as every epoch
   of `nodulekit.train.fit` starts) to the first batch, two epochs, each in a fresh
   interpreter: with ``scipy.ndimage`` imported once by `nodulekit.train.augment` (now), and
   with it imported by each worker on first use (before; emulated by a stand-in module that
   imports the real one when first used); the ratio before / now;
4. on CUDA, when present: samples per second in fp32 vs mixed precision (bf16 where
   supported, else fp16) and the peak GPU memory, for each model.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import torch


class _ImportOnFirstUse(types.ModuleType):
    """Stands in for a module until an attribute is used, then imports it (in that process):
    forked DataLoader workers each pay the import, as when `Augment` imported it lazily."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):  # the import system probing (__path__...): not a use
            raise AttributeError(name)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


if sys.argv[1:3] == ["--first-batch-child", "lazy"]:
    # emulate the old `from scipy import ndimage` inside Augment.__call__: installed before
    # nodulekit.train imports it, so that each forked worker imports it on first use
    sys.modules["scipy.ndimage"] = _ImportOnFirstUse("scipy.ndimage")

import nodulekit.train.augment as augment_module  # noqa: E402
from nodulekit.models import build_model  # noqa: E402
from nodulekit.preprocess import CropCache  # noqa: E402
from nodulekit.train import (  # noqa: E402
    Augment,
    BalancedSampler,
    CandidateDataset,
    layout,
)

MODELS = ["cnn", "resnet"]


def train_rate(
    name: str,
    *,
    shape: int,
    batch: int,
    steps: int,
    device: str = "cpu",
    amp: torch.dtype | None = None,
    channels_last: bool = True,
) -> tuple[float, float]:
    """(samples per second, peak GPU MiB) of AdamW steps on random crops."""
    model = build_model(name).to(device)
    x = torch.rand(batch, 1, shape, shape, shape, device=device)
    if channels_last:
        model, x = layout.channels_last(model), layout.to_input(x, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    y = (torch.rand(batch, device=device) > 0.5).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step() -> None:
        with torch.autocast(
            torch.device(device).type, dtype=amp or torch.float32, enabled=amp is not None
        ):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    for _ in range(2):  # warm-up
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else 0.0
    return steps * batch / seconds, peak


def fake_cache(folder: Path, *, n: int, shape: int) -> CropCache:
    """A crop cache folder with ``n`` random int16 HU crops (what the loader reads)."""
    rng = np.random.default_rng(0)
    crops = np.lib.format.open_memmap(
        folder / "crops.npy", mode="w+", dtype=np.int16, shape=(n, shape, shape, shape)
    )
    crops[:] = rng.integers(-1000, 400, size=crops.shape, dtype=np.int16)
    crops.flush()
    del crops
    return CropCache(folder, fake_index(n), {"shape_zyx": [shape] * 3, "size_mm": 40.0})


def fake_index(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "seriesuid": [f"1.2.{i // 50}" for i in range(n)],
            "coordX": 0.0,
            "coordY": 0.0,
            "coordZ": 0.0,
            "class": (np.arange(n) % 20 == 0).astype(int),
            "diameter_mm": np.nan,
            "subset": 0,
            "outside": False,
        }
    )


def loader_rate(cache: CropCache, *, batch: int, workers: int, samples: int) -> float:
    """Crops per second through DataLoader(CandidateDataset(augment=Augment())))."""
    dataset = CandidateDataset(cache, augment=Augment(seed=0))
    sampler = BalancedSampler(dataset.labels, num_samples=samples, seed=0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers
    )
    iterator = iter(loader)
    next(iterator)  # workers started
    start, count = time.perf_counter(), 0
    for x, _y, _meta in iterator:
        count += len(x)
    return count / (time.perf_counter() - start)


def first_batch_child(mode: str, folder: str, *, shape: int, batch: int, workers: int) -> None:
    """Run in a fresh interpreter: print the seconds to the first batch of two epochs."""
    if mode == "lazy":  # the stand-in must be there before nodulekit.train is imported
        assert isinstance(augment_module.ndimage, _ImportOnFirstUse), "emulation failed"
    cache = CropCache(Path(folder), fake_index(2048), {"shape_zyx": [shape] * 3})
    dataset = CandidateDataset(cache, augment=Augment(seed=0))
    sampler = BalancedSampler(dataset.labels, num_samples=batch * 4, seed=0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers
    )
    seconds = []
    for _epoch in range(2):
        start = time.perf_counter()
        iterator = iter(loader)  # fresh workers, as each epoch of fit starts them
        next(iterator)
        seconds.append(time.perf_counter() - start)
        for _ in iterator:
            pass
    print(json.dumps(seconds))


def first_batch_seconds(mode: str, folder: Path, args: argparse.Namespace) -> list[float]:
    command = [sys.executable, __file__, "--first-batch-child", mode, str(folder)]  # argv[1:3]
    command += ["--shape", str(args.shape), "--batch", str(args.batch)]
    command += ["--workers", str(args.workers)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape", type=int, default=24, help="crop edge in voxels")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--first-batch-child", nargs=2, metavar=("MODE", "FOLDER"), help="internal")
    args = parser.parse_args()
    if args.first_batch_child:
        mode, folder = args.first_batch_child
        first_batch_child(mode, folder, shape=args.shape, batch=args.batch, workers=args.workers)
        return
    torch.set_num_threads(args.threads)
    print(f"CPU, {args.threads} threads, crops {args.shape}^3, batch {args.batch}")

    rates = {}
    for name in MODELS:
        first, _ = train_rate(
            name, shape=args.shape, batch=args.batch, steps=args.steps, channels_last=False
        )
        rates[name], _ = train_rate(name, shape=args.shape, batch=args.batch, steps=args.steps)
        print(
            f"  train {name:8s} channels-first {first:8.1f} samples/s | channels-last "
            f"{rates[name]:8.1f} samples/s | x{rates[name] / first:.2f}"
        )

    with tempfile.TemporaryDirectory() as tmp:
        cache = fake_cache(Path(tmp), n=2048, shape=args.shape)
        crops_s = loader_rate(cache, batch=args.batch, workers=args.workers, samples=1024)
        ratio = crops_s / rates["cnn"]
        print(f"  loader with augmentation, {args.workers} workers: {crops_s:8.1f} crops/s")
        print(f"  ratio loader / default-model training: {ratio:.1f} (target >= 3)")
        before = first_batch_seconds("lazy", Path(tmp), args)
        now = first_batch_seconds("eager", Path(tmp), args)
    print(
        f"  first batch of an epoch, {args.workers} fresh workers (epochs 1, 2): "
        f"scipy.ndimage imported in each worker (before) {before[0]:.2f} s, {before[1]:.2f} s"
        f" | imported once at module level (now) {now[0]:.2f} s, {now[1]:.2f} s | "
        f"x{sum(before) / sum(now):.1f} faster"
    )

    if torch.cuda.is_available():
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        print(
            f"CUDA {torch.cuda.get_device_name()}, crops 32^3 and 64^3, batch 64, "
            f"mixed precision = {str(amp).removeprefix('torch.')}"
        )
        for shape in (32, 64):
            for name in MODELS:
                fp32, mem32 = train_rate(name, shape=shape, batch=64, steps=20, device="cuda")
                mixed, mem16 = train_rate(
                    name, shape=shape, batch=64, steps=20, device="cuda", amp=amp
                )
                print(
                    f"  {shape}^3 {name:8s} fp32 {fp32:9.1f} samples/s {mem32:7.0f} MiB | "
                    f"mixed {mixed:9.1f} samples/s {mem16:7.0f} MiB | x{mixed / fp32:.2f}"
                )
    else:
        print("no CUDA device: fp32 vs mixed precision not measured")


if __name__ == "__main__":
    main()
