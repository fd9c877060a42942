"""The end-to-end demo: synthesise → crop cache → train → held-out test → summary.

Everything is written under one folder (``nodulekit-demo/`` by default)::

    nodulekit-demo/
      data/                  the synthetic LUNA16-format set (+ .nodulekit-cache/, the crops)
      run/                   metrics.csv, config.json, best.pt, last.pt, test_metrics.json
      figures/               training_curves.png
      summary.json           the figures below, the stage timings, where everything is

Each stage reuses what an earlier run left when it is still valid (the synthetic set when its
parameters match, the crop cache when its fingerprint matches), so a second run only trains.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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
    "nodules_lt6mm",
    "recall_6to10mm",
    "nodules_6to10mm",
    "recall_gt10mm",
    "nodules_gt10mm",
)


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
    threshold_source: str = ""

    def summary(self) -> str:
        """A short, readable summary of the run: test figures at the validation's threshold."""
        from nodulekit.train.__main__ import operating_point, size_band_recalls

        m = {**self.test_metrics, "threshold_source": self.threshold_source}
        nan = float("nan")
        bands = size_band_recalls(m)
        lines = [
            "nodulekit demo: done",
            f"  held-out test series: ROC AUC {m.get('auc', nan):.3f}, "
            f"average precision {m.get('ap', nan):.3f}",
            f"  {operating_point(m)}",
            *(["  recall by nodule size: " + ", ".join(f"{k} {v}" for k, v in bands.items())]
              if bands else []),
            f"  validation: best ROC AUC {self.best_val_auc:.3f} at epoch "
            f"{'n/a' if self.best_epoch is None else self.best_epoch + 1} (counting from 1)",
            f"  checkpoint: {self.checkpoint}",
            f"  metrics:    {self.run_dir / 'metrics.csv'}, {self.run_dir / 'test_metrics.json'}",
            *(f"  figure:     {f}" for f in self.figures),
            "  seconds:    " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()),
        ]  # fmt: skip
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


def _synthetic_is_current(data_dir: Path, n_scans: int, seed: int, size: str) -> bool:
    meta = data_dir / "synthetic.json"
    if not meta.is_file():
        return False
    try:
        params = json.loads(meta.read_text()).get("parameters", {})
    except json.JSONDecodeError:
        return False
    return (params.get("n_scans"), params.get("seed"), params.get("size")) == (n_scans, seed, size)


def run_demo(
    out_dir: str | Path = "nodulekit-demo",
    *,
    data: str | Path | None = None,
    n_scans: int = 30,
    seed: int = 0,
    epochs: int | None = None,
    threads: int = 0,
    size: str = "small",
    device: str = "auto",
    train_options: dict[str, Any] | None = None,
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
        Size and seed of the synthetic set, spread over up to 10 subsets (30 scans: three
        per subset). The last subset on disk is the held-out test, the one before it validates,
        the rest train (subsets 8 and 9 on a full LUNA16 root).
    epochs : int, optional
        Training epochs (default: `TrainConfig`'s).
    threads : int
        torch CPU threads (0: torch's default).
    size : {"small", "full", "tiny"}
        Size of the synthetic scans.
    train_options : dict, optional
        More `TrainConfig` options (``{"samples_per_epoch": 256}``...).
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
    from nodulekit.data import Luna16, make_synthetic_luna16
    from nodulekit.errors import NodulekitError
    from nodulekit.train import TrainConfig, train
    from nodulekit.train.__main__ import check_writable
    from nodulekit.train.pipeline import open_or_build_cache
    from nodulekit.viz.training import training_curves_figure

    check_writable(out_dir, "--out")  # before minutes of work, not after
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    if data is None:
        data_dir = out_dir / "data"
        if _synthetic_is_current(data_dir, n_scans, seed, size):
            echo(f"[1/4] synthetic data: reusing {data_dir}")
        else:
            echo(f"[1/4] synthetic data: making {n_scans} LUNA16-format scans in {data_dir}")
            make_synthetic_luna16(
                data_dir,
                n_scans=n_scans,
                seed=seed,
                size=size,
                progress=bool(progress),
                overwrite=True,
            )
    else:
        data_dir = Path(data).expanduser().resolve()
        echo(f"[1/4] data: {data_dir}")
    seconds["synthesise"] = time.perf_counter() - t0

    subsets = sorted(Luna16(data_dir, warn_missing=False).scans["subset"].unique().tolist())
    if len(subsets) < 3:
        raise NodulekitError(
            f"{data_dir}: the demo needs scans in at least 3 subsets (train, validation, test), "
            f"found {subsets}; make more scans (--scans) or download more subsets"
        )
    options: dict[str, Any] = {
        "data": str(data_dir),
        "out": str(out_dir / "run"),
        "seed": seed,
        "device": device,
        "progress": progress,
        "threads": threads,
        "quiet": quiet,
        "overwrite": True,  # out_dir/run is the demo's own run folder
    }
    if epochs is not None:
        options["epochs"] = epochs
    options.update(train_options or {})
    config = TrainConfig(**options)

    t0 = time.perf_counter()
    echo("[2/4] crop cache: cropping every candidate around its world position")
    cache = open_or_build_cache(config, progress=bool(progress))
    seconds["cache"] = time.perf_counter() - t0
    echo(f"      {len(cache)} crops of {config.crop_size_mm:g} mm, shape {config.crop_shape}")

    t0 = time.perf_counter()
    echo(f"[3/4] training {config.model!r} for up to {config.epochs} epochs")
    result = train(config)
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    echo("[4/4] figures and summary")
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(exist_ok=True, mode=0o700)
    figure = training_curves_figure(result.metrics, best_epoch=result.best_epoch)
    curves = figures_dir / "training_curves.png"
    figure.savefig(curves, dpi=110, bbox_inches="tight")  # a pyplot-free Figure: nothing to close
    seconds["report"] = time.perf_counter() - t0

    demo = DemoResult(
        out_dir=out_dir,
        data_dir=data_dir,
        run_dir=Path(result.run_dir),
        checkpoint=result.best_checkpoint,
        figures=[curves],
        test_metrics={
            k: float(result.test_metrics[k]) for k in SUMMARY_KEYS if k in result.test_metrics
        },
        threshold_source=str(result.test_metrics.get("threshold_source", "")),
        best_val_auc=float(result.best_val_auc),
        best_epoch=result.best_epoch,
        seconds={k: round(v, 2) for k, v in seconds.items()},
    )
    (out_dir / "summary.json").write_text(json.dumps(demo.to_dict(), indent=2) + "\n")
    echo(demo.summary())
    return demo
