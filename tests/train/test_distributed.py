"""Distributed data parallel on the CPU: 2 gloo processes, as torchrun would start them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from nodulekit.train.config import TrainConfig
from nodulekit.train.data import CandidateDataset, split_by_series
from nodulekit.train.loop import fit
from tests.train.conftest import make_fake_cache

pytestmark = pytest.mark.slow


class RecordingDataset(CandidateDataset):
    """Remembers which cache rows this process loaded."""

    seen: list[int]

    def __getitem__(self, i):
        self.seen.append(int(self.indices[i]))
        return super().__getitem__(i)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(out: str) -> TrainConfig:
    return TrainConfig(
        out=out,
        model_options={"channels": [4, 8, 16]},
        epochs=3,
        batch_size=16,
        samples_per_epoch=192,
        lr=5e-3,
        patience=0,
        device="cpu",
        threads=1,
    )


def _datasets():
    cache = make_fake_cache()
    splits = split_by_series(cache.index, val_subsets=(8, 9), test_subsets=())
    train = RecordingDataset(cache, splits["train"])
    train.seen = []
    return train, CandidateDataset(cache, splits["val"])


def _worker(rank: int, world_size: int, port: int, folder: str) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    train, val = _datasets()
    # each rank gets its own out folder here only so the test can see who wrote what
    result = fit(_config(os.path.join(folder, f"rank{rank}")), train, val, test_dataset=val)
    with open(os.path.join(folder, f"seen{rank}.json"), "w") as handle:
        json.dump(
            {"seen": train.seen, "auc": result.best_val_auc, "test": result.test_metrics}, handle
        )
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_split_the_data_and_only_rank0_writes(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    seen = [json.loads((tmp_path / f"seen{r}.json").read_text(encoding="utf-8")) for r in range(2)]
    assert set(seen[0]["seen"]).isdisjoint(seen[1]["seen"])
    assert len(seen[0]["seen"]) == len(seen[1]["seen"]) == 3 * 96  # 3 epochs x 192 / 2
    assert {p.name for p in (tmp_path / "rank0").iterdir()} >= {
        "best.pt",
        "last.pt",
        "metrics.csv",
        "config.json",
    }
    assert not (tmp_path / "rank1").exists()
    assert seen[0]["auc"] == seen[1]["auc"]  # validation is gathered: all ranks agree
    # the final test uses rank 0's best weights on every rank, though rank 1 cannot see best.pt
    from nodulekit.models import build_model
    from nodulekit.train import load_checkpoint
    from nodulekit.train.loop import evaluate_split

    config = _config("unused")
    net = build_model(config.model, **config.model_options)
    net.load_state_dict(load_checkpoint(tmp_path / "rank0" / "best.pt")["model"])
    _, val = _datasets()
    alone = evaluate_split(net.eval(), val, device=torch.device("cpu"), batch_size=16)
    assert seen[0]["test"]["auc"] == seen[1]["test"]["auc"] == pytest.approx(alone["auc"])
    assert seen[0]["test"]["loss"] == pytest.approx(alone["loss"], abs=1e-6)
    single_train, single_val = _datasets()
    single = fit(_config(str(tmp_path / "single")), single_train, single_val)
    assert seen[0]["auc"] >= 0.9 and single.best_val_auc >= 0.9
    assert abs(seen[0]["auc"] - single.best_val_auc) <= 0.1


def test_torchrun_runs_the_module_on_a_synthetic_set(tmp_path):
    from nodulekit.data import make_synthetic_luna16

    root = make_synthetic_luna16(
        tmp_path / "data",
        n_scans=4,
        size="tiny",
        n_subsets=4,
        progress=False,
        negatives_per_nodule=8,
    )
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "nodulekit.train",
        "--data",
        str(root),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--samples-per-epoch",
        "32",
        "--batch-size",
        "8",
        "--crop-shape",
        "12",
        "12",
        "12",
        "--val-subsets",
        "3",
        "--test-subsets",
        "--model-options",
        '{"channels": [4, 8]}',
        "--threads",
        "1",
        "--cache-workers",
        "0",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best val AUC" in done.stdout
    assert (out / "best.pt").is_file() and (out / "metrics.csv").is_file()
