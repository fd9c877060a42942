"""Candidate points, as a LUNA16 candidate detector would give them.

Every nodule gets one or two class-1 rows near its centre; class-0 rows are mostly hard
negatives: vessel cross-sections, forks and crossings of nodule size, the pleura, ribs, soft
tissue at the hilum, the excluded findings, plus some plain lung points. Class-0 points
closer than ``MERGE_MM`` to one already taken are dropped (one candidate per spot).
"""

from __future__ import annotations

import numpy as np

from nodulekit.data.synthetic.anatomy import LEFT_LUNG, RIB_RHO, RIGHT_LUNG, Anatomy
from nodulekit.data.synthetic.geometry import Grid
from nodulekit.data.synthetic.nodules import NODULE_KINDS, Finding
from nodulekit.data.synthetic.vessels import VesselTree, vessel_points

# share of the class-0 rows (excluded findings come on top)
# (LUNA16's candidates_V2 come from detectors tuned to solid blobs: about half of a CAD's
# false positives on real scans are vessels, most of the rest pleura and chest wall)
NEGATIVE_MIX = {"vessel": 0.6, "pleura": 0.14, "rib": 0.06, "hilum": 0.05, "lung": 0.15}

MERGE_MM = 2.0  # class-0 candidates closer than this are one candidate
Row = tuple[float, float, float, int, str]  # x, y, z (mm), class, kind


def sample_candidates(
    rng: np.random.Generator,
    grid: Grid,
    anatomy: Anatomy,
    vol: np.ndarray,
    labels: np.ndarray,
    tree: VesselTree,
    findings: list[Finding],
    boundary: np.ndarray,
    negatives_per_nodule: int,
    negatives_without_nodules: int,
) -> list[Row]:
    """Candidate rows for one scan, shuffled: ``negatives_per_nodule`` class-0 rows per
    nodule, or ``negatives_without_nodules`` in a scan without one."""
    nodules = [f for f in findings if f.kind in NODULE_KINDS]
    rows: list[Row] = []
    for f in nodules:
        r = float(np.mean(f.radii_mm))
        for k in range(1 + int(rng.random() < 0.5)):
            jitter = _in_ball(rng, r * (0.3 if k == 0 else 0.6))
            rows.append((*(f.center_xyz_mm + jitter), 1, f.kind))
    for f in findings:
        if f.kind not in NODULE_KINDS:
            rows.append((*(f.center_xyz_mm + _in_ball(rng, 0.5)), 0, f.kind))
    n_neg = negatives_per_nodule * len(nodules) if nodules else negatives_without_nodules
    counts = rng.multinomial(n_neg, list(NEGATIVE_MIX.values()))
    wanted = dict(zip(NEGATIVE_MIX, counts, strict=True))
    points: list[tuple[np.ndarray, str]] = []
    points += vessel_points(rng, tree, 6 * wanted["vessel"])  # spares: spots merge
    points += [(p, "pleura") for p in _from_indices(rng, grid, boundary, 3 * wanted["pleura"])]
    lung_idx = np.flatnonzero(np.isin(labels, (RIGHT_LUNG, LEFT_LUNG)))
    points += [(p, "lung") for p in _from_indices(rng, grid, lung_idx, 3 * wanted["lung"])]
    points += [(p, "rib") for p in _rib_points(rng, anatomy, 3 * wanted["rib"])]
    points += [(p, "hilum") for p in _hilum_points(rng, anatomy, 3 * wanted["hilum"])]
    taken = dict.fromkeys(NEGATIVE_MIX, 0)
    kept: list[np.ndarray] = []
    for p, kind in points:
        group = "vessel" if kind.startswith("vessel") else kind
        if taken[group] >= wanted[group]:
            continue
        if kind.startswith("vessel"):
            p = _snap_to_peak(grid, vol, p)
        if p is None or grid.nearest(p) is None or _near_nodule(p, nodules):
            continue
        if kept and np.min(np.linalg.norm(np.asarray(kept) - p, axis=1)) < MERGE_MM:
            continue  # one candidate per spot, as LUNA16 merged its detectors' candidates
        kept.append(p)
        taken[group] += 1
        rows.append((*p, 0, kind))
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def _in_ball(rng: np.random.Generator, radius: float) -> np.ndarray:
    d = rng.normal(0, 1, 3)
    return d / (np.linalg.norm(d) + 1e-9) * radius * float(rng.random()) ** (1 / 3)


def _near_nodule(p: np.ndarray, nodules: list[Finding]) -> bool:
    return any(np.linalg.norm(p - f.center_xyz_mm) < f.reach_mm + 5.0 for f in nodules)


def _from_indices(rng, grid: Grid, flat: np.ndarray, n: int) -> list[np.ndarray]:
    if not flat.size or n <= 0:
        return []
    picks = rng.choice(flat, size=n)
    zyx = np.stack(np.unravel_index(picks, grid.shape_zyx), axis=1).astype(float)
    return list(grid.to_world(zyx + rng.uniform(-0.4, 0.4, zyx.shape)))


def _snap_to_peak(grid: Grid, vol: np.ndarray, p: np.ndarray) -> np.ndarray | None:
    """Move a point to the brightest voxel nearby, as intensity-based detectors do."""
    at = grid.nearest(p)
    if at is None:
        return None
    z, y, x = at
    lo = (max(z - 1, 0), max(y - 2, 0), max(x - 2, 0))
    win = vol[lo[0] : z + 2, lo[1] : y + 3, lo[2] : x + 3]
    win = np.where(win > 200, -2048, win)  # a vessel's peak, not a rib's or the spine's
    peak = np.unravel_index(int(np.argmax(win)), win.shape)
    return grid.to_world(np.add(lo, peak))


def _rib_points(rng, anatomy: Anatomy, n: int) -> list[np.ndarray]:
    s = anatomy.scale
    spacing = 24.0 * s
    out = []
    for _ in range(n):
        phi = float(rng.uniform(0.35, 0.75 * np.pi))
        side = 1.0 if rng.random() < 0.5 else -1.0
        k = int(rng.integers(0, max(int(anatomy.height / spacing), 1)))
        z_rib = anatomy.z_base + (0.1 + k) * spacing
        # point on the body ellipse at normalised radius RIB_RHO in direction phi
        u, v = side * RIB_RHO * np.sin(phi), RIB_RHO * np.cos(phi)
        phi_mm = np.arctan2(abs(u) * anatomy.a, v * anatomy.b)  # the angle the ribs use
        z = z_rib - 1.6 * spacing * (1 - np.cos(phi_mm)) / 2
        out.append(np.array([anatomy.cx + u * anatomy.a, anatomy.cy + v * anatomy.b, z]))
    return out


def _hilum_points(rng, anatomy: Anatomy, n: int) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        side = 1.0 if rng.random() < 0.5 else -1.0
        u = side * anatomy.mediastinum * float(rng.uniform(0.6, 1.1))
        t = anatomy.carina_t - float(rng.uniform(0.0, 0.3))
        out.append(anatomy.world(u, float(rng.uniform(-0.3, 0.3)), t))
    return out
