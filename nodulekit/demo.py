"""The end-to-end demo: synthesise → crop cache → train → evaluate → explain → report.

Everything is written under one folder (``nodulekit-demo/`` by default)::

    nodulekit-demo/
      data/                  the synthetic LUNA16-format set (+ .nodulekit-cache/, the crops)
      run/                   metrics.csv, config.json, best.pt, last.pt, test_metrics.json
      evaluation/            predictions.csv, metric tables with series-bootstrap intervals,
                             FROC/CPM on the held-out scans, metrics.json
      figures/               training_curves.png, froc.png, roc_pr.png, calibration.png,
                             errors.png, explanations.png (the top findings' heat maps)
      report/                one HTML report: the held-out scan with the most findings
      summary.json           the figures below, the stage timings, where everything is

Each stage reuses what an earlier run left when it is still valid (the synthetic set when its
parameters match, the crop cache when its fingerprint matches), so a second run only trains
and evaluates. The demo only calls the library: `nodulekit.train`, `nodulekit.evaluate`,
`nodulekit.explain`, `nodulekit.report` and `nodulekit.viz`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: test metrics kept in the summary (names as in `nodulekit.train.metrics.binary_metrics`)
SUMMARY_KEYS = (
    "auc",
    "ap",
    "threshold",
    "recall_best",
    "precision_best",
    "f1_best",
    "recall",
    "precision",
    "f1",
    "recall_at_p85",
    "recall_lt6mm",
    "positives_lt6mm",
    "recall_6to10mm",
    "positives_6to10mm",
    "recall_gt10mm",
    "positives_gt10mm",
)


#: synthetic scans the demo makes: 6 per subset, so its validation and test splits (two
#: subsets each, `held_out_subsets`) hold 12 scans each; measured in benchmarks/demo_splits.py
DEMO_SCANS = 60
#: training epochs of the demo (`TrainConfig` keeps 10): the 60-scan set is still learning at
#: epoch 10, and 14 channels-last epochs take the time 10 took before (benchmarks/demo_epochs.py)
DEMO_EPOCHS = 14
#: a held-out split (validation, test) of the demo takes two subsets when a subset holds fewer
#: scans than this (a small synthetic set), one otherwise (LUNA16: about 89 scans per subset)
HELD_OUT_SCANS = 10


@dataclass
class DemoResult:
    """Where the demo wrote its outputs, what it measured, and how long each stage took."""

    out_dir: Path
    data_dir: Path
    run_dir: Path
    checkpoint: Path | None
    figures: list[Path]
    test_metrics: dict[str, float]
    best_val_auc: float
    best_epoch: int | None
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    threshold_source: str = ""
    evaluation_dir: Path | None = None
    evaluation_summary: str = ""
    nodule_summary: str = ""
    cpm: float = float("nan")
    cpm_ci: tuple[float, float] = (float("nan"), float("nan"))
    n_resamples: int = 0
    explained: int = 0
    explain_method: str = ""
    trust_status: str = ""
    trust_passed: bool | None = None
    report: Path | None = None

    def summary(self) -> str:
        """A short, readable summary of the run: test figures at the validation's threshold,
        the FROC/CPM of the held-out scans, the heat maps' trust status and the report."""
        from nodulekit.train.summary import operating_point, size_band_recalls

        m = {**self.test_metrics, "threshold_source": self.threshold_source}
        nan = float("nan")
        bands = size_band_recalls(m)
        evaluation = self.evaluation_dir
        lines = [
            "nodulekit demo: done",
            f"  held-out test series: ROC AUC {m.get('auc', nan):.3f}, "
            f"average precision {m.get('ap', nan):.3f}",
            f"  {operating_point(m)}",
            *(["  candidate recall by nodule size: "
               + ", ".join(f"{k} {v}" for k, v in bands.items())] if bands else []),
            f"  validation: best ROC AUC {self.best_val_auc:.3f} at epoch "
            f"{'n/a' if self.best_epoch is None else self.best_epoch + 1} (counting from 1)",
            *([f"  held-out FROC: {self.evaluation_summary}",
               f"  intervals:  95% from {self.n_resamples} series-bootstrap resamples"]
              if evaluation else []),
            *([f"  nodules:    {self.nodule_summary}"] if self.nodule_summary else []),
            *([f"  explained:  top {self.explained} held-out findings with {self.explain_method}; "
               f"trust: {self.trust_status}"] if self.explained else []),
            f"  report:     {self.report if self.report else 'not written'}",
            f"  checkpoint: {self.checkpoint}",
            f"  metrics:    {self.run_dir / 'metrics.csv'}, {self.run_dir / 'test_metrics.json'}",
            *([f"  evaluation: {evaluation}"] if evaluation else []),
            *(f"  figure:     {f}" for f in self.figures),
            "  seconds:    " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()),
            *([f"  CPU seconds: {sum(self.cpu_seconds.values()):.0f} in all (this process and "
               "its workers; on a busy machine the wall-clock seconds above run longer)"]
              if self.cpu_seconds else []),
        ]  # fmt: skip
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished workers (user + system)."""
    try:
        import resource
    except ImportError:  # Windows: this process only
        return time.process_time()
    own, workers = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


class StageClock:
    """Wall-clock and CPU seconds per stage: ``with clock.stage(name): ...``."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), _cpu_seconds()
        yield
        self.wall[name] = round(time.perf_counter() - wall, 2)
        self.cpu[name] = round(_cpu_seconds() - cpu, 2)


def _synthetic_is_current(data_dir: Path, n_scans: int, seed: int, size: str) -> bool:
    """Whether ``data_dir`` holds the set this generator version makes with these options."""
    from nodulekit.data.synthetic import GENERATOR_VERSION

    meta = data_dir / "synthetic.json"
    if not meta.is_file():
        return False
    try:
        facts = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    params = facts.get("parameters", {})
    made = (facts.get("generator_version"), params.get("n_scans"), params.get("seed"))
    return (*made, params.get("size")) == (GENERATOR_VERSION, n_scans, seed, size)


def evaluate_stage(
    checkpoint: Path,
    data_dir: Path,
    out_dir: Path,
    *,
    threshold: float | None = None,
    n_resamples: int,
    seed: int,
    device: str,
    cache_workers: int,
) -> tuple[Any, list[Path]]:
    """`nodulekit.evaluate.evaluate_checkpoint` on the checkpoint's held-out subsets, written
    to ``out_dir/evaluation``, and its figures in ``out_dir/figures``. ``threshold`` None: the
    checkpoint's validation threshold (metrics.json says ``"threshold_source": "validation"``),
    the one its run's test_metrics.json used."""
    from nodulekit.evaluate import evaluate_checkpoint
    from nodulekit.viz.evaluate import save_evaluation_figures

    evaluation = evaluate_checkpoint(
        checkpoint,
        data_dir,
        out=out_dir / "evaluation",
        threshold=threshold,
        n_resamples=n_resamples,
        seed=seed,
        device=device,
        cache_workers=cache_workers,
    )
    return evaluation, save_evaluation_figures(evaluation, out_dir / "figures")


def top_findings(predictions: Any, n: int) -> Any:
    """The ``n`` most probable marks of a predictions table (all scans together)."""
    return predictions.nlargest(max(0, int(n)), "probability").reset_index(drop=True)


def explain_stage(
    checkpoint: Path,
    data_dir: Path,
    findings: Any,
    figure_path: Path,
    *,
    method: str = "gradcam",
    device: str = "auto",
) -> Any:
    """Heat maps of ``findings`` (`nodulekit.explain.attribute`), their cascading-randomisation
    check (`nodulekit.explain.sanity_check`) and a montage figure; returns the `SanityReport`."""
    import numpy as np

    from nodulekit._files import write_bytes_atomic
    from nodulekit.data import Luna16
    from nodulekit.evaluate.scoring import crop_geometry, load_model
    from nodulekit.explain import attribute, sanity_check
    from nodulekit.preprocess import crop, normalize_hu
    from nodulekit.viz.explain import montage_figure
    from nodulekit.viz.training import figure_png

    model, config = load_model(checkpoint, device=device)
    size_mm, shape = crop_geometry(config, checkpoint=checkpoint)
    luna = Luna16(data_dir, warn_missing=False)
    scans = {uid: luna.load(uid) for uid in findings["seriesuid"].unique()}
    crops = [
        crop(scans[r.seriesuid], (r.coordX, r.coordY, r.coordZ), size_mm, shape)
        for r in findings.itertuples(index=False)
    ]
    x = np.stack([normalize_hu(c.array) for c in crops])[:, None].astype(np.float32)
    maps = attribute(model, x, method, crops=crops, crop_shape=shape, crop_size_mm=size_mm,
                     device=device)  # fmt: skip
    report = sanity_check(model, x, method)
    labels = [f"#{k + 1} p = {p:.2f}" for k, p in enumerate(findings["probability"])]
    figure = montage_figure(crops, {method: maps}, trust={method: report}, labels=labels)
    write_bytes_atomic(figure_path, figure_png(figure, dpi=110, tight=True), permissions=None)
    return report


def report_stage(
    checkpoint: Path,
    data_dir: Path,
    predictions: Any,
    out_dir: Path,
    *,
    threshold: float,
    device: str = "auto",
) -> Any:
    """`nodulekit.report.build_report` for the held-out scan with the most marks at or above
    ``threshold`` (the most probable mark breaks ties), using the evaluation's marks."""
    from nodulekit.data import Luna16
    from nodulekit.report import build_report

    ranked = predictions.assign(finding=predictions["probability"] >= threshold)
    per_scan = ranked.groupby("seriesuid").agg(
        findings=("finding", "sum"), best=("probability", "max")
    )
    uid = per_scan.sort_values(["findings", "best"], ascending=False).index[0]
    luna = Luna16(data_dir, warn_missing=False)
    return build_report(
        luna.scan_path(uid),
        checkpoint=checkpoint,
        out=out_dir / "report" / f"scan-{uid}.html",
        predictions=predictions[predictions["seriesuid"] == uid],
        evaluation=out_dir / "evaluation",
        device=device,
    )


def data_stage(
    out_dir: Path,
    data: str | Path | None,
    *,
    n_scans: int,
    seed: int,
    size: str,
    workers: int,
    progress: bool | None,
    echo: Callable[[str], None],
) -> Path:
    """Stage 1: the synthetic set under ``out_dir/data`` (made, or reused when current), or
    ``data``; refused with fewer than 3 subsets (train, validation, test)."""
    from nodulekit.data import Luna16, make_synthetic_luna16
    from nodulekit.errors import NodulekitError

    if data is None:
        data_dir = out_dir / "data"
        if _synthetic_is_current(data_dir, n_scans, seed, size):
            echo(f"[1/7] synthetic data: reusing {data_dir}")
        else:
            echo(f"[1/7] synthetic data: making {n_scans} LUNA16-format scans in {data_dir}")
            make_synthetic_luna16(data_dir, n_scans=n_scans, seed=seed, size=size,
                                  workers=workers, progress=bool(progress), overwrite=True)  # fmt: skip
    else:
        data_dir = Path(data).expanduser().resolve()
        echo(f"[1/7] data: {data_dir}")
    subsets = sorted(Luna16(data_dir, warn_missing=False).scans["subset"].unique().tolist())
    if len(subsets) < 3:
        raise NodulekitError(
            f"{data_dir}: the demo needs scans in at least 3 subsets (train, validation, test), "
            f"found {subsets}; make more scans (--scans) or download more subsets"
        )
    return data_dir


def held_out_subsets(
    scans_per_subset: dict[int, int], *, min_scans: int = HELD_OUT_SCANS
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The demo's validation and test subsets: the last subsets given, one each, or two each
    when a subset holds fewer than ``min_scans`` scans (the median subset) and eight or more
    subsets are given, so that half of them or more still train.

    ``scans_per_subset`` maps a subset to its number of scans; give only the subsets that can
    validate or test (those that hold a nodule).

    Examples
    --------
    >>> held_out_subsets({s: 6 for s in range(10)})  # the demo's 60 synthetic scans
    ((6, 7), (8, 9))
    >>> held_out_subsets({s: 89 for s in range(10)})  # LUNA16: as `nodulekit train`
    ((8,), (9,))
    >>> held_out_subsets({0: 1, 1: 1, 2: 1, 3: 1})  # too few subsets to hold out four
    ((2,), (3,))
    """
    import numpy as np

    subsets = sorted(int(s) for s in scans_per_subset)
    if len(subsets) < 3:
        raise ValueError(f"validation, test and training need three or more subsets, not {subsets}")
    small = float(np.median(list(scans_per_subset.values()))) < min_scans
    k = 2 if small and len(subsets) >= 8 else 1
    return tuple(subsets[-2 * k : -k]), tuple(subsets[-k:])


def demo_splits(data_dir: Path) -> dict[str, tuple[int, ...]]:
    """``val_subsets`` and ``test_subsets`` for `TrainConfig`: `held_out_subsets` of the
    subsets of ``data_dir`` that hold a nodule (a candidate of class 1); empty (the training
    default, `nodulekit.train.choose_splits`) when fewer than three do."""
    from nodulekit.data import Luna16

    luna = Luna16(data_dir, warn_missing=False)
    scans, candidates = luna.scans, luna.candidates
    with_nodule = set(candidates.loc[candidates["class"] == 1, "seriesuid"])
    subsets = scans.loc[scans["seriesuid"].isin(with_nodule), "subset"].unique()
    if len(subsets) < 3:
        return {}
    counts = scans[scans["subset"].isin(subsets)].groupby("subset").size()
    val, test = held_out_subsets({int(s): int(n) for s, n in counts.items()})
    return {"val_subsets": val, "test_subsets": test}


def curves_stage(result: Any, path: Path) -> Path:
    """Stage 7: the training curves as a PNG (a pyplot-free Figure, written atomically)."""
    from nodulekit._files import write_bytes_atomic
    from nodulekit.viz.training import figure_png, training_curves_figure

    figure = training_curves_figure(result.metrics, best_epoch=result.best_epoch)
    return write_bytes_atomic(path, figure_png(figure, dpi=110, tight=True), permissions=None)


def _demo_result(
    out_dir: Path,
    data_dir: Path,
    result: Any,
    figures: list[Path],
    clock: StageClock,
    evaluation: Any,
    n_resamples: int,
    findings: Any,
    sanity: Any,
    report: Any,
) -> DemoResult:
    """What the demo made and measured, from each stage's result."""
    return DemoResult(
        out_dir=out_dir,
        data_dir=data_dir,
        run_dir=Path(result.run_dir),
        checkpoint=result.best_checkpoint,
        figures=figures,
        test_metrics={
            k: float(result.test_metrics[k]) for k in SUMMARY_KEYS if k in result.test_metrics
        },
        threshold_source=str(result.test_metrics.get("threshold_source", "")),
        best_val_auc=float(result.best_val_auc),
        best_epoch=result.best_epoch,
        seconds=clock.wall,
        cpu_seconds=clock.cpu,
        evaluation_dir=out_dir / "evaluation",
        evaluation_summary=evaluation.summary(),
        nodule_summary=evaluation.nodule_recall.summary() if evaluation.nodule_recall else "",
        cpm=float(evaluation.froc.cpm),
        cpm_ci=tuple(float(v) for v in evaluation.froc.cpm_ci),
        n_resamples=n_resamples,
        explained=len(findings),
        explain_method="gradcam" if len(findings) else "",
        trust_status=sanity.status if sanity is not None else "",
        trust_passed=None if sanity is None else bool(sanity.passed),
        report=report.path,
    )


def _splits_text(config: Any) -> str:
    """``", validating on subsets 6, 7, testing on 8, 9"`` (empty when train chooses)."""
    if config.val_subsets is None or config.test_subsets is None:
        return ""
    val, test = (
        ", ".join(map(str, s)) or "none" for s in (config.val_subsets, config.test_subsets)
    )
    return f", validating on subsets {val}, testing on {test}"


def run_demo(
    out_dir: str | Path = "nodulekit-demo",
    *,
    data: str | Path | None = None,
    n_scans: int = DEMO_SCANS,
    seed: int = 0,
    epochs: int = DEMO_EPOCHS,
    threads: int = 0,
    workers: int = 2,
    size: str = "small",
    device: str = "auto",
    train_options: dict[str, Any] | None = None,
    n_resamples: int = 200,
    explain_top: int = 6,
    progress: bool | None = None,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Run the whole kit once on the built-in synthetic data (or on ``data``).

    Parameters
    ----------
    out_dir : path
        Folder for every output (created).
    data : path, optional
        A LUNA16-layout root to use instead of making the synthetic set.
    n_scans, seed : int
        Size and seed of the synthetic set, spread over up to 10 subsets (60 scans: six per
        subset). The last subsets on disk that hold nodules are the held-out test and the ones
        before them validate, the rest train (`held_out_subsets`): two subsets each on a small
        set (subsets 6, 7 validate and 8, 9 test the 60 synthetic scans: 12 scans each, 22-32
        nodules in the test split for seeds 0-2), one each on a full LUNA16 root (8 and 9). ``train_options`` may set
        ``val_subsets`` and ``test_subsets``.
    epochs : int
        Training epochs (`DEMO_EPOCHS`, 14; `nodulekit train` defaults to 10).
    threads : int
        torch CPU threads (0: torch's default).
    workers : int
        Processes that draw the synthetic scans and build the crop cache (unless
        ``train_options`` sets ``cache_workers``).
    size : {"small", "full", "tiny"}
        Size of the synthetic scans.
    train_options : dict, optional
        More `TrainConfig` options (``{"samples_per_epoch": 256}``...).
    n_resamples : int
        Series-bootstrap resamples behind the evaluation's 95 % intervals (0: none).
    explain_top : int
        Held-out findings (the most probable marks) explained with Grad-CAM and checked by
        cascading randomisation (0: no explanation stage).
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``...
    progress : bool, optional
        Progress bars while making data and crops (default: none).
    quiet : bool
        No line per training epoch (the stage lines and the summary are still echoed).
    echo : callable
        Where the stage lines and the summary go.

    The training run folder ``out_dir/run`` belongs to the demo: a second demo in the same
    ``out_dir`` trains again into it (``overwrite=True``), reusing the data and the crops.
    """
    from nodulekit._files import check_writable, write_text_atomic
    from nodulekit.train import TrainConfig, train
    from nodulekit.train.pipeline import open_or_build_cache

    check_writable(out_dir, "--out")  # before minutes of work, not after
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (out_dir / "figures").mkdir(exist_ok=True, mode=0o700)
    clock = StageClock()

    with clock.stage("synthesise"):
        data_dir = data_stage(out_dir, data, n_scans=n_scans, seed=seed, size=size,
                              workers=workers, progress=progress, echo=echo)  # fmt: skip
    options = {**demo_splits(data_dir), **(train_options or {})}
    config = TrainConfig(
        data=str(data_dir), out=str(out_dir / "run"), seed=seed, device=device,
        progress=progress, threads=threads, cache_workers=workers, quiet=quiet,
        overwrite=True,  # out_dir/run is the demo's own run folder
        **{"epochs": epochs, **options},
    )  # fmt: skip
    with clock.stage("cache"):
        echo("[2/7] crop cache: cropping every candidate around its world position")
        cache = open_or_build_cache(config, progress=bool(progress))
    echo(f"      {len(cache)} crops of {config.crop_size_mm:g} mm, shape {config.crop_shape}")
    with clock.stage("train"):
        echo(f"[3/7] training {config.model!r} for up to {config.epochs} epochs"
             + _splits_text(config))  # fmt: skip
        result = train(config)

    checkpoint = Path(result.best_checkpoint or Path(result.run_dir) / "last.pt")
    with clock.stage("evaluate"):  # at the checkpoint's validation threshold, as test_metrics
        echo(f"[4/7] evaluating on the held-out scans ({n_resamples} bootstrap resamples)")
        evaluation, figures = evaluate_stage(
            checkpoint, data_dir, out_dir, n_resamples=n_resamples,
            seed=seed, device=device, cache_workers=config.cache_workers,
        )  # fmt: skip
    threshold = evaluation.threshold
    predictions = evaluation.predictions  # what evaluation/predictions.csv holds
    findings, sanity = top_findings(predictions, explain_top), None
    with clock.stage("explain"):
        if len(findings):
            echo(f"[5/7] explaining the top {len(findings)} held-out findings (Grad-CAM)")
            figures.append(out_dir / "figures" / "explanations.png")
            sanity = explain_stage(checkpoint, data_dir, findings, figures[-1], device=device)
    with clock.stage("report"):
        echo("[6/7] report of the held-out scan with the most findings")
        report = report_stage(
            checkpoint, data_dir, predictions, out_dir, threshold=threshold, device=device
        )
    with clock.stage("summary"):
        echo("[7/7] figures and summary")
        curves = curves_stage(result, out_dir / "figures" / "training_curves.png")

    demo = _demo_result(out_dir, data_dir, result, [curves, *figures], clock, evaluation,
                        n_resamples, findings, sanity, report)  # fmt: skip
    write_text_atomic(out_dir / "summary.json", json.dumps(demo.to_dict(), indent=2) + "\n",
                      permissions=None)  # fmt: skip
    echo(demo.summary())
    return demo
