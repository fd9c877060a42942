"""The torch ``Dataset`` over a crop cache, and splits of candidates by series.

A crop cache (`nodulekit.preprocess.CropCache`) holds int16 HU crops ``(N, D, H, W)`` and an
index table with one row per crop (``seriesuid, coordX, coordY, coordZ, class, diameter_mm,
subset, outside``). `CandidateDataset` reads crop ``i``, augments it in HU when asked
(`nodulekit.train.augment.Augment`), normalises it with `nodulekit.preprocess.normalize_hu`
and returns ``(tensor (1, D, H, W) float32 in [0, 1], label int, meta dict)``.

Splits are by *series*, never by candidate, so that no scan leaks from training into
validation: LUNA16's ten ``subsetN`` folders are the ten folds of its cross-validation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from nodulekit.errors import NodulekitError
from nodulekit.preprocess.window import normalize_hu


class CacheLike(Protocol):
    """What `CandidateDataset` needs of a crop cache: an index table and the crops."""

    index: pd.DataFrame
    crops: np.ndarray


class CandidateDataset(Dataset):
    """Candidates of a crop cache as ``(crop, label, meta)`` samples.

    Parameters
    ----------
    cache : CropCache or any object with ``.index`` (DataFrame) and ``.crops`` ((N, D, H, W))
        The crops in HU and their index table (columns ``seriesuid, coordX, coordY, coordZ,
        class``; ``diameter_mm`` optional).
    indices : sequence of int, optional
        Rows of the cache to use (all rows by default); sample ``i`` is cache row
        ``indices[i]``.
    augment : callable, optional
        ``augment(array_hu, index=..., epoch=...) -> array_hu``, e.g. `Augment`; ``None``
        (evaluation) returns the stored crop unchanged.
    diameters_mm : array of float, optional
        Nodule diameter of every cache row (NaN: unknown or not a nodule), e.g. from
        `nodule_diameters`; default: the index's ``diameter_mm`` column when it has one.

    Each sample is ``(x, y, meta)``: ``x`` float32 tensor ``(1, D, H, W)`` in ``[0, 1]``,
    ``y`` the int label (1 nodule, 0 not), ``meta`` a dict with ``seriesuid``,
    ``center_xyz_mm`` (tuple of 3 floats) and ``index`` (the cache row).
    """

    def __init__(
        self,
        cache: CacheLike,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        augment: Any = None,
        diameters_mm: np.ndarray | None = None,
    ) -> None:
        index = cache.index
        missing = {"seriesuid", "coordX", "coordY", "coordZ", "class"} - set(index.columns)
        if missing:
            raise ValueError(f"the cache index lacks columns {sorted(missing)}")
        crops = cache.crops
        if crops.ndim != 4 or crops.shape[0] != len(index):
            raise ValueError(
                f"cache crops must be (N, D, H, W) with N = {len(index)} index rows, "
                f"not shape {tuple(crops.shape)}"
            )
        n = len(index)
        rows = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= n)):
            raise ValueError(f"indices must be rows 0..{n - 1} of the cache, got {rows!r:.80}")
        self.cache = cache
        self.indices = rows
        self.augment = augment
        self.epoch = 0
        self._labels = index["class"].to_numpy(dtype=np.int64)
        self._uids = index["seriesuid"].astype(str).to_numpy()
        self._xyz = index[["coordX", "coordY", "coordZ"]].to_numpy(dtype=np.float64)
        if diameters_mm is None and "diameter_mm" in index.columns:
            diameters_mm = pd.to_numeric(index["diameter_mm"], errors="coerce").to_numpy()
        if diameters_mm is not None and len(diameters_mm) != n:
            raise ValueError(
                f"diameters_mm needs one value per cache row ({n}), not {len(diameters_mm)}"
            )
        self._diameters = None if diameters_mm is None else np.asarray(diameters_mm, float)

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def labels(self) -> np.ndarray:
        """Labels of the samples, in sample order (int64)."""
        return self._labels[self.indices]

    @property
    def seriesuids(self) -> np.ndarray:
        """Series UIDs of the samples, in sample order."""
        return self._uids[self.indices]

    @property
    def diameters_mm(self) -> np.ndarray | None:
        """Nodule diameters of the samples in mm (NaN: unknown); None when none are known."""
        if self._diameters is None or not np.isfinite(self._diameters).any():
            return None
        return self._diameters[self.indices]

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds augmentation (call before each epoch's DataLoader pass)."""
        self.epoch = int(epoch)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, dict[str, Any]]:
        row = int(self.indices[i])
        array = np.asarray(self.cache.crops[row], dtype=np.float32)
        if self.augment is not None:
            array = self.augment(array, index=row, epoch=self.epoch)
        x = torch.from_numpy(np.ascontiguousarray(normalize_hu(array)))[None]
        meta = {
            "seriesuid": str(self._uids[row]),
            "center_xyz_mm": tuple(float(v) for v in self._xyz[row]),
            "index": row,
        }
        return x, int(self._labels[row]), meta


def nodule_diameters(index: pd.DataFrame, annotations: pd.DataFrame) -> np.ndarray:
    """The diameter of the annotated nodule each nodule candidate (class 1) lies in.

    A candidate lies in a nodule when its world position is within the nodule's radius
    (LUNA16's rule for a hit); the nearest such nodule of its series gives the diameter.
    Other rows, and nodule candidates in no annotated nodule, get NaN.

    Examples
    --------
    >>> index = pd.DataFrame({"seriesuid": ["a", "a", "b"], "coordX": [0.0, 9.0, 0.0],
    ...     "coordY": [0.0] * 3, "coordZ": [1.0] * 3, "class": [1, 1, 0]})
    >>> ann = pd.DataFrame({"seriesuid": ["a"], "coordX": [0.0], "coordY": [0.0],
    ...     "coordZ": [0.0], "diameter_mm": [5.0]})
    >>> nodule_diameters(index, ann).tolist()
    [5.0, nan, nan]
    """
    out = np.full(len(index), np.nan)
    xyz = ["coordX", "coordY", "coordZ"]
    by_series = {uid: rows for uid, rows in annotations.groupby("seriesuid")}
    positives = np.flatnonzero(index["class"].to_numpy() == 1)
    for row in positives:
        nodules = by_series.get(index["seriesuid"].iloc[row])
        if nodules is None:
            continue
        centre = index[xyz].iloc[row].to_numpy(dtype=float)
        distance = np.linalg.norm(nodules[xyz].to_numpy(dtype=float) - centre, axis=1)
        diameter = nodules["diameter_mm"].to_numpy(dtype=float)
        inside = distance <= diameter / 2
        if inside.any():
            out[row] = diameter[inside][np.argmin(distance[inside])]
    return out


def split_by_series(
    index: pd.DataFrame,
    *,
    val_subsets: Iterable[int] = (8,),
    test_subsets: Iterable[int] = (9,),
) -> dict[str, np.ndarray]:
    """Row numbers of ``index`` for ``"train"``, ``"val"`` and ``"test"``, split by subset.

    Every series lies in exactly one LUNA16 ``subset``, so a split by subset is a split by
    series. Rows whose subset is in neither ``val_subsets`` nor ``test_subsets`` train.

    Examples
    --------
    >>> table = pd.DataFrame({"seriesuid": ["a", "a", "b", "c"], "subset": [0, 0, 8, 9]})
    >>> {k: v.tolist() for k, v in split_by_series(table).items()}
    {'train': [0, 1], 'val': [2], 'test': [3]}
    """
    for column in ("seriesuid", "subset"):
        if column not in index.columns:
            raise ValueError(f"the index needs a {column!r} column to split by series")
    val, test = {int(s) for s in val_subsets}, {int(s) for s in test_subsets}
    if val & test:
        raise ValueError(f"val_subsets and test_subsets share subsets {sorted(val & test)}")
    per_series = index.groupby("seriesuid")["subset"].nunique()
    if (per_series > 1).any():
        bad = per_series[per_series > 1].index[0]
        raise ValueError(f"series {bad} appears in more than one subset; fix the index table")
    subset = index["subset"].to_numpy(dtype=np.int64)
    in_val, in_test = np.isin(subset, list(val)), np.isin(subset, list(test))
    return {
        "train": np.flatnonzero(~in_val & ~in_test),
        "val": np.flatnonzero(in_val),
        "test": np.flatnonzero(in_test),
    }


def choose_splits(
    subsets: Iterable[int],
    val_subsets: Iterable[int] | None = None,
    test_subsets: Iterable[int] | None = None,
    *,
    nodule_subsets: Iterable[int] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validation and test subsets: as given, else the last one or two subsets on disk.

    With three or more subsets on disk the last one is the held-out test and the one before
    it validates (subsets 8 and 9 on a full LUNA16 root); with two, the last validates and
    there is no test split.

    ``nodule_subsets`` (the subsets holding at least one positive candidate,
    `subsets_with_nodules`) makes the defaults the last subsets that hold nodules, so that a
    small set whose last subsets happen to hold none still validates and tests on nodules;
    the subsets without nodules then train. A validation split without a nodule is refused
    (its AUC, best epoch and threshold would mean nothing), as is a set where fewer than two
    subsets hold nodules (training and validation each need some).

    Examples
    --------
    >>> choose_splits(range(10))
    ((8,), (9,))
    >>> choose_splits([0, 1])
    ((1,), ())
    >>> choose_splits([0, 1, 2], val_subsets=[0], test_subsets=[])
    ((0,), ())
    >>> choose_splits(range(10), nodule_subsets=[0, 1, 2, 3, 4, 5, 6, 7])
    ((6,), (7,))
    """
    present = sorted({int(s) for s in subsets})
    if val_subsets is None and len(present) < 2:
        raise NodulekitError(
            f"training splits scans by subset and only subsets {present} are on disk: "
            "download two or more (`nodulekit download DIR --subsets 0,1`), or give "
            "--val-subsets and --test-subsets"
        )
    pool = present
    if nodule_subsets is not None:
        pool = _holding_nodules(present, nodule_subsets, need_two=val_subsets is None)
    val = (
        tuple(int(s) for s in val_subsets)
        if val_subsets is not None
        else (pool[-2 if len(pool) > 2 else -1],)
    )
    if nodule_subsets is not None and not set(val) & set(pool):
        raise NodulekitError(
            f"validation subsets {list(val)} hold no nodule (no candidate of class 1): the "
            "validation AUC, the best epoch and the operating threshold need nodules; choose "
            f"--val-subsets among the subsets that hold nodules: {pool}"
        )
    if test_subsets is not None:
        test = tuple(int(s) for s in test_subsets)
    else:
        test = tuple(pool[-1:]) if len(pool) > 2 and pool[-1] not in val else ()
    return val, test


def _holding_nodules(
    present: list[int], nodule_subsets: Iterable[int], *, need_two: bool
) -> list[int]:
    """The subsets of ``present`` in ``nodule_subsets``: none is refused, and fewer than two
    when the validation split is to be chosen (one to train, one to validate)."""
    pool = sorted(set(present) & {int(s) for s in nodule_subsets})
    if not pool:
        raise NodulekitError(
            f"no subset of {present} holds a nodule (no candidate of class 1): training and "
            "validation need nodules; check the candidates table (its class column), or make "
            "a synthetic set with nodules (`nodulekit synth`)"
        )
    if need_two and len(pool) < 2:
        raise NodulekitError(
            f"only subsets {pool} of {present} hold a nodule (a candidate of class 1): "
            "training and validation each need some; add scans with nodules (more subsets, "
            "or `nodulekit synth` with more --scans)"
        )
    return pool


def subsets_with_nodules(
    candidates: pd.DataFrame, scans: pd.DataFrame | None = None
) -> tuple[int, ...]:
    """The subsets holding at least one positive candidate (``class == 1``).

    ``candidates`` has a ``subset`` column (a crop cache's ``index``), or ``scans``
    (``Luna16(root).scans``: seriesuid, subset) says where each series lies; candidates of
    series not on disk are left out.

    Examples
    --------
    >>> index = pd.DataFrame({"subset": [0, 0, 1, 2], "class": [0, 1, 0, 1]})
    >>> subsets_with_nodules(index)
    (0, 2)
    """
    positive = candidates[pd.to_numeric(candidates["class"], errors="coerce") == 1]
    if scans is not None:
        where = dict(zip(scans["seriesuid"].astype(str), scans["subset"], strict=True))
        found = positive["seriesuid"].astype(str).map(where).dropna()
    else:
        found = positive["subset"]
    return tuple(sorted({int(s) for s in found}))
