"""Tiny shared setup for the course notebooks: where the data is, and the exercise checks.

All real work is done by the ``nodulekit`` package. The checks compare a student's answer with
the package's own result and say "right" or give a hint, never the answer itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SYNTHETIC = Path("nodulekit-data") / "synthetic"


def data_root(data_dir: str = "", *, n_scans: int = 60, seed: int = 0) -> Path:
    """``data_dir`` if given; else the synthetic set in this folder or a parent; else make it
    (``n_scans``: by default the demo's 60, six per subset, so that a validation or test
    subset holds enough nodules for its figures to be read)."""
    if data_dir:
        return Path(data_dir).expanduser().resolve()
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / SYNTHETIC / "annotations.csv").is_file():
            return Path(os.path.relpath(folder / SYNTHETIC))  # relative: short to print
    from nodulekit.data.synthetic import make_synthetic_luna16

    print(f"making the synthetic set ({n_scans} scans) in {SYNTHETIC.resolve()} ...")
    make_synthetic_luna16(SYNTHETIC, n_scans=n_scans, seed=seed, workers=2)
    return SYNTHETIC


def _say(ok: bool, hint: str) -> None:
    print("✔ Right." if ok else f"✘ Not yet. Hint: {hint}")


def _unanswered(answer: object) -> bool:
    if answer is None or answer is ...:
        print("… Not answered yet: replace the `...` above with your answer and run both cells.")
        return True
    return False


def _number(answer: object) -> float | None:
    """``answer`` as a float, or None (with a hint printed) when it is not one number."""
    if isinstance(answer, bool) or not isinstance(answer, (int, float, np.integer, np.floating)):
        if isinstance(answer, np.ndarray) and answer.size == 1:
            return _number(answer.item())
        _say(False, f"give one number, not {type(answer).__name__}.")
        return None
    value = float(answer)
    if not np.isfinite(value):
        _say(False, "give a finite number.")
        return None
    return value


def _whole_number(answer: object) -> int | None:
    """``answer`` as an int when it is a whole number (3 or 3.0, never 2.7 cut to 2)."""
    value = _number(answer)
    if value is None:
        return None
    if not value.is_integer():
        _say(False, "the answer is a count: give a whole number (no decimals to cut off).")
        return None
    return int(value)


def _close(answer: float, expected: float, rel: float) -> bool:
    """Within ``rel`` of ``expected``, relative (a fixed tolerance would accept 0 for a
    small true value)."""
    return abs(answer - expected) <= rel * abs(expected) + 1e-12


# -- 00: setup and data --------------------------------------------------------------------
def check_large_nodules(luna, answer) -> None:
    """How many nodules in annotations.csv are 10 mm across or more?"""
    if _unanswered(answer) or (count := _whole_number(answer)) is None:
        return
    expected = int((luna.annotations.diameter_mm >= 10).sum())
    _say(count == expected, "filter `luna.annotations` on its `diameter_mm` column "
         "(10 mm included) and count the rows.")  # fmt: skip


def check_positive_fraction(luna, answer) -> None:
    """Which fraction (0..1) of the candidates are nodules (class 1)? Within 2 %, relative."""
    if _unanswered(answer) or (value := _number(answer)) is None:
        return
    expected = float((luna.candidates["class"] == 1).mean())
    if value > 1:
        _say(False, "a fraction lies between 0 and 1: not a percentage, not a count.")
        return
    _say(_close(value, expected, 0.02), "positives / all candidates (class 1 and class 0), "
         "not positives / negatives.")  # fmt: skip


# -- 01: exploring scans -------------------------------------------------------------------
EXERCISE_ORIENTATIONS = ("RAS", "RPI", "LAI")  # two axes flipped each (ITK orientation codes)


def voxel_index_exercise(scan, center_xyz_mm):
    """``scan`` stored with two array axes flipped, as a NIfTI file in RAS order (or a DICOM
    series stacked head to feet) would be; same patient, same world geometry.

    Of the three ways to flip two axes it takes the first where ``center_xyz_mm`` sits more
    than half a voxel past a voxel centre on some axis, so the exercise needs both the
    direction and rounding to the nearest voxel (cutting off the decimals gives a wrong
    index).
    """
    import SimpleITK as sitk

    from nodulekit.data import Scan

    best, best_frac = scan, -1.0
    for code in EXERCISE_ORIENTATIONS:
        image = sitk.DICOMOrient(scan.to_sitk(), code)
        flipped = Scan(sitk.GetArrayFromImage(image), image.GetOrigin(), image.GetSpacing(),
                       image.GetDirection(), scan.seriesuid)  # fmt: skip
        frac = float(np.max(flipped.world_to_voxel(center_xyz_mm) % 1.0))
        if frac > 0.55:
            return flipped
        if frac > best_frac:
            best, best_frac = flipped, frac
    return best


def check_voxel_index(scan, center_xyz_mm, answer_zyx) -> None:
    """The voxel index (z, y, x) of a world point (x, y, z) in mm: three whole numbers."""
    if _unanswered(answer_zyx):
        return
    voxel = np.asarray(scan.world_to_voxel(center_xyz_mm), dtype=float)  # continuous (z, y, x)
    expected = np.rint(voxel)
    try:
        answer = np.asarray(answer_zyx, dtype=float).ravel()
    except (TypeError, ValueError):
        answer = np.zeros(0)
    no_direction = np.rint(((np.asarray(center_xyz_mm, float) - scan.origin) / scan.spacing)[::-1])
    if answer.shape != (3,) or not np.all(np.isfinite(answer)):
        _say(False, "give three numbers, (z, y, x).")
    elif not np.all(answer == np.rint(answer)):
        _say(False, "an index is a whole voxel: round to the nearest one (np.rint) and give "
             "whole numbers.")  # fmt: skip
    elif np.array_equal(answer, expected):
        _say(True, "")
    elif np.array_equal(answer[::-1], expected):
        _say(False, "right numbers, wrong order: numpy arrays are indexed (z, y, x).")
    elif np.array_equal(answer, np.floor(voxel)) or np.array_equal(answer, np.trunc(voxel)):
        _say(False, "almost: round to the nearest voxel instead of cutting off the decimals.")
    elif np.array_equal(answer, no_direction) or np.array_equal(answer[::-1], no_direction):
        _say(False, "this scan's axes do not all point the LPS way: apply the inverse of "
             "`scan.direction_matrix` to (world - origin) before dividing by the spacing.")  # fmt: skip
    else:
        _say(False, "subtract the origin, apply the inverse direction, divide by the spacing "
             "(all in x, y, z), round to the nearest voxel, then reverse to (z, y, x).")  # fmt: skip


def check_slice_step_mm(scan, answer_mm) -> None:
    """How many millimetres does one step of the axial (z) slider move?"""
    if _unanswered(answer_mm) or (value := _number(answer_mm)) is None:
        return
    _say(_close(value, scan.spacing_zyx_mm[0], 1e-3), "one axial step is one voxel along z; "
         "which entry of `scan.spacing` (x, y, z) is that?")  # fmt: skip


# -- 02: preprocessing ---------------------------------------------------------------------
LUNG_WINDOW_WIDTH_HU = 1500
GROUND_GLASS_HU = (-750, -300)
LUNG_HU = -850


def check_ground_glass_window(level_hu, width_hu) -> None:
    """A window (level, width) that holds all of ground glass (-750..-300 HU) with more
    contrast than the lung window (width < 1500 HU), while the lung around it (-850 HU) is
    still inside the window, not pure black."""
    if _unanswered(level_hu) or _unanswered(width_hu):
        return
    if (level := _number(level_hu)) is None or (width := _number(width_hu)) is None:
        return
    if width <= 0:
        _say(False, "a window's width is a positive number of HU.")
        return
    low, high = level - width / 2, level + width / 2
    if not (low <= GROUND_GLASS_HU[0] and high >= GROUND_GLASS_HU[1]):
        _say(False, f"your window shows {low:.0f}..{high:.0f} HU; ground glass lies between "
             "about -750 and -300 HU and must all be inside it.")  # fmt: skip
    elif low >= LUNG_HU:
        _say(False, f"your window starts at {low:.0f} HU, so the lung (about -850 HU) is "
             "pure black and a faint nodule has nothing to stand out from.")  # fmt: skip
    else:
        _say(width < LUNG_WINDOW_WIDTH_HU, "the lung window is 1500 HU wide; a narrower "
             "one spreads the same grey levels over fewer HU, so faint opacities stand out.")  # fmt: skip


def check_negatives_per_positive(index, answer) -> None:
    """Non-nodule candidates per nodule candidate in the crop cache's index (within 2 %)."""
    if _unanswered(answer) or (value := _number(answer)) is None:
        return
    positives = int((index["class"] == 1).sum())
    expected = (len(index) - positives) / max(positives, 1)
    _say(_close(value, expected, 0.02), "divide the number of class-0 rows by the number of "
         "class-1 rows of `cache.index`.")  # fmt: skip


# -- 03: training --------------------------------------------------------------------------
def check_always_no_accuracy(labels, answer) -> None:
    """Accuracy of a 'model' that answers 'not a nodule' for every candidate."""
    if _unanswered(answer):
        return
    expected = float((np.asarray(labels) == 0).mean())
    _say(abs(float(answer) - expected) < 0.005, "it is right on every class-0 candidate and "
         "wrong on every class-1 one; give a fraction between 0 and 1.")  # fmt: skip


def check_why_accuracy_misleads(choice) -> None:
    """Multiple choice, see the notebook."""
    if _unanswered(choice):
        return
    _say(str(choice).strip().lower() == "c", "compare your previous answer with the accuracy "
         "the model reached: which option explains why both are high?")  # fmt: skip


# == 03: hands-on deep learning (dataset, forward, training step) ============================
# Each exercise is a function the student completes; its check runs the package's own version
# (or the reference steps) on the same inputs and says right, or gives a hint, never the code.
def _not_written(result: object) -> bool:
    if result is None or result is ...:
        print("… Not answered yet: write the function's body (replace the `...`) and run both "
              "cells.")  # fmt: skip
        return True
    return False


def _sample_rows(index) -> list[int]:
    """A nodule, a non-nodule and one more row of a crop cache index."""
    labels = np.asarray(index["class"])
    rows = [int(np.flatnonzero(labels == c)[0]) for c in (1, 0) if (labels == c).any()]
    return [*rows, len(labels) - 1]


def check_get_item(get_item, cache) -> None:
    """``get_item(cache, row, augment=None) -> (x, y)``: crop ``row`` of the cache, augmented
    in HU when ``augment`` is given (``augment(hu, index=row, epoch=0)``), normalised with
    `normalize_hu`, as a float32 tensor ``(1, D, H, W)``; ``y`` the row's class as an int."""
    from nodulekit.train import Augment, CandidateDataset

    augment = Augment(seed=3)
    for aug in (None, augment):
        reference = CandidateDataset(cache, augment=aug)
        for row in _sample_rows(cache.index):
            answer = get_item(cache, row, augment=aug)
            if _not_written(answer):
                return
            x, y = (answer[0], answer[1]) if isinstance(answer, tuple | list) else (answer, None)
            hint = _get_item_hint(x, y, *reference[row][:2], augmented=aug is not None)
            if hint:
                _say(False, hint)
                return
    _say(True, "")


def _get_item_hint(x, y, expected_x, expected_y, *, augmented: bool) -> str:
    import torch

    if not isinstance(x, torch.Tensor):
        return "return a torch tensor (torch.from_numpy(...)) and the label, as a tuple (x, y)."
    if x.dtype != torch.float32:
        return f"the crop is {x.dtype}; the model expects float32."
    if tuple(x.shape) != tuple(expected_x.shape):
        return (f"the crop has shape {tuple(x.shape)}; a network wants a channel axis first: "
                "(1, D, H, W).")  # fmt: skip
    if y is None or int(y) != int(expected_y):
        return "the label is the row's `class` column of `cache.index` (1 nodule, 0 not)."
    if not augmented and (float(x.max()) > 1.0 + 1e-6 or float(x.min()) < -1e-6):
        return "the values should lie in [0, 1]: normalise the HU with `normalize_hu`."
    if not torch.allclose(x, expected_x, atol=1e-5):
        return ("augment the crop in HU first (`augment(hu, index=row, epoch=0)`), then "
                "normalise: the augmentation's noise is in HU." if augmented else
                "read `cache.crops[row]` as float32 HU and normalise it with `normalize_hu`.")  # fmt: skip
    return ""


def tiny_net(seed: int = 0):
    """A small 3D CNN with its layers but no ``forward``: ``block1``, ``block2`` (each
    conv -> batch norm -> ReLU -> 2x max-pool) and ``head`` (one linear output)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Module()
    net.block1 = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.MaxPool3d(2)
    )
    net.block2 = nn.Sequential(
        nn.Conv3d(4, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(), nn.MaxPool3d(2)
    )
    net.head = nn.Linear(8, 1)
    return net.eval()


def _reference_forward(net, x):
    features = net.block2(net.block1(x)).mean(dim=(2, 3, 4))
    return net.head(features).squeeze(1)


def check_forward(forward) -> None:
    """``forward(net, x)``: ``x`` (N, 1, D, H, W) -> one logit per crop, shape (N,): block1,
    block2, the average over D, H and W, head."""
    import torch

    net = tiny_net()
    x = torch.rand(3, 1, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        answer = forward(net, x)
        expected = _reference_forward(net, x)
    if _not_written(answer):
        return
    if not isinstance(answer, torch.Tensor):
        _say(False, "return the tensor that `net.head` gives (squeezed), not a number or list.")
    elif tuple(answer.shape) == (3, 1):
        _say(False, "one number per crop: drop the last axis so the shape is (N,).")
    elif tuple(answer.shape) != (3,):
        _say(False, f"your output has shape {tuple(answer.shape)}; average the features over "
             "the three spatial axes (2, 3, 4) before `net.head`, to get shape (N,).")  # fmt: skip
    elif torch.allclose(answer, torch.sigmoid(expected), atol=1e-5):
        _say(False, "return the logit, not its sigmoid: the loss applies the sigmoid itself.")
    else:
        _say(torch.allclose(answer, expected, atol=1e-5), "apply block1, then block2, then "
             "average over D, H, W, then head, in that order.")  # fmt: skip


def _step_setup():
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(27, 1), nn.Flatten(0))
    x = torch.randn(6, 1, 3, 3, 3, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([1, 0, 0, 1, 0, 0])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for p in model.parameters():  # gradients left over from an earlier step
        p.grad = torch.full_like(p, 0.3)
    return model, optimizer, x, y


def _reference_step(model, optimizer, x, y, *, zero_grad: bool = True) -> float:
    import torch

    if zero_grad:
        optimizer.zero_grad()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y.float())
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def check_training_step(training_step) -> None:
    """``training_step(model, optimizer, x, y) -> float``: clear old gradients, the logits,
    binary cross-entropy (with logits, float labels), backward, one optimiser step; the loss."""
    import torch

    model, optimizer, x, y = _step_setup()
    before = [p.detach().clone() for p in model.parameters()]
    answer = training_step(model, optimizer, x, y)
    if _not_written(answer):
        return
    outcomes = {}
    for zero_grad in (True, False):
        ref_model, ref_optimizer, *_ = _step_setup()
        loss = _reference_step(ref_model, ref_optimizer, x, y, zero_grad=zero_grad)
        same = all(torch.allclose(a, b, atol=1e-6)
                   for a, b in zip(model.parameters(), ref_model.parameters(), strict=True))  # fmt: skip
        outcomes[zero_grad] = (same, loss)
    after = list(model.parameters())
    if all(torch.equal(a, b) for a, b in zip(before, after, strict=True)):
        _say(False, "the weights did not change: call `loss.backward()`, then `optimizer.step()`.")
    elif outcomes[False][0] and not outcomes[True][0]:
        _say(False, "gradients add up across steps: clear them first with `optimizer.zero_grad()`.")
    elif not outcomes[True][0]:
        _say(False, "the update differs from one step of binary cross-entropy on the logits: use "
             "`binary_cross_entropy_with_logits(model(x), y.float())`.")  # fmt: skip
    else:
        _say(abs(float(answer) - outcomes[True][1]) < 1e-5, "return the loss of this batch "
             "as a number (`loss.item()`), computed before the step.")  # fmt: skip


# == part two (04 evaluation, 05 explanations): a run to look at, and the exercise checks ===
# (owned by the part-two chapters; other chapters' helpers and checks live above)
def course_checkpoint(checkpoint: str, root: Path, run_dir: str, **train_options) -> Path:
    """``checkpoint`` if given; else ``run_dir/best.pt`` if it exists; else train a small model
    into ``run_dir`` on ``root`` (``train_options`` go to `TrainConfig`) and return its best."""
    if checkpoint:
        return Path(checkpoint).expanduser().resolve()
    best = Path(run_dir) / "best.pt"
    if best.is_file():
        print(f"reusing the run in {run_dir} (delete the folder to train again)")
        return best
    from nodulekit.train import TrainConfig, train

    print(f"training a small model into {run_dir} ...")
    result = train(TrainConfig(data=str(root), out=str(run_dir), **train_options))
    return Path(result.best_checkpoint)


def scored_candidates(checkpoint: Path, root: Path, subsets, *, device: str = "auto"):
    """The checkpoint's model, the labelled candidates of ``subsets`` (with ``probability`` and
    the ``diameter_mm`` of the nodule each lies in) and their HU crops, from the crop cache."""
    import pandas as pd

    from nodulekit.data import Luna16
    from nodulekit.evaluate import crop_geometry, load_model
    from nodulekit.evaluate.run import attach_diameters
    from nodulekit.evaluate.scoring import score_cache
    from nodulekit.train import TrainConfig, open_or_build_cache

    model, config = load_model(checkpoint, device=device)
    size_mm, shape = crop_geometry(config, checkpoint=checkpoint)
    cache = open_or_build_cache(TrainConfig(data=str(root), out=str(Path(checkpoint).parent),
                                            crop_size_mm=size_mm, crop_shape=shape))  # fmt: skip
    luna = Luna16(root, warn_missing=False)
    uids = luna.scans.loc[luna.scans["subset"].isin(list(subsets)), "seriesuid"]
    rows = np.flatnonzero(cache.index["seriesuid"].isin(set(uids)).to_numpy())
    table = cache.index.iloc[rows][["seriesuid", "coordX", "coordY", "coordZ", "class"]]
    table = pd.DataFrame(table).reset_index(drop=True)
    table["probability"] = score_cache(model, cache, rows, device=device)
    table["diameter_mm"] = attach_diameters(table, luna.annotations)
    return model, table, np.asarray(cache.crops[rows])


# -- 04: evaluation ------------------------------------------------------------------------
def check_sensitivity_at_1fp(froc_result, answer) -> None:
    """The FROC sensitivity at 1 false positive per scan, read off the curve."""
    if _unanswered(answer):
        return
    points = froc_result.operating_points
    expected = float(points.loc[np.isclose(points["fp_per_scan"], 1.0), "sensitivity"].iloc[0])
    value = float(answer)
    if value > 1:
        _say(False, "a sensitivity is a fraction between 0 and 1, not a percentage or a count.")
    else:
        _say(abs(value - expected) <= 0.02, "find 1 on the x axis (false positives per scan), go "
             "up to the curve and read the y value; `froc.operating_points` lists it too.")  # fmt: skip


def check_weakest_size_band(size_bands, answer) -> None:
    """The size band (``size_bands['group']``) with the lowest recall; ties: any of them."""
    if _unanswered(answer):
        return
    scored = size_bands.dropna(subset=["recall"])
    weakest = set(scored.loc[scored["recall"] == scored["recall"].min(), "group"])
    given = str(answer).strip().replace(" ", "").lower()
    bands = {str(g).replace(" ", "").lower(): g for g in size_bands["group"]}
    if given not in bands:
        _say(False, f"answer with one of the band names in the table: {sorted(bands.values())}.")
    else:
        _say(bands[given] in weakest, "sort the table by its `recall` column: which band has "
             "the smallest share of its positive candidates found?")  # fmt: skip


def check_threshold_source(choice) -> None:
    """Multiple choice: where the decision threshold for the test figures must come from."""
    if _unanswered(choice):
        return
    _say(str(choice).strip().lower() == "b", "a test figure is honest only if nothing about the "
         "model, threshold included, was tuned on the test scans.")  # fmt: skip


# -- 05: explanations ----------------------------------------------------------------------
def check_least_sensitive_method(scorecard, answer) -> None:
    """The method whose maps stayed most like the trained model's once every weight was random
    (the highest ``sanity_correlation``: the one closest to failing, or failing)."""
    if _unanswered(answer):
        return
    correlation = scorecard.set_index("method")["sanity_correlation"]
    given = str(answer).strip().lower()
    if given not in correlation.index:
        _say(False, f"answer with a method of the table: {sorted(correlation.index)}.")
    else:
        _say(correlation[given] >= correlation.max() - 1e-9, "look at the `sanity_correlation` "
             "column: which method's maps still look most like the trained model's once its "
             "weights are random?")  # fmt: skip


def check_randomisation_meaning(choice) -> None:
    """Multiple choice: what a method failing the randomisation check means."""
    if _unanswered(choice):
        return
    _say(str(choice).strip().lower() == "a", "if a map looks the same whatever the weights, "
         "what can it be showing: the model's reasons or the picture itself?")  # fmt: skip


def check_pointing_game(agreement, answer) -> None:
    """The share (0..1) of true-nodule crops whose hottest voxel lies inside the nodule."""
    if _unanswered(answer):
        return
    expected = float(agreement.loc[agreement["is_nodule"], "hit"].mean())
    _say(abs(float(answer) - expected) <= 0.01, "average the `hit` column over the "
         "rows where `is_nodule` is True; give a fraction between 0 and 1.")  # fmt: skip


# -- 07: segmentation ----------------------------------------------------------------------
def _mask_pairs(seed: int = 0):
    rng = np.random.default_rng(seed)
    pairs = [(rng.random((4, 9, 9)) > 0.6, rng.random((4, 9, 9)) > 0.5) for _ in range(3)]
    empty = np.zeros((2, 3, 3), bool)
    return [*pairs, (empty, empty)]


def check_dice(dice) -> None:
    """``dice(a, b)``: the Dice coefficient of two boolean masks (both empty: 1)."""
    from nodulekit.evaluate.segmentation import dice_iou

    pairs = _mask_pairs()
    first = dice(*pairs[0])
    if _unanswered(first):
        return
    overlap_ok = all(abs(float(dice(a, b)) - dice_iou(a, b)[0]) < 1e-9 for a, b in pairs[:3])
    if not overlap_ok:
        _say(False, "Dice is twice the overlap divided by the sum of both masks' sizes "
             "(np.logical_and(a, b).sum(), a.sum(), b.sum()).")  # fmt: skip
        return
    try:
        empty_ok = abs(float(dice(*pairs[3])) - 1.0) < 1e-9
    except ZeroDivisionError:
        empty_ok = False
    _say(empty_ok, "two empty masks agree perfectly: return 1.0 when both are empty.")


def check_equivalent_diameter(n_voxels, spacing_zyx_mm, answer_mm) -> None:
    """The diameter (mm) of the sphere with the volume of ``n_voxels`` voxels."""
    if _unanswered(answer_mm):
        return
    from nodulekit.evaluate.segmentation import equivalent_diameter_mm

    expected = equivalent_diameter_mm(int(n_voxels), spacing_zyx_mm)
    answer = float(answer_mm)
    if abs(answer - expected) <= 0.01 * expected:
        _say(True, "")
    elif abs(answer - 2 * expected) <= 0.02 * expected:
        _say(False, "that is close to twice the answer: V = (4/3) pi r^3 gives the radius.")
    else:
        _say(False, "volume = voxels x the product of the spacing (mm^3); a sphere of volume V "
             "has diameter (6 V / pi) ** (1/3).")  # fmt: skip


# -- 06: detection and report --------------------------------------------------------------
def marks_against_annotations(annotations, marks):
    """Each annotated nodule with its nearest mark (mm), whether a mark lies inside its radius
    (LUNA16's hit rule), and the highest probability among the marks that hit it."""
    xyz = ["coordX", "coordY", "coordZ"]
    table = annotations[[*xyz, "diameter_mm"]].reset_index(drop=True).astype(float)
    d_mm = np.linalg.norm(
        table[xyz].to_numpy()[:, None, :] - marks[xyz].to_numpy(float)[None], axis=2
    ).reshape(len(table), len(marks))
    inside = d_mm < table["diameter_mm"].to_numpy()[:, None] / 2
    probability = marks["probability"].to_numpy(float)[None]
    table["nearest_mark_mm"] = d_mm.min(axis=1) if len(marks) else np.nan
    table["hit"] = inside.any(axis=1)
    table["hit_probability"] = np.where(inside, probability, -1.0).max(axis=1, initial=-1.0)
    table.loc[~table["hit"], "hit_probability"] = np.nan
    return table


def check_mark_hit(nodule_xyz_mm, diameter_mm, mark_xyz_mm, answer) -> None:
    """True/False: does the mark count as a hit on the nodule (strictly inside its radius)?"""
    if _unanswered(answer):
        return
    if not isinstance(answer, (bool, np.bool_)):
        _say(False, "answer True or False.")
        return
    d2 = float(((np.asarray(mark_xyz_mm, float) - np.asarray(nodule_xyz_mm, float)) ** 2).sum())
    _say(bool(answer) == (d2 < (float(diameter_mm) / 2) ** 2), "compute the distance "
         "sqrt(dx² + dy² + dz²) in mm and compare it with the radius, half the diameter.")  # fmt: skip


def check_never_claims(choice) -> None:
    """Multiple choice: what the per-scan report must never claim."""
    if _unanswered(choice):
        return
    _say(str(choice).strip().lower() == "c", "the report lists places worth a look and how "
         "sure the model is; which sentence would need a radiologist, a biopsy or follow-up?")  # fmt: skip
