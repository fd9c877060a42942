"""Findings: solid, ground-glass and part-solid nodules, small ones and non-nodules.

Nodules of 3 mm and more go to ``annotations.csv``; nodules under 3 mm and non-nodules
(scars, calcified granulomas, diameter -1) go to ``annotations_excluded.csv``, as in LUNA16.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nodulekit.data.synthetic.anatomy import AIRWAY, LEFT_LUNG, RIGHT_LUNG
from nodulekit.data.synthetic.diameters import sample_diameters
from nodulekit.data.synthetic.geometry import Grid, blob_occupancy, random_rotation, unit

NODULE_KINDS = ("solid", "ground_glass", "part_solid")
EXCLUDED_KINDS = ("small_nodule", "scar", "calcified_granuloma")


@dataclass
class Finding:
    """One drawn finding; ``diameter_mm`` is -1 for non-nodules (LUNA16's convention)."""

    kind: str
    center_xyz_mm: np.ndarray
    radii_mm: np.ndarray
    rotation: np.ndarray
    lobes: np.ndarray
    hu: float
    diameter_mm: float
    juxtapleural: bool = False
    core: dict = field(default_factory=dict)  # part-solid: offset_mm, radii_mm, hu
    label: int = 0  # label in seg-nodules-synthetic (0: not drawn there)

    @property
    def reach_mm(self) -> float:
        """Radius of a sphere that holds the whole finding."""
        bump = float(np.sum(np.clip(self.lobes[:, 3], 0, None))) if len(self.lobes) else 0.0
        return float(np.max(self.radii_mm)) * (1.0 + bump) + 0.5

    @property
    def table(self) -> str:
        return "annotations" if self.kind in NODULE_KINDS else "annotations_excluded"


def sample_findings(
    rng: np.random.Generator, grid: Grid, hu: dict[str, float], n_nodules: int
) -> list[Finding]:
    """Shapes and densities of a scan's findings (positions are set by `place_findings`)."""
    ext = grid.extent_xyz_mm
    d_max = float(min(30.0, 0.14 * ext[0], 0.3 * ext[2]))
    out: list[Finding] = []
    for diameter in sample_diameters(rng, n_nodules, max_mm=d_max):
        kind = _nodule_kind(rng, float(diameter))
        if kind == "solid":
            density = float(rng.uniform(-10, 70))
        elif kind == "ground_glass":
            density = float(rng.uniform(-620, -420))
        else:
            density = float(rng.uniform(-620, -450))
        finding = _blob(rng, kind, float(diameter), density, irregular=0.12)
        if kind == "part_solid":
            core_r = finding.radii_mm * float(rng.uniform(0.35, 0.55))
            offset = rng.normal(0, 1, 3) * 0.12 * float(np.mean(finding.radii_mm))
            finding.core = {
                "offset_mm": offset,
                "radii_mm": core_r,
                "hu": float(rng.uniform(0, 60)),
            }
        finding.juxtapleural = kind == "solid" and diameter >= 4.0 and rng.random() < 0.3
        out.append(finding)
    for _ in range(int(rng.integers(0, 3))):
        out.append(
            _blob(
                rng, "small_nodule", float(rng.uniform(1.6, 2.9)), float(rng.uniform(0, 60)), 0.05
            )
        )
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.5:
            f = _blob(rng, "scar", 3.0, hu["soft"] - float(rng.uniform(0, 30)), 0.05)
            f.radii_mm = np.array([float(rng.uniform(5, 9)), 1.2, 1.0])
        else:
            f = _blob(
                rng,
                "calcified_granuloma",
                float(rng.uniform(2.5, 4.5)),
                float(rng.uniform(350, 800)),
                0.0,
            )
        f.diameter_mm = -1.0
        out.append(f)
    return out


def _nodule_kind(rng: np.random.Generator, diameter_mm: float) -> str:
    """Solid, ground-glass or part-solid: under 5 mm solid only (a fainter ground-glass
    nodule that small is rarely annotated), part-solid from 9 mm (a solid core needs room)."""
    if diameter_mm < 5.0:
        return "solid"
    if diameter_mm < 9.0:
        return str(rng.choice(NODULE_KINDS[:2], p=(0.75, 0.25)))
    return str(rng.choice(NODULE_KINDS, p=(0.6, 0.2, 0.2)))


def _blob(
    rng: np.random.Generator, kind: str, diameter: float, density: float, irregular: float
) -> Finding:
    axes = rng.uniform(0.82, 1.18, 3)
    axes /= np.prod(axes) ** (1.0 / 3.0)  # keep the equivalent diameter
    n_lobes = int(rng.integers(2, 6)) if irregular > 0 else 0
    dirs = rng.normal(0, 1, (n_lobes, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True) + 1e-9
    amps = rng.uniform(-irregular, irregular, (n_lobes, 1))
    return Finding(
        kind=kind,
        center_xyz_mm=np.zeros(3),
        radii_mm=axes * diameter / 2.0,
        rotation=random_rotation(rng),
        lobes=np.hstack([dirs, amps]) if n_lobes else np.zeros((0, 4)),
        hu=density,
        diameter_mm=round(diameter, 4),
    )


def lung_boundary(labels: np.ndarray) -> np.ndarray:
    """Flat indices of lung voxels with a non-lung neighbour along x or y (the pleura)."""
    lung = (labels == RIGHT_LUNG) | (labels == LEFT_LUNG)
    edge = np.zeros_like(lung)
    edge[:, :, 1:] |= lung[:, :, 1:] & ~lung[:, :, :-1]
    edge[:, :, :-1] |= lung[:, :, :-1] & ~lung[:, :, 1:]
    edge[:, 1:, :] |= lung[:, 1:, :] & ~lung[:, :-1, :]
    edge[:, :-1, :] |= lung[:, :-1, :] & ~lung[:, 1:, :]
    return np.flatnonzero(edge)


def place_findings(
    rng: np.random.Generator,
    grid: Grid,
    findings: list[Finding],
    labels: np.ndarray,
    vessel_occ: np.ndarray,
    boundary: np.ndarray,
) -> list[Finding]:
    """Put each finding in the lungs (juxtapleural ones against the pleura); drop misfits."""
    lung_idx = np.flatnonzero((labels == RIGHT_LUNG) | (labels == LEFT_LUNG))
    placed: list[Finding] = []
    for f in findings:
        for _ in range(300):
            if f.juxtapleural:
                center = _juxtapleural_center(rng, grid, labels, boundary, f)
            else:
                zyx = np.unravel_index(int(rng.choice(lung_idx)), labels.shape)
                center = grid.to_world(np.array(zyx) + rng.uniform(-0.5, 0.5, 3))
            if center is not None and _fits(grid, f, center, labels, vessel_occ, placed):
                f.center_xyz_mm = center
                placed.append(f)
                break
    label = 0
    for f in placed:
        if f.kind in NODULE_KINDS:
            label += 1
            f.label = label
    return placed


def _juxtapleural_center(rng, grid: Grid, labels: np.ndarray, boundary: np.ndarray, f: Finding):
    if not boundary.size:
        return None
    zyx = np.array(np.unravel_index(int(rng.choice(boundary)), labels.shape))
    p = grid.to_world(zyx)
    r = float(np.mean(f.radii_mm))
    box = grid.box(p - 2 * r - 1, p + 2 * r + 1)
    x, y, z = grid.box_coords(box)
    lung = np.isin(labels[box], (RIGHT_LUNG, LEFT_LUNG))
    near = ((x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2 < (2 * r) ** 2) & lung
    if near.sum() < 4:
        return None
    xs, ys, zs = np.broadcast_arrays(x, y, z)
    centroid = np.array([xs[near].mean(), ys[near].mean(), zs[near].mean()])
    return p + unit(centroid - p) * r * float(rng.uniform(0.55, 0.85))


def _fits(grid, f: Finding, center, labels, vessel_occ, placed: list[Finding]) -> bool:
    reach = f.reach_mm
    for other in placed:
        if np.linalg.norm(other.center_xyz_mm - center) < reach + other.reach_mm + 4.0:
            return False
    at = grid.nearest(center)
    if at is None or labels[at] not in (RIGHT_LUNG, LEFT_LUNG):
        return False
    box = grid.box(center - reach - 1, center + reach + 1)
    if box is None:
        return False
    x, y, z = grid.box_coords(box)
    d2 = (x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2
    ball = d2 < (reach + 1.0) ** 2
    lab = labels[box][ball]
    if np.any(lab == AIRWAY):
        return False
    lung_frac = float(np.isin(lab, (RIGHT_LUNG, LEFT_LUNG)).mean())
    if f.juxtapleural:
        if not 0.45 < lung_frac < 0.97:
            return False
    elif lung_frac < 1.0:
        return False
    core = d2 < max(0.5 * float(np.min(f.radii_mm)), 1.0) ** 2
    return float(vessel_occ[box][core].max(initial=0.0)) < 0.2


def draw_findings(
    grid: Grid, vol: np.ndarray, findings: list[Finding], nodule_labels: np.ndarray
) -> None:
    """Composite the findings into ``vol`` (float HU) and label nodules in ``nodule_labels``."""
    for f in findings:
        reach = f.reach_mm + grid.spacing_xyz_mm[0]
        box = grid.box(f.center_xyz_mm - reach, f.center_xyz_mm + reach)
        if box is None:
            continue
        occ = blob_occupancy(grid, box, f.center_xyz_mm, f.radii_mm, f.rotation, f.lobes)
        sub = vol[box]
        occ[sub > 150.0] = 0.0  # never paint over bone
        sub += occ * (f.hu - sub)
        if f.core:
            core = blob_occupancy(
                grid,
                box,
                f.center_xyz_mm + f.core["offset_mm"],
                f.core["radii_mm"],
                f.rotation,
                f.lobes,
            )
            sub += core * (f.core["hu"] - sub)
        if f.label:
            nodule_labels[box][occ >= 0.5] = f.label
