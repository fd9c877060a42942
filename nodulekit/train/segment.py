"""Segmentation data, loss and inference for the U-Net (`nodulekit.models.unet.NoduleUNet`).

Masks come from a folder ``ROOT/seg-nodules-*/<seriesuid>.mhd`` on the scan's grid, label k for
the k-th ``annotations.csv`` row of the scan (the synthetic generator writes
``seg-nodules-synthetic/``; LIDC consensus masks written by `nodulekit.data.lidc` use the same
form). A data set without such masks gets spheres of the annotated diameter, restricted to
soft-tissue HU (`sphere_masks`): the weaker fallback, named as such.

Patches over-represent nodules: every slice a nodule crosses gives a patch centred on it (with
a random shift), and as many again are drawn at random inside the lungs, where the vessels are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nodulekit.data import Luna16, Scan, read_scan
from nodulekit.errors import GeometryError
from nodulekit.preprocess.window import normalize_hu

__all__ = [
    "Segmentation",
    "SegmentationPatches",
    "build_segmentation_patches",
    "dice_bce_loss",
    "nodule_labels",
    "predict_volume",
    "segmentation_datasets",
    "soft_dice",
    "sphere_masks",
]

#: HU range a nodule's voxels may take in a sphere fallback mask (soft tissue and solid parts).
SOFT_TISSUE_HU = (-600, 400)


def _mask_path(root: Path, seriesuid: str) -> Path | None:
    for folder in sorted(root.glob("seg-nodules-*")):
        path = folder / f"{seriesuid}.mhd"
        if path.is_file():
            return path
    return None


def sphere_masks(scan: Scan, annotations) -> np.ndarray:
    """Label map from spheres of the annotated diameters, kept to soft-tissue HU (a fallback).

    Label k (1-based) is the k-th row of ``annotations`` (LUNA16 columns).
    """
    labels = np.zeros(scan.shape, dtype=np.uint8)
    zz, yy, xx = np.indices(scan.shape, sparse=True)
    spacing_zyx_mm = np.asarray(scan.spacing[::-1])
    soft = (scan.array >= SOFT_TISSUE_HU[0]) & (scan.array <= SOFT_TISSUE_HU[1])
    for k, row in enumerate(annotations.itertuples(), start=1):
        centre = scan.world_to_voxel([row.coordX, row.coordY, row.coordZ])
        radius = row.diameter_mm / 2
        lo = np.maximum(np.floor(centre - radius / spacing_zyx_mm) - 1, 0).astype(int)
        hi = np.minimum(np.ceil(centre + radius / spacing_zyx_mm) + 2, scan.shape).astype(int)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        d2 = (
            ((zz[box[0]] - centre[0]) * spacing_zyx_mm[0]) ** 2
            + ((yy[:, box[1]] - centre[1]) * spacing_zyx_mm[1]) ** 2
            + ((xx[:, :, box[2]] - centre[2]) * spacing_zyx_mm[2]) ** 2
        )
        inside = (d2 <= radius**2) & soft[box]
        labels[box][inside] = k
    return labels


def nodule_labels(luna: Luna16, seriesuid: str, scan: Scan | None = None) -> tuple[np.ndarray, str]:
    """The nodule label map of a scan and where it came from (``"mask"`` or ``"spheres"``).

    Raises
    ------
    GeometryError
        If a mask file's grid differs from its scan's (never resampled silently).
    """
    scan = scan if scan is not None else luna.load(seriesuid)
    path = _mask_path(Path(luna.root), seriesuid)
    if path is None:
        return sphere_masks(scan, luna.annotations_for(seriesuid)), "spheres"
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    mask_scan = Scan(
        np.zeros((1, 1, 1), np.int16),
        origin=image.GetOrigin(),
        spacing=image.GetSpacing(),
        direction=image.GetDirection(),
    )
    size_zyx = tuple(image.GetSize()[::-1])
    same = (
        size_zyx == scan.shape
        and np.allclose(mask_scan.origin, scan.origin, atol=1e-3)
        and np.allclose(mask_scan.spacing, scan.spacing, atol=1e-4)
        and np.allclose(mask_scan.direction, scan.direction, atol=1e-4)
    )
    if not same:
        raise GeometryError(
            f"{path}: mask grid {size_zyx} voxels, spacing {mask_scan.spacing}, origin "
            f"{mask_scan.origin} differs from its scan's {scan.shape}, {scan.spacing}, "
            f"{scan.origin}; masks are never resampled silently: write the mask on the scan's grid"
        )
    return sitk.GetArrayFromImage(image).astype(np.uint8), "mask"


def _stack(volume: np.ndarray, z: int, slices: int) -> np.ndarray:
    """``slices`` axial slices centred on ``z`` (edges repeated), ``(slices, H, W)``."""
    half = slices // 2
    idx = np.clip(np.arange(z - half, z - half + slices), 0, volume.shape[0] - 1)
    return volume[idx]


def _window(image: np.ndarray, cy: int, cx: int, size: int) -> tuple[slice, slice, tuple]:
    h, w = image.shape[-2:]
    y0, x0 = cy - size // 2, cx - size // 2
    pad = ((max(0, -y0), max(0, y0 + size - h)), (max(0, -x0), max(0, x0 + size - w)))
    ys = slice(max(0, y0), min(h, y0 + size))
    xs = slice(max(0, x0), min(w, x0 + size))
    return ys, xs, pad


def _patch(volume: np.ndarray, z: int, cy: int, cx: int, slices: int, size: int, fill: float):
    ys, xs, pad = _window(volume, cy, cx, size)
    stack = _stack(volume, z, slices)[:, ys, xs]
    return np.pad(stack, ((0, 0), *pad), constant_values=fill)


@dataclass
class SegmentationPatches(Dataset):
    """Training patches in memory: ``images`` (P, S, H, W) float32 in [0, 1], ``targets``
    (P, 1, H, W) float32 0/1 (the centre slice), ``seriesuids`` (P,); for a 3D U-Net
    ``images`` and ``targets`` are (P, 1, S, H, W) (every slice is a target)."""

    images: np.ndarray
    targets: np.ndarray
    seriesuids: np.ndarray
    flip: bool = False
    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Flips depend on (seed, epoch, index) only: the same epoch flips alike on resume."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> np.ndarray:
        """1 where the patch's centre slice holds nodule voxels (what the sampler balances)."""
        return (self.targets.reshape(len(self), -1).max(axis=1) > 0).astype(np.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, target = self.images[index], self.targets[index]
        if self.flip:  # in-plane flips and 90-degree turns: anatomy-agnostic, label-exact
            rng = np.random.default_rng((self.seed, self.epoch, int(index)))
            k = int(rng.integers(4))
            image, target = np.rot90(image, k, axes=(-2, -1)), np.rot90(target, k, axes=(-2, -1))
            if rng.random() < 0.5:
                image, target = image[..., ::-1], target[..., ::-1]
        return (
            torch.from_numpy(np.ascontiguousarray(image)),
            torch.from_numpy(np.ascontiguousarray(target)),
            index,
        )

    @property
    def positive_fraction(self) -> float:
        """Share of patches whose centre slice holds nodule voxels."""
        return float(self.labels.mean())


def build_segmentation_patches(
    root: str | Path,
    seriesuids: Sequence[str],
    *,
    slices: int = 5,
    size_px: int = 64,
    negatives_per_positive: float = 1.0,
    jitter_px: int = 8,
    seed: int = 0,
    flip: bool = False,
    dims: int = 2,
) -> SegmentationPatches:
    """Cut 2.5D patches around every nodule slice of ``seriesuids`` and at random in the lungs.

    Parameters
    ----------
    root : path
        A LUNA16-layout root (with ``seg-nodules-*`` masks, else spheres are used).
    slices : int
        Neighbouring slices per patch (odd); the target is the centre one.
    size_px : int
        In-plane patch size in pixels (divisible by the U-Net's ``2 ** (levels - 1)``).
    negatives_per_positive : float
        Random lung patches per nodule patch (they may touch a nodule; most do not).
    dims : {2, 3}
        2: ``slices`` as channels, the centre slice as target (2.5D); 3: a block of
        ``slices`` slices (a multiple of the 3D U-Net's size factor) with all its slices as
        target.
    """
    luna = Luna16(root, warn_missing=False)
    rng = np.random.default_rng(seed)
    images, targets, uids = [], [], []
    for uid in seriesuids:
        scan = luna.load(uid)
        labels, _source = nodule_labels(luna, uid, scan)
        volume = normalize_hu(scan.array).astype(np.float32)
        fill = float(normalize_hu(np.array([-1000], np.int16))[0])
        binary = (labels > 0).astype(np.float32)
        centres = []
        for k in range(1, int(labels.max()) + 1):
            voxels = np.argwhere(labels == k)
            for z in np.unique(voxels[:, 0]):
                cy, cx = voxels[voxels[:, 0] == z, 1:].mean(axis=0).round().astype(int)
                centres.append((int(z), int(cy), int(cx)))
        n_neg = math.ceil(len(centres) * negatives_per_positive) if centres else 8
        lungs = _lung_points(luna, uid, scan)
        picks = lungs[rng.integers(len(lungs), size=n_neg)] if len(lungs) else []
        points = [(z, cy + dy, cx + dx) for (z, cy, cx), (dy, dx) in zip(
            centres, rng.integers(-jitter_px, jitter_px + 1, size=(len(centres), 2)), strict=True
        )] + [tuple(int(v) for v in p) for p in picks]  # fmt: skip
        for z, cy, cx in points:
            image = _patch(volume, int(z), int(cy), int(cx), slices, size_px, fill)
            if dims == 3:
                images.append(image[None])
                targets.append(_patch(binary, int(z), int(cy), int(cx), slices, size_px, 0.0)[None])
            else:
                images.append(image)
                targets.append(_patch(binary[None][:, z], 0, int(cy), int(cx), 1, size_px, 0.0))
            uids.append(uid)
    if not images:
        raise ValueError(f"{root}: no patches from {len(seriesuids)} series")
    return SegmentationPatches(
        np.stack(images).astype(np.float32),
        np.stack(targets).astype(np.float32),
        np.asarray(uids),
        flip=flip,
        seed=seed,
    )


def _lung_points(luna: Luna16, uid: str, scan: Scan) -> np.ndarray:
    path = luna.lung_mask_path(uid)
    if path is not None:
        mask = np.asarray(read_scan(path).array) > 0
    else:
        from nodulekit.preprocess import lung_mask

        mask = np.asarray(lung_mask(scan)) > 0
    points = np.argwhere(mask)
    return points[:: max(1, len(points) // 20000)]


def soft_dice(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean over the batch of the soft Dice of ``sigmoid(logits)`` against 0/1 ``target``.

    ``eps`` smooths empty patches (an empty prediction on an empty patch scores 1).
    """
    prob = torch.sigmoid(logits.float()).flatten(1)
    target = target.float().flatten(1)
    inter = (prob * target).sum(1)
    return ((2 * inter + eps) / (prob.sum(1) + target.sum(1) + eps)).mean()


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice loss plus binary cross-entropy: the usual pair for small, rare structures."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target.float())
    return bce + (1 - soft_dice(logits, target))


@torch.no_grad()
def predict_volume(
    model: torch.nn.Module,
    scan: Scan,
    *,
    z_range: tuple[int, int] | None = None,
    box_yx: tuple[slice, slice] | None = None,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Nodule probability per voxel of ``scan`` (float32, zeros outside ``z_range``/``box_yx``).

    A 2.5D U-Net predicts each slice from its neighbours; a 3D one takes the box whole. The box
    is padded to the network's size multiple with air.
    """
    model.eval()
    fill = float(normalize_hu(np.array([-1000], np.int16))[0])
    z0, z1 = z_range if z_range is not None else (0, scan.shape[0])
    ys, xs = box_yx if box_yx is not None else (slice(0, scan.shape[1]), slice(0, scan.shape[2]))
    factor = 2 ** (model.levels - 1)
    out = np.zeros(scan.shape, dtype=np.float32)  # calloc: untouched pages cost nothing
    # only the voxels the network sees are normalised (the box, and the 2.5D net's neighbours)
    lo = max(0, z0 - model.in_channels // 2) if model.dims == 2 else z0
    hi = min(scan.shape[0], z1 + model.in_channels) if model.dims == 2 else z1
    region = normalize_hu(scan.array[lo:hi, ys, xs]).astype(np.float32)
    h, w = region.shape[1:]
    ph, pw = (-h) % factor, (-w) % factor
    if model.dims == 3:
        pd_ = (-(z1 - z0)) % factor
        block = np.pad(region, ((0, pd_), (0, ph), (0, pw)), constant_values=fill)
        x = torch.from_numpy(block)[None, None].to(device)
        prob = torch.sigmoid(model(x).float())[0, 0].cpu().numpy()
        out[z0:z1, ys, xs] = prob[: z1 - z0, :h, :w]
        return out
    region = np.pad(region, ((0, 0), (0, ph), (0, pw)), constant_values=fill)
    for start in range(z0, z1, batch_size):
        zs = range(start, min(z1, start + batch_size))
        batch = np.stack([_stack(region, z - lo, model.in_channels) for z in zs])
        prob = torch.sigmoid(model(torch.from_numpy(batch).to(device)).float())
        out[start : start + len(zs), ys, xs] = prob[:, 0, :h, :w].cpu().numpy()
    return out


#: in-plane size of a training patch (pixels) and depth of a 3D U-Net's patch (slices)
PATCH_PX = 64
PATCH_DEPTH_3D = 16


def segmentation_datasets(config, scans) -> dict[str, SegmentationPatches]:
    """Train (flipped when ``config.augment``), val and test patches, split by subset.

    ``scans`` is the data root's scan table (``seriesuid``, ``subset``); ``config.val_subsets``
    and ``config.test_subsets`` must be chosen already (`nodulekit.train.data.choose_splits`).
    The patch geometry follows the model: ``in_channels`` slices for the 2.5D U-Net,
    `PATCH_DEPTH_3D` slices for the 3D one.
    """
    from nodulekit.errors import NodulekitError

    dims = 3 if config.model == "unet3d" else 2
    slices = PATCH_DEPTH_3D if dims == 3 else int(config.model_options.get("in_channels", 5))
    subset = scans["subset"].astype(int).to_numpy()
    held = set(config.val_subsets) | set(config.test_subsets)
    members = {
        "train": ~np.isin(subset, list(held)),
        "val": np.isin(subset, list(config.val_subsets)),
        "test": np.isin(subset, list(config.test_subsets)),
    }
    out = {}
    for name, rows in members.items():
        uids = list(scans["seriesuid"].to_numpy()[rows])
        if not uids:
            if name == "test":
                continue
            raise NodulekitError(
                f"the {name} split of {config.data} has no scans: subsets on disk "
                f"{sorted(set(subset.tolist()))}, validation {list(config.val_subsets)}, test "
                f"{list(config.test_subsets)}; choose --val-subsets/--test-subsets among them"
            )
        out[name] = build_segmentation_patches(
            config.data, uids, slices=slices, size_px=PATCH_PX, dims=dims,
            seed=config.seed + {"train": 0, "val": 1, "test": 2}[name],
            flip=name == "train" and config.augment,
        )  # fmt: skip
    return out


class Segmentation:
    """The loop's task for the U-Net: Dice + BCE loss; validation Dice on the patches.

    ``val_dice`` is the mean hard Dice (probability >= 0.5) over the patches whose centre slice
    holds a nodule; ``val_dice_global`` pools every voxel of every patch (false positives on
    nodule-free patches count there). The per-nodule Dice of whole nodules is
    `nodulekit.evaluate.segmentation`'s job.
    """

    monitor = "val_dice"

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_bce_loss(output, target)

    @torch.no_grad()
    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: Dataset,
        *,
        device: torch.device,
        batch_size: int,
        amp: torch.dtype | None = None,
        info=None,
        thresholds: dict[str, float] | None = None,
    ) -> dict[str, float]:
        from torch.utils.data import DataLoader, Subset

        from nodulekit.train import distributed as ddp

        info = info or ddp.DistInfo()
        threshold = float((thresholds or {}).get("threshold", 0.5))
        net = getattr(model, "module", model)
        net.eval()
        rows = np.arange(info.rank, len(dataset), info.world_size)
        loader = DataLoader(Subset(dataset, rows.tolist()), batch_size=batch_size)
        loss_sum, n, inter, total, dices = 0.0, 0, 0.0, 0.0, []
        for x, y, _ in loader:
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = net(x)
            loss_sum += float(dice_bce_loss(logits, y)) * len(y)
            n += len(y)
            hard = (torch.sigmoid(logits.float()) >= threshold).float().flatten(1)
            truth = y.float().flatten(1)
            i, t = (hard * truth).sum(1), hard.sum(1) + truth.sum(1)
            inter, total = inter + float(i.sum()), total + float(t.sum())
            has = truth.sum(1) > 0
            dices += (2 * i[has] / t[has]).cpu().tolist()
        parts = ddp.all_gather_objects(info, (loss_sum, n, inter, total, dices))
        loss_sum = sum(p[0] for p in parts)
        n = sum(p[1] for p in parts)
        inter, total = sum(p[2] for p in parts), sum(p[3] for p in parts)
        dices = [d for p in parts for d in p[4]]
        nan = float("nan")
        return {
            "loss": loss_sum / n if n else nan,
            "dice": float(np.mean(dices)) if dices else nan,
            "dice_global": 2 * inter / total if total else nan,
            "threshold": threshold,
        }

    def operating_point(self, best_row: dict | None) -> dict[str, float]:
        """Segmentation is scored at probability 0.5 (no threshold is tuned)."""
        return {"threshold": 0.5}
