"""Cross-validation by subset, scored as LUNA16 participants report it.

LUNA16's scans come in ten ``subsetN`` folders, and the challenge's figures are a ten-fold
cross-validation over them: every scan is scored once, by a model that never trained (nor, here,
chose its threshold) on it, and the FROC/CPM is computed once over all 888 scans pooled.
`cross_validate` does that with the ordinary training run:

- **Folds.** The subsets on disk, sorted, are dealt round-robin into ``folds`` groups: the
  subset at position ``i`` belongs to group ``i % folds`` (on a full LUNA16 root with 10 folds,
  group ``k`` is ``subsetk``). Fold ``k`` tests on group ``k``, validates on group
  ``(k + 1) % folds`` and trains on the others; ``3 <= folds <= subsets on disk``.
- **One run per fold.** Each fold is a `nodulekit.train.train` run in ``OUT/fold-<k>/``
  (``config.json``, ``best.pt``, ``test_metrics.json``...) on the same crop cache, built once.
  Cost: ``folds`` times one training run (plus one scoring pass of its test scans).
- **Out-of-fold predictions.** Each fold's test scans are scored with its ``best.pt``; its
  threshold is its own validation threshold (``test_metrics.json``: ``threshold``,
  ``threshold_source``). ``OUT/predictions.csv`` pools every fold's candidates (LUNA16 columns,
  then ``class``, ``fold``, ``threshold``).
- **One pooled evaluation** in ``OUT/evaluation/``: FROC and CPM over every scan on disk with
  series-bootstrap intervals (`nodulekit.evaluate.run.evaluate_predictions`), and the
  candidates' classification metrics (``classification.csv``, ``size_bands.csv``, curves). The
  threshold metrics (recall, precision, F1...) call each candidate at its own fold's
  validation threshold; no threshold is tuned on the pooled predictions. AUC, AP, the curves
  and the FROC rank the pooled probabilities, as LUNA16 does.
- ``OUT/folds.csv``: one row per fold (subsets, scans, nodules, candidates, validation and
  test AUC, threshold, ``run``: trained, resumed or reused).

A rerun reuses every finished fold (its ``test_metrics.json`` and ``best.pt`` present, its
``config.json`` the same training options), continues an interrupted one from its ``last.pt``
(`nodulekit.train` ``resume``), and trains the others from the start.
``OUT/crossval.json`` records the plan and the training options: another plan or other
options in the same ``OUT`` are refused unless ``overwrite=True`` (then every fold is trained
again). ``OUT`` is locked while a cross-validation writes to it
(`nodulekit.train.run_dir`): a second one on the same folder is refused at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nodulekit._files import atomic_write, write_text_atomic
from nodulekit.errors import NodulekitError, OutputExistsError
from nodulekit.evaluate.run import Evaluation

#: training options that change where or how visibly a fold runs, not what it learns
EXECUTION_FIELDS = (
    "out",
    "cache",
    "val_subsets",
    "test_subsets",
    "resume",
    "progress",
    "quiet",
    "overwrite",
    "device",
    "threads",
    "workers",
    "cache_workers",
)
#: what a cross-validation writes into OUT beside the fold folders
OUTPUT_NAMES = ("crossval.json", "folds.csv", "predictions.csv", "evaluation")
FOLD_RULE = (
    "subsets on disk sorted, the subset at position i in group i % folds; fold k tests on "
    "group k, validates on group (k + 1) % folds, trains on the others"
)


@dataclass(frozen=True)
class Fold:
    """One fold of the plan: the subsets it tests, validates and trains on."""

    index: int
    test_subsets: tuple[int, ...]
    val_subsets: tuple[int, ...]
    train_subsets: tuple[int, ...]

    @property
    def folder(self) -> str:
        """The fold's run folder inside OUT: ``fold-<k>``."""
        return f"fold-{self.index}"


def fold_plan(subsets: Any, folds: int = 10) -> list[Fold]:
    """The folds over the ``subsets`` on disk (see the module's rule).

    Examples
    --------
    >>> [(f.test_subsets, f.val_subsets, f.train_subsets) for f in fold_plan([0, 1, 2], 3)]
    [((0,), (1,), (2,)), ((1,), (2,), (0,)), ((2,), (0,), (1,))]
    >>> fold_plan(range(10), 5)[4]
    Fold(index=4, test_subsets=(4, 9), val_subsets=(0, 5), train_subsets=(1, 2, 3, 6, 7, 8))
    """
    present = sorted({int(s) for s in subsets})
    folds = int(folds)
    if folds < 3:
        raise ValueError(
            f"--folds {folds}: cross-validation needs at least 3 folds, so that each fold "
            "has training, validation and test subsets"
        )
    if len(present) < folds:
        fix = (
            f"give --folds N with 3 <= N <= {len(present)}"
            if len(present) > 3
            else ("give --folds 3" if len(present) == 3 else "cross-validation needs 3 or more")
        )
        raise NodulekitError(
            f"--folds {folds} needs at least {folds} subsets on disk, and only "
            f"{len(present)} are there ({present}): {fix}, or download more subsets "
            "(`nodulekit download DIR --subsets 0-9`)"
        )
    group = {s: i % folds for i, s in enumerate(present)}
    plan = []
    for k in range(folds):
        val_group = (k + 1) % folds
        plan.append(
            Fold(
                index=k,
                test_subsets=tuple(s for s in present if group[s] == k),
                val_subsets=tuple(s for s in present if group[s] == val_group),
                train_subsets=tuple(s for s in present if group[s] not in (k, val_group)),
            )
        )
    return plan


@dataclass
class CrossValidation:
    """What `cross_validate` produced: the folds, the pooled predictions and their evaluation."""

    out: Path
    folds: pd.DataFrame
    predictions: pd.DataFrame
    evaluation: Evaluation
    files: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """The pooled figures in a few lines, in LUNA16's terms."""
        result, c = self.evaluation.froc, self.evaluation.froc.counts
        ci = "" if math.isnan(result.cpm_ci[0]) else f" (95% CI {_ci(result.cpm_ci, '.3f')})"
        lines = [
            f"{len(self.folds)}-fold cross-validation by subset: every scan scored once, by "
            "the fold that held it out",
            f"pooled FROC over {c['scans']} scans and {c['nodules']} nodules: CPM "
            f"{result.cpm:.3f}{ci}; {c['tp']}/{c['nodules']} nodules found, {c['fp']} false "
            "positives",
        ]
        table = self.evaluation.classification
        if table is not None:
            a = table.attrs
            lines.append(
                f"pooled candidates: {a['n_positive']} nodules, {a['n_negative']} non-nodules "
                f"in {a['n_series']} scans; ROC AUC {_value(table, 'auc')}, AP "
                f"{_value(table, 'ap')}"
            )
            pairs = (("recall", "recall"), ("precision", "precision"), ("F1", "f1"))
            values = ", ".join(f"{name} {_value(table, key)}" for name, key in pairs)
            lines.append(f"at each fold's validation threshold: {values}")
        lines.append(f"wrote {self.out}/ (folds.csv, predictions.csv, evaluation/)")
        return "\n".join(lines)


def _ci(bounds: Any, spec: str) -> str:
    return f"{format(bounds[0], spec)}-{format(bounds[1], spec)}"


def _value(table: pd.DataFrame, name: str) -> str:
    value, low, high = table.loc[name, ["value", "ci_low", "ci_high"]]
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f}" + ("" if math.isnan(low) else f" ({_ci((low, high), '.3f')})")


# ---- the plan on disk: refused, locked, reused ---------------------------------------------
def _training_options(config: dict[str, Any]) -> dict[str, Any]:
    """The options that decide what a fold learns (`EXECUTION_FIELDS` dropped)."""
    options = {k: v for k, v in config.items() if k not in EXECUTION_FIELDS}
    if options.get("data"):
        options["data"] = str(Path(options["data"]).resolve())
    return options


def _spec(config: Any, plan: list[Fold]) -> dict[str, Any]:
    return {
        "folds": len(plan),
        "fold_rule": FOLD_RULE,
        "plan": [dataclasses.asdict(fold) | {"folder": fold.folder} for fold in plan],
        "train": _training_options(config.to_dict()),
    }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    names = []
    for key in sorted(set(old) | set(new)):
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict) and key == "train":
            names += [f"train.{k}" for k in _differences(old[key], new[key])]
        elif json.dumps(old.get(key)) != json.dumps(new.get(key)):
            names.append(key)
    return names


@contextlib.contextmanager
def _claim(out: Path, spec: dict[str, Any], *, overwrite: bool) -> Iterator[None]:
    """Lock OUT (the run-folder lock) and refuse another cross-validation's folder."""
    from nodulekit.train.run_dir import LOCK_NAME, locked

    with locked(out):
        recorded = out / "crossval.json"
        if recorded.is_file() and not overwrite:
            old = json.loads(recorded.read_text(encoding="utf-8"))
            differ = _differences(old, json.loads(json.dumps(spec)))
            if differ:
                raise OutputExistsError(
                    f"{out} holds a cross-validation with other options ({', '.join(differ)} "
                    f"differ from {recorded}); give --overwrite (overwrite=True) to train every "
                    "fold again with the new ones, or another --out folder"
                )
        elif not recorded.is_file() and not overwrite:
            ours = (*OUTPUT_NAMES, LOCK_NAME, "cache")
            held = sorted(p.name for p in out.iterdir() if p.name not in ours)
            if held:
                raise OutputExistsError(
                    f"{out} is not empty and holds no cross-validation (it holds "
                    f"{', '.join(held[:5])}); give --overwrite or another --out folder"
                )
        if overwrite:
            _remove_stale_outputs(out, len(spec["plan"]), ours=recorded.is_file())
        write_text_atomic(recorded, json.dumps(spec, indent=2) + "\n", permissions=None)
        yield


def _remove_stale_outputs(out: Path, folds: int, *, ours: bool) -> None:
    """On overwrite: the pooled outputs (``evaluation/`` only when ``ours``: OUT held a
    cross-validation), and the run files of fold folders beyond this plan's last fold."""
    import shutil

    from nodulekit.train.run_dir import LOCK_NAME, RUN_FILES

    for name in ("folds.csv", "predictions.csv"):
        (out / name).unlink(missing_ok=True)
    if ours and (out / "evaluation").is_dir():
        shutil.rmtree(out / "evaluation")

    for folder in out.glob("fold-*"):
        suffix = folder.name.removeprefix("fold-")
        if folder.is_dir() and suffix.isdigit() and int(suffix) >= folds:
            for name in (*RUN_FILES, LOCK_NAME):
                (folder / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()


def fold_state(folder: Path, config: Any) -> str:
    """``"finished"`` (``test_metrics.json`` and ``best.pt`` there: reuse it), ``"resumable"``
    (``last.pt`` there, no test yet: continue it), or ``"new"`` (train it from the start).

    Only a fold whose ``config.json`` has ``config``'s split and training options counts as
    finished or resumable (`EXECUTION_FIELDS` such as the device or threads may differ).
    """
    try:
        old = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "new"
    keys = ("val_subsets", "test_subsets")
    same_split = all(list(old.get(k) or []) == list(getattr(config, k)) for k in keys)
    same = json.dumps(_training_options(old), sort_keys=True) == json.dumps(
        _training_options(config.to_dict()), sort_keys=True
    )
    if not (same_split and same):
        return "new"
    if (folder / "test_metrics.json").is_file() and (folder / "best.pt").is_file():
        return "finished"
    return "resumable" if (folder / "last.pt").is_file() else "new"


# ---- the folds ----------------------------------------------------------------------------
def cross_validate(
    config: Any,
    *,
    folds: int = 10,
    out: str | os.PathLike,
    n_resamples: int = 1000,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool | None = None,
    quiet: bool | None = None,
    echo: Callable[[str], None] = print,
) -> CrossValidation:
    """Cross-validate ``config`` (a `nodulekit.train.TrainConfig`) over the subsets of its data.

    Parameters
    ----------
    config : TrainConfig or dict
        The training run of every fold; ``data`` is required, ``out``, ``val_subsets`` and
        ``test_subsets`` are set per fold (giving the splits is refused).
    folds : int
        Number of folds, ``3 <= folds <=`` subsets on disk (10 on a full LUNA16 root).
    out : path
        ``fold-<k>/`` run folders, ``folds.csv``, ``predictions.csv``, ``evaluation/``.
    n_resamples, seed
        Series-bootstrap resamples and seed of the pooled intervals (not of the training,
        whose seed is ``config.seed``).
    overwrite : bool
        Train every fold again when ``out`` holds a cross-validation with other options.
    progress, quiet
        Progress bars and the per-epoch line of each fold (default: ``config``'s).
    echo : callable
        Receives one line per fold.

    Returns
    -------
    CrossValidation

    Raises
    ------
    NodulekitError
        Fewer subsets on disk than ``folds``; a fold whose test subsets hold no candidate.
    OutputExistsError
        ``out`` holds something else, or another cross-validation (without ``overwrite``), or
        another process is writing to it.
    """
    from nodulekit.data import Luna16
    from nodulekit.train.pipeline import crop_cache_dir, open_or_build_cache

    base = _base_config(config, out, progress=progress, quiet=quiet)
    luna = Luna16(base.data, warn_missing=False)
    plan = fold_plan(luna.scans["subset"].astype(int), folds)
    out = Path(out)
    overwrite = bool(overwrite or base.overwrite)
    with _claim(out, _spec(base, plan), overwrite=overwrite):
        # one cache, built once, for every fold
        base.cache = str(crop_cache_dir(base.data, base.cache))
        cache = open_or_build_cache(base, progress=bool(base.progress))
        rows, scored = [], []
        for fold in plan:
            row, predictions = _run_fold(base, fold, out, cache, luna, overwrite=overwrite)
            echo(_fold_line(row, len(plan)))
            rows.append(row)
            scored.append(predictions)
        table = pd.DataFrame(rows)
        pooled = pd.concat(scored, ignore_index=True)
        files = [_write_csv(table, out / "folds.csv"), _write_csv(pooled, out / "predictions.csv")]
        subsets = sorted({s for fold in plan for s in fold.test_subsets})
        evaluation = evaluate_pooled(
            pooled, luna, out / "evaluation", subsets=subsets, n_resamples=n_resamples, seed=seed
        )
        _add_folds_to_json(out / "evaluation" / "metrics.json", table)
    return CrossValidation(out, table, pooled, evaluation, files + evaluation.files)


def _base_config(config: Any, out: Any, *, progress: bool | None, quiet: bool | None) -> Any:
    """The config every fold starts from; options cross-validation sets itself are refused."""
    from nodulekit.train.config import TrainConfig

    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(dict(config))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise NodulekitError(
            "cross-validation runs in one process (it trains the folds one after another): "
            "start it with `nodulekit crossval`, not under torchrun"
        )
    if not config.data:
        raise ValueError("cross-validation needs config.data, a LUNA16-layout root")
    if config.task != "classify":
        raise ValueError(
            f"cross-validation scores candidates: task must be 'classify', not {config.task!r}"
        )
    given = [n for n in ("val_subsets", "test_subsets") if getattr(config, n) is not None]
    if given or config.resume:
        raise ValueError(
            "cross-validation chooses each fold's validation and test subsets and trains "
            f"every fold from the start: leave {', '.join(given or ['resume'])} unset"
        )
    return dataclasses.replace(
        config,
        out=str(out),
        progress=config.progress if progress is None else progress,
        quiet=config.quiet if quiet is None else quiet,
        overwrite=False,
    )


def _run_fold(
    base: Any, fold: Fold, out: Path, cache: Any, luna: Any, *, overwrite: bool
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train fold ``fold`` (or reuse it), score its test scans; its folds.csv row."""
    from nodulekit.train.pipeline import train

    folder = out / fold.folder
    config = dataclasses.replace(
        base,
        out=str(folder),
        val_subsets=fold.val_subsets,
        test_subsets=fold.test_subsets,
        overwrite=True,  # an unfinished or outdated fold of this plan (crossval.json) is redone
    )
    started = time.perf_counter()
    state = "new" if overwrite else fold_state(folder, config)
    if state == "resumable":  # interrupted: continue from its last finished epoch
        config = dataclasses.replace(config, resume=str(folder / "last.pt"), overwrite=False)
    if state != "finished":
        train(config)
    tested_path = folder / "test_metrics.json"
    if not tested_path.is_file():
        raise NodulekitError(
            f"fold {fold.index} ({folder}) wrote no test_metrics.json: its test subsets "
            f"{list(fold.test_subsets)} hold no candidate in the crop cache; check "
            "candidates_V2.csv for their scans, or use fewer --folds"
        )
    tested = json.loads(tested_path.read_text(encoding="utf-8"))
    threshold, source = fold_threshold(tested)
    scans = luna.scans.loc[luna.scans["subset"].isin(fold.test_subsets), "seriesuid"]
    predictions = score_fold(
        folder / "best.pt", cache, scans, device=base.device, threads=base.threads
    )
    predictions = predictions.assign(fold=fold.index, threshold=threshold)
    nodules = luna.annotations["seriesuid"].isin(set(scans))
    row = {
        "fold": fold.index,
        "test_subsets": _words(fold.test_subsets),
        "val_subsets": _words(fold.val_subsets),
        "train_subsets": _words(fold.train_subsets),
        "scans": len(scans),
        "nodules": int(nodules.sum()),
        "candidates": len(predictions),
        "positives": int((predictions["class"] == 1).sum()),
        "val_auc": _best_val_auc(folder / "metrics.csv"),
        "test_auc": _number(tested.get("auc")),
        "threshold": threshold,
        "threshold_source": source,
        **{f"test_{k}": _number(tested.get(f"{k}_best")) for k in ("recall", "precision", "f1")},
        "run": {"finished": "reused", "resumable": "resumed"}.get(state, "trained"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return row, predictions


def fold_threshold(test_metrics: dict[str, Any]) -> tuple[float, str]:
    """A fold's operating point: its ``test_metrics.json`` threshold, chosen on validation
    (0.5, said so, when validation chose none)."""
    value = _number(test_metrics.get("threshold"))
    if math.isnan(value):
        return 0.5, "0.5, not tuned: the fold's validation chose no threshold"
    return value, str(test_metrics.get("threshold_source") or "validation")


def score_fold(
    checkpoint: Path,
    cache: Any,
    scans: Any,
    *,
    device: str = "auto",
    batch_size: int = 128,
    threads: int = 0,
) -> pd.DataFrame:
    """The candidates of ``scans`` in the crop cache scored with ``checkpoint``: LUNA16 columns,
    ``probability`` and ``class``. ``threads``: torch CPU threads meanwhile (0: unchanged)."""
    import torch

    from nodulekit.evaluate.scoring import load_model, score_cache

    model, _ = load_model(checkpoint, device=device)
    rows = np.flatnonzero(cache.index["seriesuid"].isin(set(scans)).to_numpy())
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        probability = score_cache(model, cache, rows, batch_size=batch_size, device=device)
    finally:
        torch.set_num_threads(before)
    table = cache.index.iloc[rows][["seriesuid", "coordX", "coordY", "coordZ", "class"]]
    table = table.assign(probability=probability).reset_index(drop=True)
    return table[["seriesuid", "coordX", "coordY", "coordZ", "probability", "class"]]


def _fold_line(row: dict[str, Any], folds: int) -> str:
    how = "reused" if row["run"] == "reused" else f"{row['run']} in {row['seconds']:.0f} s"
    return (
        f"fold {row['fold']} of {folds}: test subsets {row['test_subsets']} ({row['scans']} "
        f"scans, {row['nodules']} nodules), validation {row['val_subsets']}: val AUC "
        f"{row['val_auc']:.3f}, test AUC {row['test_auc']:.3f}, threshold "
        f"{row['threshold']:.3g} ({how})"
    )


def _words(subsets: tuple[int, ...]) -> str:
    return " ".join(map(str, subsets))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _best_val_auc(metrics_csv: Path) -> float:
    """The best validation AUC of a run's ``metrics.csv`` (the monitored score)."""
    if not metrics_csv.is_file():
        return float("nan")
    values = pd.read_csv(metrics_csv).get("val_auc")
    return float("nan") if values is None or values.isna().all() else float(values.max())


def _write_csv(table: pd.DataFrame, path: Path) -> Path:
    with atomic_write(path, "w", permissions=None) as handle:
        table.to_csv(handle, index=False)
    return path


# ---- the pooled evaluation ------------------------------------------------------------------
def evaluate_pooled(
    pooled: pd.DataFrame,
    luna: Any,
    out: Path | None,
    *,
    subsets: list[int],
    n_resamples: int = 1000,
    seed: int = 0,
) -> Evaluation:
    """FROC/CPM of the pooled out-of-fold predictions over every scan of ``subsets``, and the
    candidates' classification metrics, each candidate called at its own fold's ``threshold``.

    ``pooled``: LUNA16 columns, ``probability``, ``class`` and ``threshold`` per candidate.
    """
    from nodulekit.evaluate.metrics import calibration_table, curve_bands
    from nodulekit.evaluate.run import evaluate_predictions

    columns = ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
    evaluation = evaluate_predictions(
        pooled[columns], luna.root, out=out, subsets=subsets, n_resamples=n_resamples, seed=seed
    )
    evaluation.threshold_source = "each candidate at its fold's validation threshold (folds.csv)"
    labelled = pooled[pooled["class"].isin([0, 1])]
    y = labelled["class"].to_numpy(int)
    p = labelled["probability"].to_numpy(float)
    series = labelled["seriesuid"].to_numpy(str)
    called = p >= labelled["threshold"].to_numpy(float)
    evaluation.classification = pooled_metrics(
        y, p, called, series, n_resamples=n_resamples, seed=seed
    )
    evaluation.size_bands = _size_bands(labelled, luna.annotations, called, n_resamples, seed)
    if len(np.unique(y)) == 2:
        evaluation.curves = curve_bands(y, p, series, n_resamples=min(n_resamples, 300), seed=seed)
        evaluation.curves["calibration"] = calibration_table(y, p)
    if out is not None:
        table = evaluation.classification.reset_index()
        evaluation.files.append(_write_csv(table, out / "classification.csv"))
        evaluation.files.append(_write_csv(evaluation.size_bands, out / "size_bands.csv"))
        for name, curve in evaluation.curves.items():
            evaluation.files.append(_write_csv(curve, out / f"{name}_curve.csv"))
        _add_classification_to_json(out / "metrics.json", evaluation)
    return evaluation


def pooled_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    called: np.ndarray,
    series: np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int | None = 0,
) -> pd.DataFrame:
    """`bootstrap_metrics` with a decision per candidate: the threshold metrics count
    ``called`` (each candidate at its own fold's threshold), AUC and AP rank ``probabilities``.
    Both resample the same series (one seed), so the intervals are of one bootstrap.

    Examples
    --------
    >>> y, p = np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.1])
    >>> t = np.array([0.5, 0.3, 0.6, 0.3])          # two folds' thresholds
    >>> table = pooled_metrics(y, p, p >= t, np.array(["a", "b", "c", "d"]), n_resamples=20)
    >>> table.loc[["recall", "precision", "auc"], "value"].tolist()
    [1.0, 1.0, 0.75]
    """
    from nodulekit.evaluate.metrics import bootstrap_metrics

    table = bootstrap_metrics(
        labels, probabilities, series, n_resamples=n_resamples, seed=seed, called=called
    )
    table.attrs["threshold"] = float("nan")  # one per fold: the candidates' own
    table.attrs["threshold_source"] = "each candidate at its fold's validation threshold"
    return table


def _size_bands(
    labelled: pd.DataFrame, annotations: pd.DataFrame, called: np.ndarray, n_resamples, seed
) -> pd.DataFrame:
    """Recall (at the folds' thresholds), AUC and AP per nodule size band
    (`nodulekit.evaluate.metrics.metrics_by_group` with a decision per candidate)."""
    from nodulekit.evaluate.metrics import metrics_by_group, size_band
    from nodulekit.evaluate.run import attach_diameters

    return metrics_by_group(
        labelled["class"].to_numpy(int),
        labelled["probability"].to_numpy(float),
        labelled["seriesuid"].to_numpy(str),
        size_band(attach_diameters(labelled, annotations)),
        called=called,
        n_resamples=n_resamples,
        seed=seed,
    )


def _json_of(table: pd.DataFrame, orient: str) -> Any:
    """A table as plain JSON (NaN as null) through pandas."""
    return json.loads(table.to_json(orient=orient))


def _add_classification_to_json(path: Path, evaluation: Evaluation) -> None:
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload["threshold"] = None
    payload["threshold_source"] = evaluation.threshold_source
    payload["classification"] = _json_of(evaluation.classification, "index")
    payload["size_bands"] = _json_of(evaluation.size_bands, "records")
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n", permissions=None)


def _add_folds_to_json(path: Path, folds: pd.DataFrame) -> None:
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload["folds"] = _json_of(folds, "records")
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n", permissions=None)
