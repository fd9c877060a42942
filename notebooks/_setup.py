"""Tiny shared setup for the course notebooks: where the data is, and the exercise checks.

All real work is done by the ``nodulekit`` package. The checks compare a student's answer with
the package's own result and say "right" or give a hint, never the answer itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SYNTHETIC = Path("nodulekit-data") / "synthetic"


def data_root(data_dir: str = "", *, n_scans: int = 8, seed: int = 0) -> Path:
    """``data_dir`` if given; else the synthetic set in this folder or a parent; else make it."""
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


# -- 00: setup and data --------------------------------------------------------------------
def check_large_nodules(luna, answer) -> None:
    """How many nodules in annotations.csv are 10 mm across or more?"""
    if _unanswered(answer):
        return
    expected = int((luna.annotations.diameter_mm >= 10).sum())
    _say(int(answer) == expected, "filter `luna.annotations` on its `diameter_mm` column "
         "(10 mm included) and count the rows.")  # fmt: skip


def check_positive_fraction(luna, answer) -> None:
    """Which fraction (0..1) of the candidates are nodules (class 1)?"""
    if _unanswered(answer):
        return
    expected = float((luna.candidates["class"] == 1).mean())
    _say(abs(float(answer) - expected) < 0.005, "a fraction is positives / all candidates, "
         "between 0 and 1 (not a percentage, not a count).")  # fmt: skip


# -- 01: exploring scans -------------------------------------------------------------------
def check_voxel_index(scan, center_xyz_mm, answer_zyx) -> None:
    """The voxel index (z, y, x) of a world point (x, y, z) in mm."""
    if _unanswered(answer_zyx):
        return
    voxel = np.asarray(scan.world_to_voxel(center_xyz_mm), dtype=float)  # continuous (z, y, x)
    answer = np.asarray(answer_zyx, dtype=float).ravel()
    if answer.shape != (3,):
        _say(False, "give three numbers, (z, y, x).")
    elif np.abs(answer - voxel).max() <= 0.5 + 1e-6:
        _say(True, "")
    elif np.abs(answer[::-1] - voxel).max() <= 0.5 + 1e-6:
        _say(False, "right numbers, wrong order: numpy arrays are indexed (z, y, x).")
    elif np.abs(answer - voxel).max() < 1:
        _say(False, "almost: round to the nearest voxel instead of cutting off the decimals.")
    else:
        _say(False, "subtract the origin, divide by the spacing (both in x, y, z), mind the "
             "direction's signs, then reverse to (z, y, x).")  # fmt: skip


def check_slice_step_mm(scan, answer_mm) -> None:
    """How many millimetres does one step of the axial (z) slider move?"""
    if _unanswered(answer_mm):
        return
    _say(abs(float(answer_mm) - scan.spacing_zyx[0]) < 1e-3, "one axial step is one voxel "
         "along z; which entry of `scan.spacing` (x, y, z) is that?")  # fmt: skip


# -- 02: preprocessing ---------------------------------------------------------------------
def check_ground_glass_window(level_hu, width_hu) -> None:
    """A window (level, width) in which ground-glass (-750..-300 HU) has more contrast than the
    lung window gives it, without losing the lung (-850 HU) or solid tissue (0 HU) to pure black."""
    if _unanswered(level_hu) or _unanswered(width_hu):
        return
    low, high = level_hu - width_hu / 2, level_hu + width_hu / 2
    if not (low <= -750 and high >= -300):
        _say(False, f"your window shows {low:.0f}..{high:.0f} HU; ground glass lies between "
             "about -750 and -300 HU and must be inside it.")  # fmt: skip
    else:
        _say(width_hu <= 1000 and low >= -1100, "the lung window is 1500 HU wide; a narrower "
             "one spreads the same grey levels over fewer HU, so faint opacities stand out.")  # fmt: skip


def check_negatives_per_positive(index, answer) -> None:
    """Non-nodule candidates per nodule candidate in the crop cache's index."""
    if _unanswered(answer):
        return
    positives = int((index["class"] == 1).sum())
    expected = (len(index) - positives) / max(positives, 1)
    _say(abs(float(answer) - expected) <= 0.05 * expected + 0.01, "divide the number of "
         "class-0 rows by the number of class-1 rows of `cache.index`.")  # fmt: skip


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
             "the smallest share of its nodules found?")  # fmt: skip


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
