"""Distributed data parallel through ``torchrun`` and PyTorch process groups.

``torchrun --nproc_per_node=N -m nodulekit.train --data ROOT --out RUN`` starts N processes
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set;
`init_distributed` reads them and joins the process group (``nccl`` on CUDA, ``gloo`` on the
CPU). Without those variables everything runs in one process and these helpers do nothing.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str = "cpu") -> DistInfo:
    """Join the process group described by torchrun's environment variables (if any)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        # long timeout: rank 0 may spend hours building the crop cache of full LUNA16 while
        # the others wait at a barrier (the default, 10-30 minutes, would kill them)
        hours = float(os.environ.get("NODULEKIT_DIST_TIMEOUT_HOURS", "12"))
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=hours))
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_gather_objects(info: DistInfo, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order (``[value]`` in a single process)."""
    if not info.enabled:
        return [value]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def broadcast_tensors(info: DistInfo, tensors: list[torch.Tensor]) -> None:
    """Overwrite ``tensors`` in place with rank 0's values (nothing in a single process)."""
    if not info.enabled:
        return
    for tensor in tensors:
        dist.broadcast(tensor, src=0)


def broadcast_object(info: DistInfo, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
