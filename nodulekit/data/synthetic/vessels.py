"""Pulmonary vessel trees: tapered tubes that branch from each hilum into the lung.

Their cross-sections on one slice are round, bright and nodule-sized: the hard negatives a
nodule classifier has to learn to reject from the 3D context (a tube continues, a nodule ends).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nodulekit.data.synthetic.anatomy import LEFT_LUNG, RIGHT_LUNG, Anatomy
from nodulekit.data.synthetic.diameters import sample_diameters
from nodulekit.data.synthetic.geometry import Grid, capsule_occupancy, unit

MAX_SEGMENTS = 6000


@dataclass
class VesselTree:
    """All segments of a scan's vessels: ``p0``, ``p1`` (N, 3) mm, radii, and branching."""

    p0: np.ndarray
    p1: np.ndarray
    r0: np.ndarray
    r1: np.ndarray
    forks: np.ndarray  # bool (N,): the segment ends in a bifurcation

    def __len__(self) -> int:
        return len(self.r0)


def grow_vessels(
    rng: np.random.Generator,
    anatomy: Anatomy,
    *,
    min_radius_mm: float = 0.5,
    trees_per_lung: int | None = None,
) -> VesselTree:
    """Grow trees from each hilum into the lung, a generation at a time, branching by
    Murray's law (r0^3 = r1^3 + r2^3) until the vessels are thinner than ``min_radius_mm``."""
    s = anatomy.scale
    if trees_per_lung is None:  # bigger lungs need more trees to fill them
        trees_per_lung = round(8 * max(1.0, anatomy.a / 85.0))
    segs: list[tuple[np.ndarray, np.ndarray, float, float, bool]] = []
    for side, label in ((-1.0, RIGHT_LUNG), (1.0, LEFT_LUNG)):
        hilum = anatomy.world(side * anatomy.mediastinum, 0.05, anatomy.carina_t - 0.12)
        # growing tips: (start, direction, radius, root?)
        tips = []
        for k, target in enumerate(_lung_points(rng, anatomy, label, trees_per_lung)):
            start = anatomy.world(
                side * (anatomy.mediastinum - 0.02),
                float(rng.uniform(-0.15, 0.2)),
                anatomy.carina_t - 0.1 + float(rng.uniform(-0.1, 0.06)),
            )
            radius = float(rng.uniform(3.0, 4.2)) * max(s, 0.75) * (1.0 if k < 4 else 0.75)
            tips.append((start, unit(target - start), radius, True))
        while tips and len(segs) < MAX_SEGMENTS:
            p0 = np.array([t[0] for t in tips])
            dirs = np.array([t[1] for t in tips])
            radii = np.array([t[2] for t in tips])
            roots = np.array([t[3] for t in tips])
            lengths = radii * rng.uniform(6.0, 10.0, len(tips)) + 3.0
            lengths[roots] = np.maximum(lengths[roots], 0.12 * anatomy.a)
            outward = np.array([unit(p - hilum) for p in p0])
            p1, dirs, ok = _stay_inside(rng, anatomy, label, p0, dirs, lengths, outward, roots)
            new_tips = []
            for i in np.nonzero(ok)[0]:
                r, r_end = float(radii[i]), float(radii[i]) * 0.93
                r1 = r_end * float(rng.uniform(0.76, 0.9))
                r2 = max(r_end**3 - r1**3, 0.0) ** (1.0 / 3.0)
                fork = r1 >= min_radius_mm
                segs.append((p0[i], p1[i], r, r_end, fork))
                if not fork:
                    continue
                e1, e2 = _perpendiculars(dirs[i])
                beta = float(rng.uniform(0, 2 * np.pi))
                axis = np.cos(beta) * e1 + np.sin(beta) * e2
                for child_r, angle in ((r1, rng.uniform(0.15, 0.45)), (r2, -rng.uniform(0.5, 1.0))):
                    if child_r >= min_radius_mm:
                        nd = np.cos(angle) * dirs[i] + np.sin(angle) * axis + rng.normal(0, 0.08, 3)
                        new_tips.append((p1[i], unit(nd), child_r, False))
            tips = new_tips
    if not segs:
        empty = np.zeros((0, 3))
        return VesselTree(empty, empty, np.zeros(0), np.zeros(0), np.zeros(0, bool))
    p0s, p1s, r0s, r1s, forks = zip(*segs, strict=True)
    return VesselTree(np.array(p0s), np.array(p1s), np.array(r0s), np.array(r1s), np.array(forks))


def _lung_points(rng: np.random.Generator, anatomy: Anatomy, label: int, n: int) -> list:
    """``n`` random points inside one lung (rejection sampling in body coordinates)."""
    side = -1.0 if label == RIGHT_LUNG else 1.0
    u = side * rng.uniform(0.15, 0.8, 400)
    v = rng.uniform(-0.8, 0.8, 400)
    t = rng.uniform(0.05, 0.95, 400)
    pts = np.stack([anatomy.world(*p) for p in zip(u, v, t, strict=True)])
    inside = anatomy.lung_labels(pts[:, 0], pts[:, 1], pts[:, 2]) == label
    good = pts[inside]
    if len(good) < n:
        return [anatomy.world(side * 0.45, 0.0, 0.5)] * n
    return list(good[:n])


def _stay_inside(rng, anatomy: Anatomy, label: int, p0, dirs, lengths, outward, roots):
    """End points and directions of segments that stay in the lung, bending outwards
    (away from the hilum) when they have to; ``ok`` is False where none fits."""
    n = len(p0)
    p1 = p0.copy()
    final = dirs.copy()
    ok = np.zeros(n, bool)
    noise = rng.normal(0, 0.3, (n, 3))
    tries = [dirs, dirs + 0.7 * outward, dirs + 1.5 * outward + noise, -dirs + 2.0 * outward]
    for frac in (1.0, 0.55):
        for tried in tries:
            todo = ~ok
            if not todo.any():
                break
            nd = tried / np.linalg.norm(tried, axis=1, keepdims=True)
            end = p0 + nd * (lengths * frac)[:, None]
            mid = p0 + nd * (lengths * frac * 0.5)[:, None]
            pts = np.concatenate([end, mid])
            lab = anatomy.lung_labels(pts[:, 0], pts[:, 1], pts[:, 2])
            good = todo & (lab[:n] == label) & (roots | (lab[n:] == label))
            p1[good], final[good], ok[good] = end[good], nd[good], True
    return p1, final, ok


def _perpendiculars(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = unit(np.cross(d, helper))
    return e1, np.cross(d, e1)


def render_vessels(grid: Grid, tree: VesselTree) -> np.ndarray:
    """Soft occupancy volume (float32, 0..1) of all vessel segments (max over segments)."""
    occ = np.zeros(grid.shape_zyx, np.float32)
    for i in range(len(tree)):
        p0, p1, r0, r1 = tree.p0[i], tree.p1[i], float(tree.r0[i]), float(tree.r1[i])
        pad = max(r0, r1) + grid.spacing_xyz_mm[0]
        box = grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
        if box is None:
            continue
        np.maximum(occ[box], capsule_occupancy(grid, box, p0, p1, r0, r1), out=occ[box])
    return occ


def vessel_crossings(tree: VesselTree, *, min_radius_mm: float = 1.4) -> np.ndarray:
    """Points (K, 3) mm where two vessels that do not branch from each other touch or cross.

    On CT such a crossing is a bright, roughly round knot of nodule size: with forks, the
    vessel false positives a CAD system meets most often. Vessels at least ``min_radius_mm``
    thick are sampled every millimetre along their centre lines; where two samples of
    unrelated segments are closer than the sum of their radii (+ 0.5 mm), the midpoint of
    the closest such pair of each segment pair is a crossing.
    """
    from scipy.spatial import cKDTree

    wide = np.nonzero(tree.r1 >= min_radius_mm)[0]
    if wide.size < 2:
        return np.zeros((0, 3))
    lengths = np.linalg.norm(tree.p1[wide] - tree.p0[wide], axis=1)
    counts = np.maximum(lengths.astype(int) + 1, 2)
    seg = np.repeat(wide, counts)
    frac = np.concatenate([np.linspace(0.05, 0.95, k) for k in counts])
    pts = tree.p0[seg] + frac[:, None] * (tree.p1[seg] - tree.p0[seg])
    rad = tree.r0[seg] + (tree.r1[seg] - tree.r0[seg]) * frac
    pairs = cKDTree(pts).query_pairs(2.0 * float(rad.max()) + 0.5, output_type="ndarray")
    if not len(pairs):
        return np.zeros((0, 3))
    a, b = pairs[:, 0], pairs[:, 1]
    dist = np.linalg.norm(pts[a] - pts[b], axis=1)
    sa, sb = seg[a], seg[b]
    ends = [tree.p0, tree.p1]
    gap = np.min(
        [np.linalg.norm(ea[sa] - eb[sb], axis=1) for ea in ends for eb in ends], axis=0
    )  # 0 for a parent and its child or two siblings
    touch = (sa != sb) & (gap > 1e-6) & (dist < rad[a] + rad[b] + 0.5)
    if not touch.any():
        return np.zeros((0, 3))
    a, b, dist = a[touch], b[touch], dist[touch]
    key = np.minimum(seg[a], seg[b]) * len(tree) + np.maximum(seg[a], seg[b])
    order = np.lexsort((dist, key))
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    return (pts[a[first]] + pts[b[first]]) / 2.0


def vessel_points(
    rng: np.random.Generator,
    tree: VesselTree,
    n: int,
    *,
    min_radius_mm: float = 1.4,
    shares: tuple[float, float] = (0.3, 0.2),
) -> list[tuple[np.ndarray, str]]:
    """``n`` vessel points of nodule size: forks, crossings and plain cross-sections.

    ``shares`` are the fractions of forks and of crossings (the rest are cross-sections).
    The vessel calibre at each point is matched to a diameter drawn from LUNA16's nodule
    sizes (best of a dozen random tries), so negatives are as big as the positives.
    """
    wide = np.nonzero(tree.r1 >= min_radius_mm)[0]
    if not wide.size or n <= 0:
        return []
    forks = list(wide[tree.forks[wide]])
    crossings = list(vessel_crossings(tree, min_radius_mm=min_radius_mm))
    wanted_r = sample_diameters(rng, n) / 2.0
    out = []
    for target in wanted_r:  # each fork and crossing is used once
        u = rng.random()
        if forks and u < shares[0]:
            pool = rng.choice(len(forks), size=min(12, len(forks)), replace=False)
            k = int(pool[np.argmin(np.abs(tree.r1[np.take(forks, pool)] - target))])
            out.append((tree.p1[forks.pop(k)].copy(), "vessel_fork"))
        elif crossings and u < shares[0] + shares[1]:
            out.append((crossings.pop(int(rng.integers(len(crossings)))), "vessel_crossing"))
        else:
            pool = rng.choice(wide, size=min(12, wide.size))
            t = rng.uniform(0.1, 0.9, len(pool))
            r_at = tree.r0[pool] + (tree.r1[pool] - tree.r0[pool]) * t
            k = int(np.argmin(np.abs(r_at - target)))
            i = int(pool[k])
            out.append((tree.p0[i] + t[k] * (tree.p1[i] - tree.p0[i]), "vessel"))
    return out
