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
    _say(_close(value, scan.spacing_zyx[0], 1e-3), "one axial step is one voxel along z; "
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
