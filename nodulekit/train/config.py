"""`TrainConfig`: every option of a training run, with the help text of each.

The command line (``nodulekit train`` and ``torchrun -m nodulekit.train``) is generated from
the dataclass by `nodulekit.train.__main__` (typer), so the Python API and the CLI always have
the same options: field ``batch_size`` is ``--batch-size``, a bool ``augment`` is
``--augment/--no-augment``, a tuple takes several values (``--val-subsets 8 9``), a dict takes
JSON (``--model-options '{"channels": [8, 16]}'``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _opt(default: Any, help: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainConfig:
    """Options of a training run; defaults are sized for the CPU demo on the synthetic set.

    A config is saved as ``config.json`` in the run folder and inside every checkpoint.
    """

    data: str | None = _opt(None, "LUNA16-layout data root (subsetN/, candidates_V2.csv, ...)")
    out: str = _opt("runs/train", "run folder: metrics.csv, config.json, best.pt, last.pt")
    cache: str | None = _opt(
        None,
        "crop cache folder; default <data>/.nodulekit-cache (shared by the runs on that "
        "data) when you can write it, else your own ~/.cache/nodulekit/crops/<data>-<hash> "
        "(a read-only data root, or another user's cache there); the run says which",
    )
    task: str = _opt(
        "classify",
        "classify (candidate crops, nodule or not) or segment (a U-Net on 2.5D patches of the "
        "nodule masks, seg-nodules-*/ or spheres; model unet or unet3d)",
    )
    model: str = _opt("cnn", "model name (nodulekit.models.available_models())")
    model_options: dict = field(
        default_factory=dict, metadata={"help": "model constructor options as JSON"}
    )
    epochs: int = _opt(10, "maximum number of epochs")
    batch_size: int = _opt(32, "batch size per process")
    lr: float = _opt(3e-3, "peak learning rate (AdamW)")
    weight_decay: float = _opt(1e-4, "AdamW weight decay")
    schedule: str = _opt("onecycle", "learning-rate schedule: onecycle or cosine (with warm-up)")
    warmup_fraction: float = _opt(0.2, "share of all steps spent warming up")
    grad_clip: float = _opt(1.0, "clip the gradient norm to this (0 disables)")
    amp: bool = _opt(True, "mixed precision on CUDA (bf16 where supported, else fp16)")
    seed: int = _opt(0, "random seed: same seed, same metrics on the CPU")
    device: str = _opt("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    val_subsets: tuple[int, ...] | None = _opt(
        None,
        "LUNA16 subsets used for validation; it must hold nodules (default: the one before "
        "the last of the subsets that hold nodules, or the last when only two do: 8 on full "
        "LUNA16)",
    )
    test_subsets: tuple[int, ...] | None = _opt(
        None,
        "LUNA16 subsets held out for the final test (default: the last subset that holds "
        "nodules when three or more do: 9 on full LUNA16; give the option with no value for "
        "none)",
    )
    positive_fraction: float = _opt(0.5, "share of nodules in each training epoch")
    samples_per_epoch: int = _opt(1536, "training samples per epoch (all processes together)")
    augment: bool = _opt(True, "augment training crops (flips, rot90, shift, scale, noise)")
    workers: int = _opt(0, "DataLoader worker processes")
    threads: int = _opt(0, "torch CPU threads (0: leave torch's default)")
    crop_size_mm: float = _opt(
        32.0, "physical edge length of a crop in mm (32 mm in 24 voxels: 1.33 mm voxels)"
    )
    crop_shape: tuple[int, ...] = _opt((24, 24, 24), "crop shape in voxels (z y x)")
    cache_workers: int = _opt(2, "processes that build the crop cache")
    patience: int = _opt(
        4,
        "stop after this many epochs without a better monitored score (val AUC, val Dice)"
        " (0: never)",
    )
    resume: str | None = _opt(None, "checkpoint to resume from (last.pt of an earlier run)")
    progress: bool | None = _opt(None, "show progress bars (default: when stderr is a TTY)")
    quiet: bool = _opt(False, "print no progress line per epoch")
    overwrite: bool = _opt(
        False, "replace the run files of a non-empty --out folder (else it is refused)"
    )

    def __post_init__(self) -> None:
        if self.val_subsets is not None:
            self.val_subsets = tuple(int(v) for v in self.val_subsets)
        if self.test_subsets is not None:
            self.test_subsets = tuple(int(v) for v in self.test_subsets)
        self.crop_shape = tuple(int(v) for v in self.crop_shape)
        # JSON-normal form (tuples become lists) so a config equals its config.json round trip
        self.model_options = json.loads(json.dumps(dict(self.model_options)))
        from nodulekit.models import canonical_model_name

        self.model = canonical_model_name(str(self.model))  # "default" of old runs is "cnn"
        for name in ("data", "out", "cache", "resume"):
            value = getattr(self, name)
            if isinstance(value, Path):
                setattr(self, name, str(value))
        if len(self.crop_shape) != 3 or min(self.crop_shape) < 4:
            raise ValueError(f"crop_shape must be 3 ints >= 4 (z, y, x), not {self.crop_shape}")
        for name in ("epochs", "batch_size", "samples_per_epoch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        self._check_task()
        if self.schedule not in ("onecycle", "cosine"):
            raise ValueError(f"schedule must be 'onecycle' or 'cosine', not {self.schedule!r}")

    def _check_task(self) -> None:
        """A segment task takes a U-Net (the default classifier switches to ``unet``)."""
        from nodulekit.models import SEGMENTATION_MODELS

        if self.task not in ("classify", "segment"):
            raise ValueError(f"task must be 'classify' or 'segment', not {self.task!r}")
        segmenter = self.model in SEGMENTATION_MODELS
        if self.task == "segment" and not segmenter:
            if self.model != "cnn":
                raise ValueError(
                    f"task 'segment' trains a U-Net: model must be one of "
                    f"{list(SEGMENTATION_MODELS)}, not {self.model!r}"
                )
            self.model = "unet"  # the default model of a segment task (config.json says so)
        if self.task == "classify" and segmenter:
            raise ValueError(
                f"model {self.model!r} segments: give --task segment, or a classifier "
                "(cnn, resnet, resnet18) for --task classify"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Config from a dict; unknown keys raise a ValueError naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig options {unknown}; known: {sorted(known)}")
        return cls(**values)
