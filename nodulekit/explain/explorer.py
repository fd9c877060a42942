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
        Crop geometry when cutting crops (training's default: 32 mm in 24^3 voxels).
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
        size_mm: float = 32.0,
        shape_zyx: tuple[int, int, int] = (24, 24, 24),
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
        if crops is not None and len(crops) != len(table):
            raise ValueError(f"{len(crops)} crops for {len(table)} candidate rows; give one each")
        self.model = model
        self.device = device
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
        table["row"] = np.arange(len(table))
        if "probability" not in table:
            table["probability"] = self._probabilities(len(table))
        self.table = table.sort_values("probability", ascending=False, kind="stable").reset_index(
            drop=True
        )

    @classmethod
    def from_cache(cls, model: nn.Module, cache: Any, **kwargs: Any) -> CandidateExplanations:
        """From a crop cache (`nodulekit.preprocess.CropCache` or anything with
        ``index`` and ``crops``); probabilities from a ``probability`` column or the model."""
        params = getattr(cache, "params", None) or {}
        for key in ("size_mm", "shape_zyx"):
            if key in params and key not in kwargs:
                kwargs[key] = params[key]
        return cls(model, cache.index, crops=cache.crops, **kwargs)

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
            options = self.method_options.get(method, {})
            self._maps[key] = attribute(
                self.model, self.x([i]), method, device=self.device, **options
            )
        return self._maps[key]

    def precompute(
        self, method: str, rows: list[int] | None = None, *, batch_size: int = 16
    ) -> None:
        """Compute ``method``'s maps of candidates ``rows`` (default all) in batches, ahead.

        A batch is several times cheaper per crop than one crop at a time on a CPU.
        """
        rows = [
            i for i in (range(len(self)) if rows is None else rows) if (i, method) not in self._maps
        ]
        options = self.method_options.get(method, {})
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            result = attribute(self.model, self.x(chunk), method, device=self.device, **options)
            for k, i in enumerate(chunk):
                self._maps[(i, method)] = Attribution(
                    result.maps[k : k + 1], method, result.signed, result.logits[k : k + 1],
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

    def _probabilities(self, n: int, batch: int = 64) -> np.ndarray:
        if self._crops is None:
            raise ValueError(
                "the candidate table has no probability column; give a predictions table "
                "(seriesuid, coordX, coordY, coordZ, probability) or crops="
            )
        out = []
        target = _device(self.model, self.device)
        with explaining(self.model, target), torch.no_grad():
            for start in range(0, n, batch):
                arrays = [
                    normalize_hu(np.asarray(self._crops[r]))
                    for r in range(start, min(n, start + batch))
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
        region = Scan(
            cut.array.astype(np.int16), cut.origin, cut.spacing, cut.direction, scan.seriesuid
        )
    heat = None if attribution is None else attribution.paste_into(index, region)
    mask = None
    if nodules is not None and len(nodules):
        grid = np.indices(region.shape, dtype=float).reshape(3, -1).T
        world = region.voxel_to_world(grid)
        inside = np.zeros(len(world), dtype=bool)
        for _, row in nodules.iterrows():
            centre = np.array([row["coordX"], row["coordY"], row["coordZ"]], dtype=float)
            inside |= np.linalg.norm(world - centre, axis=1) <= float(row["diameter_mm"]) / 2
        mask = inside.reshape(region.shape).astype(np.uint8)
    return {
        "ct": region,
        "heat": heat,
        "nodules": mask,
        "signed": None if attribution is None else attribution.signed,
    }
