"""`train(config)`: from a LUNA16-layout data root to a trained, checkpointed model.

1. read the data root with `nodulekit.data.Luna16` (scans on disk, ``candidates_V2.csv``);
2. build or reopen the crop cache (`nodulekit.preprocess.build_crop_cache`) in the folder
   `crop_cache_dir` chooses (one line says which, unless ``quiet``): ``<data>/.nodulekit-cache``
   (shared by every run on that data) when this user can use it, else the user's own cache
   folder (`nodulekit.preprocess.cache.user_cache_dir`); a cache built with other crop
   parameters is rebuilt beside it, never reused;
3. split candidates by series: ``val_subsets`` validate, ``test_subsets`` are held out for
   the final test (by default the last two subsets on disk that hold nodules,
   `choose_splits`), the other subsets train;
4. `nodulekit.train.loop.fit`.

The run folder is checked and locked (`nodulekit.train.run_dir`), and a ``resume`` checkpoint
checked, before the crop cache is built: a refused run fails in seconds, not after the cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nodulekit.errors import NodulekitError
from nodulekit.train import distributed as ddp
from nodulekit.train.augment import Augment
from nodulekit.train.config import TrainConfig
from nodulekit.train.data import (
    CandidateDataset,
    choose_splits,
    nodule_diameters,
    split_by_series,
    subsets_with_nodules,
)
from nodulekit.train.loop import TrainResult, data_fingerprint, fit, resolve_device
from nodulekit.train.resume import load_resume_checkpoint
from nodulekit.train.run_dir import claim_run

SHARED_CACHE_NAME = ".nodulekit-cache"  # the crop cache inside a data root


def crop_cache_dir(data: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """The crop cache folder for a data root: ``cache`` when given; else
    ``<data>/.nodulekit-cache`` (shared by the runs on that data) when this user can use it
    (it exists and this user may read and write it, or it can be made in a writable data
    root); else the user's own folder (`nodulekit.preprocess.cache.user_cache_dir`), as when
    the data root is read-only or its cache belongs to another user (0o700).

    ``nodulekit train`` and ``nodulekit evaluate`` both look here, so an evaluation finds
    the crops its training cut.
    """
    return _cache_choice(data, cache)[0]


def _cache_choice(data: str | os.PathLike, cache: str | os.PathLike | None) -> tuple[Path, str]:
    """`crop_cache_dir` and why, in a few words (the run's line says it)."""
    from nodulekit.preprocess.cache import user_cache_dir

    if cache:
        return Path(cache), "--cache"
    shared = Path(data) / SHARED_CACHE_NAME
    if shared.exists():
        if shared.is_dir() and os.access(shared, os.R_OK | os.W_OK | os.X_OK):
            return shared, "shared by the runs on this data"
        why = f"your own: this user cannot read and write {shared}"
    elif os.access(data, os.W_OK | os.X_OK):
        return shared, "shared by the runs on this data"
    else:
        why = f"your own: the data root {data} is read-only"
    return user_cache_dir(data), why + "; --cache DIR to choose"


def open_or_build_cache(config: TrainConfig, *, progress: bool = False, luna: Any = None):
    """The crop cache for ``config``: built from ``config.data``, or opened from ``config.cache``.
    ``luna``: ``Luna16(config.data)`` when the caller has it already (its tables are read once)."""
    from nodulekit.preprocess import CropCache, build_crop_cache

    if not config.data:
        if not config.cache:
            raise ValueError(
                "give config.data (a LUNA16-layout root) or config.cache (a built "
                "crop cache folder); both are empty"
            )
        return CropCache.open(
            config.cache,
            expect={"size_mm": config.crop_size_mm, "shape_zyx": list(config.crop_shape)},
        )
    from nodulekit.data import Luna16

    luna = luna if luna is not None else Luna16(config.data, warn_missing=False)
    candidates = luna.candidates
    if len(candidates) == 0:
        raise NodulekitError(
            f"{config.data} has no candidates table (candidates_V2.csv or candidates.csv); "
            "training needs labelled candidates"
        )
    return build_crop_cache(
        candidates,
        luna.scans,
        crop_cache_dir(config.data, config.cache),
        size_mm=config.crop_size_mm,
        shape_zyx=config.crop_shape,
        workers=config.cache_workers,
        progress=progress,
        missing="skip",
    )


def make_datasets(
    config: TrainConfig, cache: Any, *, annotations: Any = None
) -> dict[str, CandidateDataset]:
    """Train (augmented when ``config.augment``), val and test datasets split by series.

    Validation and test subsets left as ``None`` in ``config`` are chosen by
    `choose_splits` from the subsets in the cache (the last ones holding nodules; a
    validation split without a nodule is refused), and written back into ``config`` so that
    ``config.json`` records them. With ``annotations`` (LUNA16's ``annotations.csv``) every
    nodule candidate knows its nodule's diameter (`nodule_diameters`), so the test reports
    recall per size band.
    """
    config.val_subsets, config.test_subsets = choose_splits(
        cache.index["subset"].astype(int),
        config.val_subsets,
        config.test_subsets,
        nodule_subsets=subsets_with_nodules(cache.index),
    )
    splits = split_by_series(
        cache.index, val_subsets=config.val_subsets, test_subsets=config.test_subsets
    )
    for name in ("train", "val"):
        if splits[name].size == 0:
            subsets = sorted(set(cache.index["subset"].astype(int)))
            raise NodulekitError(
                f"the {name} split is empty: the cache holds subsets {subsets}, validation "
                f"uses {list(config.val_subsets)} and test {list(config.test_subsets)}; "
                "choose --val-subsets/--test-subsets among the subsets present"
            )
    augment = Augment(seed=config.seed) if config.augment else None
    sizes = None
    if annotations is not None and len(annotations):
        sizes = nodule_diameters(cache.index, annotations)
    return {
        "train": CandidateDataset(cache, splits["train"], augment=augment, diameters_mm=sizes),
        "val": CandidateDataset(cache, splits["val"], diameters_mm=sizes),
        "test": CandidateDataset(cache, splits["test"], diameters_mm=sizes),
    }


def train(config: TrainConfig | Mapping[str, Any], *, callbacks: Iterable[Any] = ()) -> TrainResult:
    """Train a classifier on the candidates of ``config.data`` (see `TrainConfig`).

    Writes ``metrics.csv``, ``config.json``, ``best.pt``, ``last.pt`` and
    ``test_metrics.json`` (when ``test_subsets`` hold candidates) to ``config.out``.
    Under ``torchrun`` call it in every process: rank 0 builds the cache, the others wait.

    Examples
    --------
    >>> from nodulekit.train import TrainConfig, train        # doctest: +SKIP
    >>> result = train(TrainConfig(data="synthetic", out="runs/demo"))  # doctest: +SKIP
    >>> result.metrics[["epoch", "val_auc"]]  # doctest: +SKIP
    """
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(dict(config))
    info = ddp.init_distributed(resolve_device(config.device).type)
    if config.resume:
        load_resume_checkpoint(config)  # a checkpoint that cannot continue fails here
    if config.task == "segment":
        return _train_segmentation(config, info, callbacks)
    luna = None  # the data root's tables, read once for the checks, the cache and the sizes
    if config.data:
        from nodulekit.data import Luna16

        luna = Luna16(config.data, warn_missing=False)
        _check_splits(config, luna)  # too few subsets, or none with nodules: before the cache
    with claim_run(config, info):
        if info.is_main:
            if (config.data or config.cache) and not config.quiet:
                folder, why = _cache_choice(config.data or ".", config.cache)
                print(f"crop cache: {folder} ({why})", flush=True)
            cache = open_or_build_cache(config, progress=bool(config.progress), luna=luna)
        ddp.barrier(info)
        if not info.is_main:
            cache = open_or_build_cache(config, luna=luna)  # rank 0 built it: this only opens it
        annotations = luna.annotations if luna is not None else None
        datasets = make_datasets(config, cache, annotations=annotations)
        splits = {name: ds.indices for name, ds in datasets.items()}
        fingerprint = data_fingerprint(
            str(cache.params.get("fingerprint", "")), splits, cache.index["seriesuid"].to_numpy()
        )
        return fit(
            config,
            datasets["train"],
            datasets["val"],
            test_dataset=datasets["test"],
            callbacks=callbacks,
            data_fingerprint=fingerprint,
        )


def _check_splits(config: TrainConfig, luna: Any) -> None:
    """The splits `make_datasets` will choose, checked from the data root's tables (seconds)
    rather than from the crop cache (minutes): too few subsets, or a validation split
    without a nodule, fail here."""
    scans, candidates = luna.scans, luna.candidates
    nodules = None  # no candidates table: open_or_build_cache says so
    if len(candidates) and "class" in candidates:
        nodules = subsets_with_nodules(candidates, scans)
    choose_splits(
        scans["subset"].astype(int),
        config.val_subsets,
        config.test_subsets,
        nodule_subsets=nodules,
    )


def _train_segmentation(config: TrainConfig, info: Any, callbacks: Iterable[Any]) -> TrainResult:
    """``task="segment"``: 2.5D (or 3D) patches of the nodule masks of ``config.data``, split
    by subset like the classifier's candidates, trained by the same `fit`."""
    from nodulekit.data import Luna16
    from nodulekit.train.segment import Segmentation, segmentation_datasets

    if not config.data:
        raise ValueError("task 'segment' needs config.data (a LUNA16-layout root)")
    scans = Luna16(config.data, warn_missing=False).scans
    config.val_subsets, config.test_subsets = choose_splits(
        scans["subset"].astype(int), config.val_subsets, config.test_subsets
    )
    with claim_run(config, info):
        datasets = segmentation_datasets(config, scans)
        splits = {name: np.unique(ds.seriesuids) for name, ds in datasets.items()}
        uids = np.concatenate(list(splits.values()))
        rows = {name: np.flatnonzero(np.isin(uids, s)) for name, s in splits.items()}
        fingerprint = data_fingerprint(f"segment:{config.model}", rows, uids)
        return fit(
            config,
            datasets["train"],
            datasets["val"],
            test_dataset=datasets.get("test"),
            callbacks=callbacks,
            data_fingerprint=fingerprint,
            task=Segmentation(),
        )
