"""`make_synthetic_luna16`: a LUNA16-format data set of synthetic chest CT, written to disk.

Layout (as LUNA16, plus ground truth that LUNA16 does not ship)::

    OUT_DIR/
      subset0/ .. subsetK/<uid>.mhd + .raw     int16 HU, LPS, identity direction
      annotations.csv                          seriesuid,coordX,coordY,coordZ,diameter_mm
      annotations_excluded.csv                 same columns; < 3 mm nodules and -1 non-nodules
      candidates_V2.csv                        seriesuid,coordX,coordY,coordZ,class
      seriesuids.csv                           one uid per line, no header
      seg-lungs-LUNA16/<uid>.mhd + .zraw       uint8: 3 right lung, 4 left lung, 5 airways
      seg-nodules-synthetic/<uid>.mhd + .zraw  uint8: k = k-th annotations.csv row of the scan
      synthetic_findings.csv                   every finding with its kind (solid, scar, ...)
      synthetic_candidates.csv                 candidates_V2 rows plus what each point lies on
      synthetic.json, README.txt               generator version, seed and parameters
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nodulekit.errors import OutputExistsError

GENERATOR_VERSION = "2.0"  # 2.0: LUNA16 diameters, nodule-free scans, vessel negatives
UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # never clashes with LIDC-IDRI's 1.3.6.1.4.1.14519...
SIZE_NAMES = ("tiny", "small", "full")
OUTPUT_FOLDERS = ("seg-lungs-LUNA16", "seg-nodules-synthetic")
OUTPUT_FILES = (
    "annotations.csv",
    "annotations_excluded.csv",
    "candidates_V2.csv",
    "seriesuids.csv",
    "synthetic_findings.csv",
    "synthetic_candidates.csv",
    "synthetic.json",
    "README.txt",
)


def synthetic_uid(seed: int, index: int) -> str:
    """A DICOM-style series UID for scan ``index`` of the set made with ``seed``."""
    digest = hashlib.sha256(f"nodulekit-synthetic:{seed}:{index}".encode()).hexdigest()
    return UID_PREFIX + str(int(digest, 16))[:30]


def make_synthetic_luna16(
    out_dir: str | Path,
    *,
    n_scans: int = 10,
    seed: int = 0,
    size: str = "small",
    n_subsets: int | None = None,
    negatives_per_nodule: int = 30,
    nodules_per_scan: tuple[int, int] = (2, 5),
    nodule_free_fraction: float = 1 / 3,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic chest-CT data set in the exact LUNA16 layout.

    Each scan has a body with fat and muscle, spine, sternum and ribs, two lungs with
    texture, trachea and bronchi, branching vessel trees, and (in two scans of three, as in
    LUNA16) 2-5 nodules (solid, ground-glass, part-solid, some against the pleura) whose
    diameters follow LUNA16's ``annotations.csv`` (median 6.4 mm, 42 % under 6 mm), plus
    small and non-nodule findings for ``annotations_excluded.csv``. Candidates are mostly
    hard negatives, more than half of them on vessels (cross-sections, forks and crossings
    of nodule size), the rest on the pleura, ribs, hilum and plain lung; each nodule has
    one or two class-1 rows.

    Parameters
    ----------
    out_dir : path
        Folder to write; must be empty or absent (or a previous synthetic set with
        ``overwrite=True``).
    n_scans : int, default 10
        How many scans.
    seed : int, default 0
        Same seed, same bytes.
    size : {"small", "full", "tiny"}, default "small"
        ``small``: 256 x 256 pixels, 60-120 slices (a small chest, seconds per scan);
        ``full``: 512 x 512, 260-340 mm of slices (LUNA16 size); ``tiny``: 128 x 128, 28-40
        slices, for tests.
    n_subsets : int, optional
        Number of ``subsetN`` folders; default ``min(n_scans, 10)``. Scan ``i`` goes to
        subset ``i % n_subsets``.
    negatives_per_nodule : int, default 30
        Class-0 candidate rows per nodule (positives get 1-2 rows each, so about 1 positive
        row per 20 negatives).
    nodules_per_scan : (int, int), default (2, 5)
        Inclusive range of nodules (>= 3 mm) per scan that has nodules.
    nodule_free_fraction : float, default 1/3
        Share of scans without any nodule (LUNA16: 287 of 888), spread evenly within each
        subset; the first scan of a subset always has nodules, so a set with one scan per
        subset has none, and 30 scans in 10 subsets have one nodule-free scan per subset.
    workers : int, default 1
        Processes to draw scans in; the output does not depend on it.
    progress : bool, default True
        Show a progress bar (only when stderr is a terminal).
    overwrite : bool, default False
        Replace a previous synthetic set in ``out_dir``.

    Returns
    -------
    Path
        ``out_dir``; open it with ``nodulekit.data.Luna16``.

    Examples
    --------
    >>> import tempfile
    >>> root = make_synthetic_luna16(tempfile.mkdtemp(), n_scans=1, size="tiny", progress=False)
    >>> sorted(p.name for p in root.iterdir())[:4]
    ['README.txt', 'annotations.csv', 'annotations_excluded.csv', 'candidates_V2.csv']
    """
    _check_int("n_scans", n_scans, 1)
    _check_int("negatives_per_nodule", negatives_per_nodule, 0)
    _check_int("workers", workers, 1)
    if size not in SIZE_NAMES:
        raise ValueError(f"size must be one of {SIZE_NAMES}, not {size!r}")
    n_subsets = min(n_scans, 10) if n_subsets is None else n_subsets
    _check_int("n_subsets", n_subsets, 1)
    if n_subsets > n_scans:
        raise ValueError(
            f"n_subsets={n_subsets} is more than n_scans={n_scans}: every subset must hold a "
            "scan; lower n_subsets or make more scans"
        )
    lo, hi = (int(n) for n in nodules_per_scan)
    if not 1 <= lo <= hi:
        raise ValueError(
            f"nodules_per_scan must be (low, high) with 1 <= low <= high, not {nodules_per_scan}"
        )
    if isinstance(nodule_free_fraction, bool) or not 0.0 <= float(nodule_free_fraction) < 1.0:
        raise ValueError(
            f"nodule_free_fraction must be a number in [0, 1), not {nodule_free_fraction!r}"
        )
    free = float(nodule_free_fraction)
    out = _prepare(Path(out_dir).expanduser(), overwrite)

    jobs = [
        (
            seed,
            i,
            size,
            i % n_subsets,
            synthetic_uid(seed, i),
            str(out),
            negatives_per_nodule,
            (lo, hi),
            _nodule_free(i, n_subsets, free),
        )
        for i in range(n_scans)
    ]
    results = _run(jobs, workers, progress)
    params = {
        "n_scans": n_scans,
        "seed": seed,
        "size": size,
        "n_subsets": n_subsets,
        "negatives_per_nodule": negatives_per_nodule,
        "nodules_per_scan": [lo, hi],
        "nodule_free_fraction": round(free, 6),
    }
    _write_tables(out, results, params)
    return out


def _nodule_free(index: int, n_subsets: int, fraction: float) -> bool:
    """Whether scan ``index`` is drawn without nodules.

    Spread evenly within each subset: the ``k``-th scan of a subset (``k = index //
    n_subsets``) is nodule-free when ``round((k + 1) * f) > round(k * f)``, and the first
    scan of a subset never is, so every subset (every validation or test split) keeps
    nodules. With ``f = 1/3``: the 2nd, 5th, 8th ... scan of each subset.
    """
    k = index // n_subsets
    return k >= 1 and bool(np.floor((k + 1) * fraction + 0.5) > np.floor(k * fraction + 0.5))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")


def _prepare(out: Path, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: is a file; give a folder for the synthetic set")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "synthetic.json").is_file():
            raise OutputExistsError(
                f"{out}: folder is not empty and holds no synthetic set (no synthetic.json); "
                "give an empty or new folder"
            )
        if not overwrite:
            raise OutputExistsError(
                f"{out}: already holds a synthetic set; pass overwrite=True (--overwrite) to "
                "replace it, or give another folder"
            )
        for sub in [*out.glob("subset*"), *(out / name for name in OUTPUT_FOLDERS)]:
            if sub.is_dir():
                shutil.rmtree(sub)
        for name in OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _run(jobs: list[tuple], workers: int, progress: bool) -> list[dict]:
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    from nodulekit.data.synthetic.scan import make_scan

    bar = tqdm(
        total=len(jobs),
        desc="synthetic scans",
        unit="scan",
        disable=not progress or not sys.stderr.isatty(),
    )
    results: list[dict] = []
    with bar:
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                results.append(make_scan(*job))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                for result in pool.map(make_scan, *zip(*jobs, strict=True)):
                    results.append(result)
                    bar.update()
    return results


def _fmt(value: float) -> str:
    return "-1" if value == -1 else f"{value:.6f}"


def _write_csv(path: Path, header: Sequence[str] | None, rows: list[Sequence[Any]]) -> None:
    lines = [",".join(header)] if header else []
    lines += [",".join(v if isinstance(v, str) else _fmt(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def _write_tables(out: Path, results: list[dict], params: dict) -> None:
    from nodulekit import __version__

    results = sorted(results, key=lambda r: r["uid"])
    coords = ("seriesuid", "coordX", "coordY", "coordZ")
    ann, exc, cand, cand_kind, found = [], [], [], [], []
    for r in results:
        uid = r["uid"]
        for f in r["findings"]:
            row = [uid, *f["center_xyz_mm"], f["diameter_mm"]]
            (ann if f["table"] == "annotations" else exc).append(row)
            found.append(
                [*row, f["kind"], str(f["juxtapleural"]).lower(), str(f["label"]), f["table"]]
            )
        for x, y, z, cls, kind in r["candidates"]:
            cand.append([uid, x, y, z, str(cls)])
            cand_kind.append([uid, x, y, z, str(cls), kind])
    _write_csv(out / "annotations.csv", (*coords, "diameter_mm"), ann)
    _write_csv(out / "annotations_excluded.csv", (*coords, "diameter_mm"), exc)
    _write_csv(out / "candidates_V2.csv", (*coords, "class"), cand)
    _write_csv(out / "seriesuids.csv", None, [[r["uid"]] for r in results])
    _write_csv(
        out / "synthetic_findings.csv",
        (*coords, "diameter_mm", "kind", "juxtapleural", "label", "table"),
        found,
    )
    _write_csv(out / "synthetic_candidates.csv", (*coords, "class", "kind"), cand_kind)
    positives = sum(1 for row in cand if row[4] == "1")
    counts = {
        "scans": len(results),
        "scans_without_nodules": sum(
            1 for r in results if not any(f["table"] == "annotations" for f in r["findings"])
        ),
        "nodules": len(ann),
        "excluded": len(exc),
        "candidates": len(cand),
        "candidates_positive": positives,
        "candidates_negative": len(cand) - positives,
    }
    meta = {
        "generator": "nodulekit.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "nodulekit_version": __version__,
        "uid_prefix": UID_PREFIX,
        "parameters": params,
        "counts": counts,
        "scans": [
            {k: r[k] for k in ("uid", "subset", "shape_zyx", "spacing_xyz_mm", "origin_xyz_mm")}
            for r in results
        ],
    }
    (out / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="ascii")
    (out / "README.txt").write_text(_readme(params, counts), encoding="ascii")


def _readme(params: dict, counts: dict) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in params.items())
    return (
        "Synthetic chest CT in the LUNA16 layout, made by nodulekit "
        f"(generator {GENERATOR_VERSION}).\n"
        "Not patient data: every scan is drawn from a random phantom.\n\n"
        f"Parameters: {settings}\n"
        f"Counts: {', '.join(f'{k}={v}' for k, v in counts.items())}\n\n"
        "subsetN/<uid>.mhd+.raw    int16 HU scans, LPS, identity direction\n"
        "annotations.csv           nodules >= 3 mm (diameter_mm)\n"
        "annotations_excluded.csv  nodules < 3 mm and non-nodules (diameter_mm -1)\n"
        "candidates_V2.csv         class 1 near nodules, class 0 hard negatives\n"
        "seriesuids.csv            all series, no header\n"
        "seg-lungs-LUNA16/         lung masks: 3 right, 4 left, 5 trachea and main bronchi\n"
        "seg-nodules-synthetic/    nodule masks: label k = k-th annotations.csv row of a scan\n"
        "synthetic_findings.csv    every finding with its kind and whether it touches the pleura\n"
        "synthetic_candidates.csv  candidates_V2 rows with what each point lies on\n"
        "synthetic.json            the same facts, machine-readable\n\n"
        f"Recreate: nodulekit synth OUT_DIR --scans {params['n_scans']} --seed {params['seed']} "
        f"--size {params['size']} --subsets {params['n_subsets']} "
        f"--negatives-per-nodule {params['negatives_per_nodule']} --nodules-per-scan "
        f"{' '.join(map(str, params['nodules_per_scan']))} "
        f"--nodule-free-fraction {params['nodule_free_fraction']}\n"
    )
