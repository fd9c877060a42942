"""Draw one synthetic scan and write it with its masks (runs in a worker process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nodulekit.data.synthetic.anatomy import sample_anatomy
from nodulekit.data.synthetic.candidates import sample_candidates
from nodulekit.data.synthetic.geometry import Grid, sample_grid
from nodulekit.data.synthetic.nodules import (
    draw_findings,
    lung_boundary,
    place_findings,
    sample_findings,
)
from nodulekit.data.synthetic.vessels import grow_vessels, render_vessels

FOV_PADDING_HU = -2048  # outside the reconstruction circle, as in many LUNA16 scans


def draw_scan(
    seed: int,
    index: int,
    size: str,
    negatives_per_nodule: int,
    nodules_per_scan: tuple[int, int],
    nodule_free: bool = False,
) -> dict:
    """Draw scan ``index`` of the set ``seed``: HU, lung labels, nodule labels, tables.

    A ``nodule_free`` scan has no nodule (it keeps its excluded findings and as many
    candidates as a scan with the mean number of nodules)."""
    from scipy import ndimage

    rng = np.random.default_rng([seed, index, 16])
    grid = sample_grid(rng, size)
    anatomy = sample_anatomy(rng, grid)
    vol, labels, airway = anatomy.render(grid, rng)
    tree = grow_vessels(rng, anatomy)
    vessel_occ = render_vessels(grid, tree)
    boundary = lung_boundary(labels)
    n_nodules = int(rng.integers(nodules_per_scan[0], nodules_per_scan[1] + 1))
    n_negatives = negatives_per_nodule * round(sum(nodules_per_scan) / 2)
    if nodule_free:
        n_nodules = 0
    findings = sample_findings(rng, grid, anatomy.hu, n_nodules)
    findings = place_findings(rng, grid, findings, labels, vessel_occ, boundary)
    nodule_labels = np.zeros(grid.shape_zyx, np.uint8)
    draw_findings(grid, vol, findings, nodule_labels)

    # vessels over everything soft (they show through ground glass), never over air or bone
    vessel_occ *= (vol > -975.0) & (vol < 150.0) & ~airway
    del airway
    vol += vessel_occ * (anatomy.hu["vessel"] - vol)
    del vessel_occ
    # partial volume (slice thickness, reconstruction kernel), then quantum noise
    vol = ndimage.gaussian_filter(vol, sigma=(0.38, 0.55, 0.55), mode="nearest", truncate=3.0)
    noise_hu = float(rng.uniform(20.0, 40.0))
    vol += rng.standard_normal(grid.shape_zyx, dtype=np.float32) * noise_hu
    np.clip(vol, -1024.0, 3071.0, out=vol)
    hu = np.rint(vol).astype(np.int16)
    del vol
    ny, nx = grid.shape_zyx[1:]
    yy, xx = np.ogrid[:ny, :nx]
    outside = (yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2 > (min(nx, ny) / 2) ** 2
    hu[:, outside] = FOV_PADDING_HU

    candidates = sample_candidates(
        rng, grid, anatomy, hu, labels, tree, findings, boundary, negatives_per_nodule, n_negatives
    )
    return {
        "grid": grid,
        "hu": hu,
        "labels": labels,
        "nodule_labels": nodule_labels,
        "findings": findings,
        "candidates": candidates,
        "noise_hu": noise_hu,
    }


def make_scan(
    seed: int,
    index: int,
    size: str,
    subset: int,
    uid: str,
    out_dir: str,
    negatives_per_nodule: int,
    nodules_per_scan: tuple[int, int],
    nodule_free: bool = False,
) -> dict:
    """Draw and write one scan; return its table rows and geometry (plain, picklable)."""
    from nodulekit.data.io import write_scan
    from nodulekit.data.scan import Scan

    drawn = draw_scan(seed, index, size, negatives_per_nodule, nodules_per_scan, nodule_free)
    grid: Grid = drawn["grid"]
    out = Path(out_dir)
    scan = Scan(drawn["hu"], grid.origin_xyz_mm, grid.spacing_xyz_mm, seriesuid=uid)
    write_scan(scan, out / f"subset{subset}" / f"{uid}.mhd")
    _write_mask(drawn["labels"], grid, out / "seg-lungs-LUNA16" / f"{uid}.mhd")
    _write_mask(drawn["nodule_labels"], grid, out / "seg-nodules-synthetic" / f"{uid}.mhd")
    findings = [
        {
            "center_xyz_mm": [float(v) for v in f.center_xyz_mm],
            "diameter_mm": float(f.diameter_mm),
            "kind": f.kind,
            "juxtapleural": bool(f.juxtapleural),
            "label": int(f.label),
            "table": f.table,
        }
        for f in drawn["findings"]
    ]
    findings.sort(key=lambda f: (f["table"], f["label"] if f["label"] else 999))
    return {
        "uid": uid,
        "subset": subset,
        "shape_zyx": list(grid.shape_zyx),
        "spacing_xyz_mm": list(grid.spacing_xyz_mm),
        "origin_xyz_mm": list(grid.origin_xyz_mm),
        "findings": findings,
        "candidates": [
            (float(x), float(y), float(z), int(c), k) for x, y, z, c, k in drawn["candidates"]
        ],
    }


def _write_mask(mask: np.ndarray, grid: Grid, path: Path) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask)
    image.SetOrigin(grid.origin_xyz_mm)
    image.SetSpacing(grid.spacing_xyz_mm)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)
