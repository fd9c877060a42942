"""Candidates with their crops and maps, each map computed once: what the explorer widget shows.

`CandidateExplanations` is the logic behind `nodulekit.widgets.ExplainExplorer`, callable
from a script: a table of candidates sorted by nodule probability, their crops (from a crop
cache, or cut from the scans of a LUNA16 root on demand), the nodule they hold when it is
annotated, and a cache of attributions keyed by ``(candidate, method)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nodulekit.explain.methods import (
    Attribution,
    _device,
    attribute,
    available_methods,
    explaining,
)
from nodulekit.explain.sanity import SanityReport, sanity_check, trust_status
from nodulekit.preprocess.crop import Crop
from nodulekit.preprocess.window import normalize_hu

COORDS = ["coordX", "coordY", "coordZ"]


class CandidateExplanations:
    """Candidates sorted by probability, their crops, and their maps (computed once each).

    Parameters
    ----------
    model : nn.Module
        The classifier to explain.
    table : DataFrame
        One row per candidate: ``seriesuid, coordX, coordY, coordZ`` and optionally
        ``probability`` (computed with the model when absent), ``class`` and ``diameter_mm``
        (a nodule's outline is drawn when ``class == 1`` and the diameter is known).
    crops : (N, D, H, W) array of HU, optional
        The crops of the table's rows (a crop cache's ``crops``); otherwise ``data_root``.
    data_root : path, optional
        A LUNA16 root; crops are cut around each row's centre on first use, and the annotated
        nodules of its ``annotations.csv`` are matched to the candidates.
    size_mm, shape_zyx
        Crop geometry when cutting crops; default the checkpoint's (``config``), else
        training's default (32 mm in 24^3 voxels).
    config : mapping, optional
        The checkpoint's training config (``crop_size_mm``, ``crop_shape``; `from_checkpoint`
        reads it). Every map is then computed with ``attribute(..., crop_shape=...,
        crop_size_mm=...)``: crops cut unlike the model's training crops are refused
        (`GeometryError`) instead of being explained.
    crop_rows : sequence of int, optional
        Which entry of ``crops`` each table row is (default: row ``k`` is ``crops[k]``), so a
        few rows of a large cache can be shown without copying its crops.
    max_scored : int
        Without a ``probability`` column the model scores the rows in the constructor; more
        rows than this are refused (a LUNA16 cache holds 750k crops: give a predictions
        table's probabilities, or fewer rows).
    trust : mapping of method to SanityReport or status text, optional
        Known verdicts; `check` adds more.
    method_options : mapping of method to dict, optional
        Options for `attribute` per method (e.g. ``{"occlusion": {"stride_vox": 4}}``).
    """

    def __init__(
        self,
        model: nn.Module,
        table: pd.DataFrame,
        *,
        crops: np.ndarray | None = None,
        data_root: str | Path | None = None,
        size_mm: float | None = None,
        shape_zyx: tuple[int, int, int] | None = None,
        config: Mapping[str, Any] | None = None,
        crop_rows: Any = None,
        max_scored: int = 4096,
        trust: Mapping[str, Any] | None = None,
        method_options: Mapping[str, Mapping[str, Any]] | None = None,
        device: str = "auto",
    ) -> None:
        missing = {"seriesuid", *COORDS} - set(table.columns)
        if missing:
            raise ValueError(
                f"the candidate table lacks the columns {sorted(missing)}; it needs "
                "seriesuid, coordX, coordY, coordZ (a predictions table or a crop cache index)"
            )
        if crops is None and data_root is None:
            raise ValueError("give crops=<(N, D, H, W) HU array> or data_root=<a LUNA16 root>")
        rows = np.arange(len(table)) if crop_rows is None else np.asarray(crop_rows, dtype=int)
        if len(rows) != len(table):
            raise ValueError(
                f"{len(rows)} crop_rows for {len(table)} candidate rows; give one each"
            )
        if crops is not None and crop_rows is None and len(crops) != len(table):
            raise ValueError(f"{len(crops)} crops for {len(table)} candidate rows; give one each")
        if crops is not None and len(rows) and not 0 <= rows.min() <= rows.max() < len(crops):
            raise IndexError(f"crop_rows must index the {len(crops)} crops, not {rows.max()}")
        self.model = model
        self.device = device
        self.config = dict(config or {})
        trained_mm = self.config.get("crop_size_mm")
        trained_shape = self.config.get("crop_shape")
        self.crop_size_mm = None if trained_mm is None else float(trained_mm)
        self.crop_shape = None if trained_shape is None else tuple(int(v) for v in trained_shape)
        size_mm = size_mm if size_mm is not None else (self.crop_size_mm or 32.0)
        shape_zyx = shape_zyx if shape_zyx is not None else (self.crop_shape or (24, 24, 24))
        self.size_mm, self.shape_zyx = float(size_mm), tuple(int(v) for v in shape_zyx)
        self._crops = crops
        self._luna = None
        if data_root is not None:
            from nodulekit.data.luna16 import Luna16

            self._luna = Luna16(data_root)
        self.trust: dict[str, Any] = dict(trust or {})
        self.method_options = {k: dict(v) for k, v in (method_options or {}).items()}
        self._cut: dict[int, Crop] = {}
        self._scan: dict[str, Any] = {}
        self._maps: dict[tuple[int, str], Attribution] = {}
        table = table.reset_index(drop=True).copy()
        table["row"] = rows
        if "probability" not in table:
            if len(table) > int(max_scored):
                raise ValueError(
                    f"the candidate table has {len(table)} rows and no probability column; "
                    f"scoring them all here is slow (more than max_scored={int(max_scored)}). "
                    "Add the predictions' probability column (nodulekit predict), or show fewer "
                    "rows (from_cache(..., rows=...)), or raise max_scored"
                )
            table["probability"] = self._probabilities(rows)
        self.table = table.sort_values("probability", ascending=False, kind="stable").reset_index(
            drop=True
        )

    @classmethod
    def from_cache(
        cls,
        model: nn.Module,
        cache: Any,
        *,
        rows: Any = None,
        probabilities: Any = None,
        **kwargs: Any,
    ) -> CandidateExplanations:
        """From a crop cache (`nodulekit.preprocess.CropCache` or anything with
        ``index`` and ``crops``).

        Nothing is scored when the probabilities are known: a ``probability`` column of the
        cache's index, or ``probabilities`` (one per cache row, e.g. from the predictions of
        the same cache). Otherwise the model scores only ``rows`` (cache row numbers, e.g. the
        positives or one series; default all), in the constructor, and at most ``max_scored``
        of them (a LUNA16 cache of 750k crops is refused with that advice, not scored for
        hours). The crops are read only when shown or scored (a memory-mapped cache stays on
        disk).
        """
        params = getattr(cache, "params", None) or {}
        for key in ("size_mm", "shape_zyx"):
            if key in params and key not in kwargs:
                kwargs[key] = params[key]
        table = cache.index.reset_index(drop=True)
        if probabilities is not None:
            values = np.asarray(probabilities, dtype=float).reshape(-1)
            if len(values) != len(table):
                raise ValueError(
                    f"{len(values)} probabilities for a cache of {len(table)} crops; give one each"
                )
            table = table.assign(probability=values)
        picked = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=int).ravel()
        return cls(model, table.iloc[picked], crops=cache.crops, crop_rows=picked, **kwargs)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | Path, table: pd.DataFrame, **kwargs: Any
    ) -> CandidateExplanations:
        """The model of a training checkpoint, explained on crops cut as it was trained.

        The checkpoint's config gives ``crop_size_mm`` and ``crop_shape`` (see ``config`` of
        the constructor); ``kwargs`` as the constructor (``crops``, ``data_root``, ...).
        """
        from nodulekit.train.checkpoint import load_model

        model, config = load_model(checkpoint, device=kwargs.get("device", "auto"))
        return cls(model, table, config=config, **kwargs)

    @property
    def methods(self) -> list[str]:
        """The methods on offer."""
        return available_methods()

    def __len__(self) -> int:
        return len(self.table)

    def crop_hu(self, i: int) -> np.ndarray:
        """The HU crop ``(D, H, W)`` of the ``i``-th candidate in probability order."""
        row = int(self.table.loc[i, "row"])
        if self._crops is not None:
            return np.asarray(self._crops[row], dtype=np.float32)
        return self.crop(i).array

    def ct(self, i: int) -> Crop | np.ndarray:
        """What to draw for candidate ``i``: its `Crop` (with geometry, so pictures turn it to
        LPS) when crops are cut from scans, else the cache's HU array (taken as LPS)."""
        return self.crop(i) if self._crops is None else self.crop_hu(i)

    def crop(self, i: int) -> Crop:
        """The `Crop` (with geometry) of candidate ``i``, cut from its scan on first use."""
        if i not in self._cut:
            if self._luna is None:
                raise ValueError("crops from a cache carry no geometry; give data_root")
            from nodulekit.preprocess.crop import crop

            record = self.table.loc[i]
            uid = str(record["seriesuid"])
            if uid not in self._scan:  # keep one scan in memory: candidates come in runs
                self._scan = {uid: self._luna.load(uid)}
            scan = self._scan[uid]
            centre = record[COORDS].to_numpy(dtype=float)
            self._cut[i] = crop(scan, centre, self.size_mm, self.shape_zyx)
        return self._cut[i]

    def voxel_zyx_mm(self, i: int) -> tuple[float, float, float]:
        """Voxel size ``(z, y, x)`` in mm of crop ``i``: its geometry, or size_mm / shape."""
        if i in self._cut:
            return tuple(float(v) for v in self._cut[i].spacing[::-1])  # type: ignore[return-value]
        shape = self.crop_hu(i).shape
        return tuple(self.size_mm / n for n in shape)  # type: ignore[return-value]

    def nodule(self, i: int) -> tuple[np.ndarray, float] | None:
        """``(center_zyx_vox, diameter_mm)`` of the annotated nodule in crop ``i``, if any."""
        record = self.table.loc[i]
        centre_vox = (np.asarray(self.crop_hu(i).shape, dtype=float) - 1) / 2
        if "class" in record and record["class"] == 1:
            diameter = float(record.get("diameter_mm", np.nan))
            if np.isfinite(diameter) and diameter > 0:
                return centre_vox, diameter
        if self._luna is None:
            return None
        annotations = self._luna.annotations_for(str(record["seriesuid"]))
        if annotations.empty:
            return None
        points = annotations[COORDS].to_numpy(dtype=float)
        distance = np.linalg.norm(points - record[COORDS].to_numpy(dtype=float), axis=1)
        k = int(np.argmin(distance))
        diameter = float(annotations["diameter_mm"].iloc[k])
        if distance[k] > self.size_mm / 2:
            return None
        return self.crop(i).world_to_voxel(points[k]), diameter

    def x(self, rows: list[int] | np.ndarray) -> torch.Tensor:
        """Normalised crops ``(n, 1, D, H, W)`` of candidates ``rows`` (probability order)."""
        return torch.from_numpy(np.stack([normalize_hu(self.crop_hu(int(i))) for i in rows]))[
            :, None
        ]

    def attribution(self, i: int, method: str) -> Attribution:
        """The map of candidate ``i`` by ``method``: computed on the first call, then reused."""
        key = (int(i), method)
        if key not in self._maps:
            self._maps[key] = self._attribute([int(i)], method)
        return self._maps[key]

    def _attribute(self, rows: list[int], method: str) -> Attribution:
        """``attribute`` on candidates ``rows``, with the checkpoint's crop geometry checked."""
        options = self.method_options.get(method, {})
        geometry = [self._cut[i] for i in rows] if all(i in self._cut for i in rows) else None
        return attribute(
            self.model, self.x(rows), method, device=self.device, crops=geometry,
            crop_shape=self.crop_shape, crop_size_mm=self.crop_size_mm, **options,
        )  # fmt: skip

    def precompute(
        self, method: str, rows: list[int] | None = None, *, batch_size: int = 16
    ) -> None:
        """Compute ``method``'s maps of candidates ``rows`` (default all) in batches, ahead.

        A batch is several times cheaper per crop than one crop at a time on a CPU.
        """
        rows = [
            i for i in (range(len(self)) if rows is None else rows) if (i, method) not in self._maps
        ]
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            result = self._attribute(chunk, method)
            for k, i in enumerate(chunk):
                self._maps[(i, method)] = Attribution(
                    result.maps[k : k + 1], method, result.signed, result.logits[k : k + 1],
                    crops=None if result.crops is None else result.crops[k : k + 1],
                    layer=result.layer,
                )  # fmt: skip

    def status(self, method: str) -> str:
        """The trust sentence of ``method`` (``"not checked"`` until `check` runs)."""
        verdict = self.trust.get(method)
        return verdict if isinstance(verdict, str) else trust_status(verdict)

    def check(self, method: str, *, n_crops: int = 8, **kwargs: Any) -> SanityReport:
        """Run `sanity_check` of ``method`` on the ``n_crops`` most probable candidates."""
        rows = list(range(min(int(n_crops), len(self))))
        options = {**self.method_options.get(method, {}), **kwargs}
        report = sanity_check(self.model, self.x(rows), method, **options)
        self.trust[method] = report
        return report

    def _probabilities(self, rows: np.ndarray, batch: int = 64) -> np.ndarray:
        if self._crops is None:
            raise ValueError(
                "the candidate table has no probability column; give a predictions table "
                "(seriesuid, coordX, coordY, coordZ, probability) or crops="
            )
        out = []
        target = _device(self.model, self.device)
        with explaining(self.model, target), torch.no_grad():
            for start in range(0, len(rows), batch):
                arrays = [
                    normalize_hu(np.asarray(self._crops[r])) for r in rows[start : start + batch]
                ]
                x = torch.from_numpy(np.stack(arrays))[:, None].to(target)
                out.append(torch.sigmoid(self.model(x).float()).cpu().numpy())
        return np.concatenate(out) if out else np.empty(0, np.float32)


def region_layers(
    scan: Any,
    *,
    center_xyz_mm: Any,
    region_mm: float | None = 80.0,
    attribution: Attribution | None = None,
    index: int = 0,
    nodules: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The layers of a 3D view around a candidate, on one grid: CT, heat map, nodule spheres.

    Parameters
    ----------
    scan : Scan
        The scan the candidate lies in.
    center_xyz_mm : 3 floats
        The region's centre (world mm), usually the candidate.
    region_mm : float or None
        Edge of the cube shown, at the scan's own voxel size (``None``: the whole scan; a
        512 x 512 x 300 scan is 150 MB of CT to send to the browser).
    attribution : Attribution, optional
        Map ``index`` is pasted onto the region's grid (`Attribution.paste_into`).
    nodules : DataFrame, optional
        Annotations (``coordX, coordY, coordZ, diameter_mm``): drawn as filled spheres.

    Returns
    -------
    dict
        ``"ct"`` (a `Scan` of HU), ``"heat"`` (float32 array or None), ``"nodules"``
        (uint8 array: 1 inside an annotated sphere, or None), ``"signed"`` (bool or None).
    """
    from nodulekit.data.scan import Scan
    from nodulekit.preprocess.crop import crop

    if region_mm is None:
        region = scan
    else:
        spacing_zyx_mm = np.asarray(scan.spacing_zyx_mm, dtype=float)
        shape = tuple(int(max(1, round(region_mm / s))) for s in spacing_zyx_mm)
        cut = crop(scan, center_xyz_mm, float(region_mm), shape)
        hu = np.clip(np.rint(cut.array), -32768, 32767).astype(np.int16)  # round, not truncate
        region = Scan(hu, cut.origin, cut.spacing, cut.direction, scan.seriesuid)
    heat = None if attribution is None else attribution.paste_into(index, region)
    mask = None
    if nodules is not None and len(nodules):
        mask = sphere_mask(region, nodules)
    return {
        "ct": region,
        "heat": heat,
        "nodules": mask,
        "signed": None if attribution is None else attribution.signed,
    }


def sphere_mask(grid: Any, nodules: pd.DataFrame) -> np.ndarray:
    """``uint8`` mask on ``grid`` (a Scan or Crop): 1 inside any nodule's sphere.

    Only the voxels of each sphere's bounding box (`world_to_voxel` of its centre, plus its
    radius in voxels along each axis) are measured, so a whole scan costs what the nodules
    cover, not ``voxel_to_world`` of every voxel.
    """
    shape = np.asarray(grid.shape, dtype=int)
    mask = np.zeros(tuple(shape), dtype=np.uint8)
    spacing_zyx_mm = np.asarray(grid.spacing, dtype=float)[::-1]
    for _, row in nodules.iterrows():
        centre_xyz = np.array([row["coordX"], row["coordY"], row["coordZ"]], dtype=float)
        radius_mm = float(row["diameter_mm"]) / 2
        if not np.isfinite(radius_mm) or radius_mm <= 0:
            continue
        centre_zyx = grid.world_to_voxel(centre_xyz)
        reach = radius_mm / spacing_zyx_mm  # a sphere spans +- radius along every axis
        low = np.maximum(np.floor(centre_zyx - reach).astype(int), 0)
        high = np.minimum(np.ceil(centre_zyx + reach).astype(int) + 1, shape)
        if np.any(high <= low):
            continue  # the sphere lies outside the grid
        box = np.indices(tuple(high - low), dtype=float).reshape(3, -1).T + low
        inside = np.linalg.norm(grid.voxel_to_world(box) - centre_xyz, axis=1) <= radius_mm
        view = mask[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
        view |= inside.reshape(view.shape).astype(np.uint8)
    return mask


def nifti_bytes(array: np.ndarray, like: Any) -> bytes:
    """``array`` on the grid of ``like`` (a Scan or Crop) as the bytes of a ``.nii`` file.

    SimpleITK writes only to files: it writes into a private temporary folder, removed after.
    """
    import tempfile

    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetOrigin(like.origin)
    image.SetSpacing(like.spacing)
    image.SetDirection(like.direction)
    with tempfile.TemporaryDirectory(prefix="nodulekit-nifti-") as folder:
        path = Path(folder) / "volume.nii"
        sitk.WriteImage(image, str(path))
        return path.read_bytes()
