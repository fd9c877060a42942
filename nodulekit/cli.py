"""The ``nodulekit`` command. Each sub-command is a thin shell over a library function;
library imports happen inside the commands so that ``nodulekit --help`` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nodulekit._cmdline import OneLineErrorsGroup

app = typer.Typer(
    cls=OneLineErrorsGroup,  # an OSError, RuntimeError or NodulekitError is one line; --debug
    name="nodulekit",
    help=(
        "Learn, debug and explain pulmonary-nodule detection on LUNA16 chest CT.\n\n"
        "Start with `nodulekit demo` (synthetic data, a few CPU minutes), or "
        "`nodulekit synth OUT_DIR` to make a LUNA16-format data set to explore."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings reflow: single newlines are spaces
)


def _fail(error: Exception) -> typer.Exit:
    """Print a nodulekit error as one readable line and exit with status 2."""
    typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _version(value: bool) -> None:
    if value:
        from nodulekit import __version__

        typer.echo(f"nodulekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the full traceback of an error instead of one line (also accepted after "
            "the command, or NODULEKIT_DEBUG=1).",
        ),
    ] = False,
) -> None:
    """nodulekit command line."""


# ---- commands -------------------------------------------------------------------------
# (each imports its library function inside, and turns NodulekitError into `_fail`)


@app.command()
def info(
    path: Annotated[
        Path, typer.Argument(help="A .mhd/.nii(.gz) file, a DICOM folder, or a LUNA16 root.")
    ],
) -> None:
    """Describe a scan (size, spacing, origin, direction, HU range, its annotated nodules in world
    and voxel coordinates) or summarise a LUNA16 root."""
    from nodulekit.data.info import describe_scan_file
    from nodulekit.data.luna16 import Luna16, is_luna16_root
    from nodulekit.errors import NodulekitError

    try:
        if is_luna16_root(path):
            summary = Luna16(path, warn_missing=False).summary()
            width = max(map(len, summary))
            for key, value in summary.items():
                typer.echo(f"{key.replace('_', ' '):<{width}}  {value}")
        else:
            typer.echo(describe_scan_file(path))
    except NodulekitError as e:
        raise _fail(e) from e


@app.command()
def download(
    out_dir: Annotated[Path, typer.Argument(help="The LUNA16 root to fill (created if needed).")],
    subsets: Annotated[
        str, typer.Option(help="Subsets to fetch: 'all', 'none', '0,1' or '0-3' (~7 GB each).")
    ] = "all",
    no_tables: Annotated[
        bool, typer.Option("--no-tables", help="Skip annotations, candidates and the rest.")
    ] = False,
    lung_masks: Annotated[
        bool, typer.Option("--lung-masks", help="Also fetch seg-lungs-LUNA16 (lung masks).")
    ] = False,
    no_extract: Annotated[
        bool, typer.Option("--no-extract", help="Keep the zip files; do not unzip them.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and sizes; download nothing.")
    ] = False,
    base_url: Annotated[
        str, typer.Option(help="Zenodo server (a mirror, or a local test server).")
    ] = "https://zenodo.org",
) -> None:
    """Download LUNA16 from Zenodo: shows sizes first, resumes broken transfers, checks md5,
    extracts safely into the LUNA16 layout (subsetN/UID.mhd + .raw, annotations.csv...)."""
    from nodulekit.data.download import download_luna16, parse_subsets
    from nodulekit.errors import NodulekitError

    try:
        chosen = parse_subsets(subsets)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--subsets") from e
    try:
        download_luna16(
            out_dir,
            subsets=chosen,
            tables=not no_tables,
            lung_masks=lung_masks,
            extract=not no_extract,
            base_url=base_url,
            dry_run=dry_run,
        )
    except NodulekitError as e:
        raise _fail(e) from e


@app.command()
def deid(
    in_dir: Annotated[Path, typer.Argument(help="Folder of DICOM files (searched recursively).")],
    out_dir: Annotated[Path, typer.Argument(help="New or empty folder for the output.")],
    salt: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option(
            envvar="NODULEKIT_DEID_SALT",
            show_envvar=True,
            help="Secret (16+ characters) keying pseudonyms, UIDs and date shifts; prefer the "
            "environment variable, which stays out of your shell history.",
        ),
    ] = None,
    random_salt: Annotated[
        bool,
        typer.Option("--random-salt", help="One-off run: pseudonyms and UIDs not reproducible."),
    ] = False,
    skip_broken: Annotated[
        bool,
        typer.Option(
            "--skip-broken",
            help="Leave out (and list) truncated or corrupt DICOM files instead of refusing.",
        ),
    ] = False,
) -> None:
    """De-identify DICOM files (PS3.15 basic profile): names and IDs replaced by a pseudonym,
    identifiers and private tags removed, UIDs remapped, dates shifted per patient; pixels and
    geometry untouched. Writes a log of what changed, never the values."""
    from nodulekit.data.deid import deidentify_folder
    from nodulekit.errors import NodulekitError

    try:
        report = deidentify_folder(
            in_dir,
            out_dir,
            salt=salt,
            random_salt=random_salt,
            broken="skip" if skip_broken else "error",
        )
    except NodulekitError as e:
        raise _fail(e) from e
    typer.echo(str(report))
    if report.files_written == 0:
        raise _fail(
            NodulekitError(
                f"{in_dir}: no DICOM image found (searched recursively); give the folder "
                "that holds the .dcm files"
            )
        )


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write (empty or new).")],
    scans: Annotated[int, typer.Option("--scans", "-n", help="Number of scans.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 0,
    size: Annotated[
        str, typer.Option(help="small (256x256, seconds per scan), full (512x512), or tiny.")
    ] = "small",
    subsets: Annotated[
        Optional[int],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option(help="Number of subsetN folders (default: min(scans, 10))."),
    ] = None,
    negatives_per_nodule: Annotated[
        int, typer.Option(help="Class-0 candidate rows per nodule.")
    ] = 30,
    nodules_per_scan: Annotated[
        tuple[int, int],
        typer.Option(
            metavar="LOW HIGH", help="Nodules (>= 3 mm) in a scan that has some, from LOW to HIGH."
        ),
    ] = (2, 5),
    nodule_free_fraction: Annotated[
        float,
        typer.Option(
            help="Share of scans without any nodule, in [0, 1) (LUNA16: 287 of 888).",
            show_default="1/3",
        ),
    ] = 1 / 3,
    workers: Annotated[int, typer.Option(help="Processes to draw scans in.")] = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a synthetic set already in OUT_DIR.")
    ] = False,
) -> None:
    """Write a synthetic chest-CT data set in the LUNA16 layout (scans, annotations,
    candidates, lung and nodule masks), to run everything without the LUNA16 download (about 70 GB zipped)."""
    import json
    import time

    from nodulekit.data.synthetic import make_synthetic_luna16
    from nodulekit.errors import NodulekitError

    start = time.perf_counter()
    try:
        root = make_synthetic_luna16(
            out_dir,
            n_scans=scans,
            seed=seed,
            size=size,
            n_subsets=subsets,
            negatives_per_nodule=negatives_per_nodule,
            nodules_per_scan=nodules_per_scan,
            nodule_free_fraction=nodule_free_fraction,
            workers=workers,
            overwrite=overwrite,
        )
    except (NodulekitError, ValueError) as e:
        raise _fail(e) from e
    meta = json.loads((root / "synthetic.json").read_text(encoding="utf-8"))
    counts = meta["counts"]
    n_subsets = meta["parameters"]["n_subsets"]
    size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
    typer.echo(f"wrote {root} in {time.perf_counter() - start:.1f} s ({size_mb:.0f} MiB)")
    typer.echo(
        f"  subset0..subset{n_subsets - 1}/   {counts['scans']} scans (.mhd + .raw), "
        f"{counts['scans_without_nodules']} without nodules"
    )
    typer.echo(f"  annotations.csv           {counts['nodules']} nodules")
    typer.echo(f"  annotations_excluded.csv  {counts['excluded']} findings")
    typer.echo(
        f"  candidates_V2.csv         {counts['candidates']} rows "
        f"({counts['candidates_positive']} class 1, {counts['candidates_negative']} class 0)"
    )
    typer.echo("  seriesuids.csv, seg-lungs-LUNA16/, seg-nodules-synthetic/, synthetic.json")


def _register_train() -> None:
    """`nodulekit train`: the same command as ``python -m nodulekit.train``, one option per
    field of `TrainConfig` (generated, so the two cannot drift)."""
    from nodulekit.train.__main__ import TrainCommand, make_train_command

    app.command("train", cls=TrainCommand)(make_train_command())


_register_train()


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for every output.")] = Path("nodulekit-demo"),
    scans: Annotated[int, typer.Option(help="Synthetic scans to make (over 10 subsets).")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the data and the training.")] = 0,
    epochs: Annotated[int, typer.Option(help="Training epochs (nodulekit train's are 10).")] = 14,
    device: Annotated[str, typer.Option(help="auto (CUDA, MPS, CPU), cpu, cuda...")] = "auto",
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: torch's default).")] = 0,
    data: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Use this LUNA16-layout root instead of making synthetic data."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the summary, no line per epoch.")
    ] = False,
    resamples: Annotated[
        int, typer.Option(help="Series-bootstrap resamples behind the 95% intervals.")
    ] = 200,
) -> None:
    """Run the whole kit once: synthesise LUNA16-format data, cache crops, train the default
    3D CNN, evaluate it on held-out series (FROC/CPM with intervals), explain its top findings,
    write an HTML report of one scan, and print the figures and where everything is."""
    import sys

    from nodulekit.demo import run_demo
    from nodulekit.errors import NodulekitError

    try:
        run_demo(
            out,
            data=data,
            n_scans=scans,
            seed=seed,
            epochs=epochs,
            device=device,
            threads=threads,
            n_resamples=resamples,
            progress=sys.stderr.isatty() and not quiet,
            quiet=quiet,
            echo=typer.echo,
        )
    except NodulekitError as e:
        raise _fail(e) from e


# ---- evaluation (nodulekit.evaluate) -------------------------------------------------


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="LUNA16 root: annotations, excluded, seriesuids.")],
    checkpoint: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option(help="A run's best.pt: score the held-out subsets' candidates with it."),
    ] = None,
    predictions: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="A LUNA16 submission CSV (seriesuid,coordX,coordY,coordZ,probability)."),
    ] = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Folder for predictions, tables and figures (default: print only)."),
    ] = None,
    subsets: Annotated[
        Optional[list[int]],  # noqa: UP045
        typer.Option(
            help="Evaluate the scans of these subsets (repeat the option); default: "
            "the run's test subsets (required when it held none out), or every series of "
            "seriesuids.csv (--predictions)."
        ),
    ] = None,
    crop_size_mm: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(help="Crop edge (mm); must match the checkpoint's."),
    ] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples of scans.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto (CUDA, MPS, CPU), cpu, cuda...")] = "auto",
    threshold: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            help="Probability threshold of accuracy/recall/F1 (--checkpoint); default: the "
            "validation's best-F1 threshold of the checkpoint's epoch, as in test_metrics.json."
        ),
    ] = None,
) -> None:
    """Evaluate a checkpoint (--checkpoint) or any submission (--predictions): LUNA16 FROC
    and CPM with bootstrap intervals, classification metrics, figures, the error gallery."""
    from nodulekit.errors import NodulekitError
    from nodulekit.evaluate.run import evaluate_checkpoint, evaluate_predictions

    if (checkpoint is None) == (predictions is None):
        raise typer.BadParameter("give --checkpoint or --predictions (one of them)")
    if threshold is not None and predictions is not None:
        raise typer.BadParameter("--threshold applies to --checkpoint (a submission has no labels)")
    try:
        if checkpoint is not None:
            result = evaluate_checkpoint(
                checkpoint, data, out=out, subsets=subsets, crop_size_mm=crop_size_mm,
                n_resamples=resamples, seed=seed, device=device, threshold=threshold,
            )  # fmt: skip
        else:
            result = evaluate_predictions(
                predictions, data, out=out, subsets=subsets, n_resamples=resamples, seed=seed
            )
        if out is not None:
            from nodulekit.viz.evaluate import save_evaluation_figures

            save_evaluation_figures(result, out)
    except (NodulekitError, ValueError) as e:
        raise _fail(e) from e
    if result.classification is not None:
        from nodulekit.evaluate.metrics import format_table

        typer.echo(format_table(result.classification))
        typer.echo(f"threshold {result.threshold:.4g} ({result.threshold_source})")
    typer.echo(result.summary())
    if result.nodule_recall is not None:  # per nodule, where the classification is per candidate
        typer.echo(result.nodule_recall.summary())
    if out is not None:
        typer.echo(f"wrote {out}/ (metrics.json, froc.csv, froc.png, errors.csv, ...)")


@app.command()
def detect(
    scan: Annotated[
        Path, typer.Argument(help="A .mhd/.nii(.gz) file or DICOM folder; or a LUNA16 root.")
    ],
    checkpoint: Annotated[Path, typer.Option(help="A trained checkpoint (best.pt).")],
    out: Annotated[Path, typer.Option(help="The LUNA16 submission CSV to write.")],
    max_candidates: Annotated[int, typer.Option(help="Blob candidates per scan.")] = 200,
    workers: Annotated[int, typer.Option(help="Processes (a LUNA16 root only).")] = 1,
    candidates: Annotated[
        str, typer.Option(help="Candidate source: blob (LoG blobs) or unet (a segmentation).")
    ] = "blob",
    segmenter: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="With --candidates unet: a `train --task segment` best.pt."),
    ] = None,
    subsets: Annotated[
        Optional[list[int]],  # noqa: UP045
        typer.Option(help="Only these subsets (a LUNA16 root only; repeat the option)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA, MPS, CPU), cpu, cuda...")] = "auto",
) -> None:
    """Find nodules in a scan without a candidates file: blob candidates in the lungs, scored
    by a checkpoint, written as seriesuid,coordX,coordY,coordZ,probability (no patient data).
    On a LUNA16 root: every scan, in parallel, resumable (under torchrun: one shard per rank)."""
    import sys

    from nodulekit.data.luna16 import is_luna16_root
    from nodulekit.errors import NodulekitError

    if candidates not in ("blob", "unet") or (candidates == "unet") != (segmenter is not None):
        raise typer.BadParameter(
            "--candidates is blob, or unet with --segmenter SEG.pt (a `train --task segment` "
            f"checkpoint); got --candidates {candidates} and --segmenter {segmenter}"
        )
    try:
        if is_luna16_root(scan):
            from nodulekit.evaluate.detect_all import detect_dataset

            detect_dataset(
                scan, checkpoint, out, subsets=subsets, workers=workers, device=device,
                max_candidates=max_candidates, progress=sys.stderr.isatty(), segmenter=segmenter,
            )  # fmt: skip
            typer.echo(f"wrote {out}")
            return
        from nodulekit.data import read_scan
        from nodulekit.evaluate.detect import detect_scan
        from nodulekit.evaluate.predictions import write_predictions

        marks = detect_scan(
            read_scan(scan), checkpoint, max_candidates=max_candidates, device=device,
            candidates=candidates, segmenter=segmenter,
        )  # fmt: skip
        write_predictions(marks, out)
    except NodulekitError as e:
        raise _fail(e) from e
    top = marks.head(5)
    typer.echo(f"wrote {out}: {len(marks)} marks; the 5 most probable:")
    for row in top.itertuples(index=False):
        typer.echo(
            f"  ({row.coordX:.1f}, {row.coordY:.1f}, {row.coordZ:.1f}) mm  "
            f"p={row.probability:.3f}  ~{row.diameter_mm:.0f} mm"
        )


@app.command("lidc-annotations")
def lidc_annotations(
    series_dir: Annotated[
        Path, typer.Argument(help="An LIDC-IDRI DICOM series folder with its reader XML.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write.")],
    level: Annotated[
        float, typer.Option(help="Agreement level of the consensus masks (0.5: half the readers).")
    ] = 0.5,
    min_readers: Annotated[
        int, typer.Option(help="Keep nodules marked by at least this many readers (LUNA16: 3).")
    ] = 1,
) -> None:
    """Write the readers' consensus nodules of an LIDC-IDRI series as a LUNA16-style table
    (seriesuid, coordX, coordY, coordZ, diameter_mm, n_readers, volume and mean ratings)."""
    from nodulekit._files import write_text_atomic
    from nodulekit.data.lidc import lidc_annotations as build
    from nodulekit.errors import NodulekitError

    try:
        table = build(series_dir, level=level, min_readers=min_readers)
    except (NodulekitError, OSError) as e:
        raise _fail(e) from e
    write_text_atomic(out, table.to_csv(index=False), permissions=None)
    typer.echo(f"wrote {out}: {len(table)} nodule(s) marked by >= {min_readers} reader(s)")
    for row in table.itertuples():
        typer.echo(
            f"  ({row.coordX:.1f}, {row.coordY:.1f}, {row.coordZ:.1f}) mm, "
            f"{row.diameter_mm:.1f} mm, {row.n_readers} readers"
        )


# ---- for the clinician (nodulekit.report) ---------------------------------------------


@app.command()
def report(
    scan: Annotated[Path, typer.Argument(help="A .mhd or .nii(.gz) file, or a DICOM folder.")],
    checkpoint: Annotated[Path, typer.Option(help="The classifier's checkpoint (best.pt).")],
    out: Annotated[Path, typer.Option(help="The .html file to write.")],
    predictions: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option(help="Marks already made (nodulekit detect's CSV); default: detect."),
    ] = None,
    segmentation: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="A U-Net checkpoint: diameters from its segmentation."),
    ] = None,
    lobes: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="A lobe label map on the scan (1-5: LUL, LLL, RUL, RML, RLL)."),
    ] = None,
    evaluation: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="The --out folder of nodulekit evaluate (default: evaluation/ "
            "beside the checkpoint)."
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Findings listed.")] = 10,
    explained: Annotated[int, typer.Option(help="Findings shown with their heat maps.")] = 5,
    method: Annotated[
        str, typer.Option(help="Heat-map method (gradcam, occlusion, ...).")
    ] = "gradcam",
    sanity: Annotated[
        bool, typer.Option(help="Sanity-check the heat maps (cascading randomisation).")
    ] = True,
    device: Annotated[str, typer.Option(help="auto (CUDA, MPS, CPU), cpu, cuda...")] = "auto",
) -> None:
    """Write one self-contained HTML report of a scan (opens offline): findings ranked with
    position, side, size and probability; key slices with and without the heat map and its
    trust status; the model's validation figures; intended use and limits. No patient data."""
    from nodulekit.errors import NodulekitError
    from nodulekit.report import build_report

    if out.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"{out}: the report is an HTML file; end the name with .html")
    try:
        result = build_report(
            scan, checkpoint=checkpoint, out=out, predictions=predictions,
            segmentation=segmentation, lobes=lobes, evaluation=evaluation, top=top,
            explained=explained, method=method, sanity=sanity, device=device,
        )  # fmt: skip
    except (NodulekitError, ValueError) as e:
        raise _fail(e) from e
    typer.echo(f"wrote {result.path}: {len(result.findings)} finding(s); {result.method} heat "
               f"maps: {result.trust_status}")  # fmt: skip


@app.command("app")
def app_command(
    root: Annotated[
        Path,
        typer.Argument(help="A LUNA16 root (with --checkpoint) or a `nodulekit demo` folder."),
    ] = Path("nodulekit-demo"),
    checkpoint: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option(help="The classifier's checkpoint (default: ROOT/run/best.pt)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8866,
    reports: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Folder for the reports made (default: ./nodulekit-reports)."),
    ] = None,
) -> None:
    """Serve the explanation explorer as a web page with no code on screen (Voila): pick a
    scan, see its findings ranked, scroll the slices with the heat map, read the trust
    status, download the report. Open the address it prints; Ctrl-C stops it."""
    from nodulekit.errors import NodulekitError
    from nodulekit.report.app import resolve_inputs, serve

    try:
        inputs = resolve_inputs(root, checkpoint)
        typer.echo(f"serving {inputs.data} scored by {inputs.checkpoint.name} on "
                   f"http://{host}:{port}/ (Ctrl-C stops)")  # fmt: skip
        code = serve(root, checkpoint=checkpoint, host=host, port=port, reports=reports)
    except NodulekitError as e:
        raise _fail(e) from e
    raise typer.Exit(code=code)


# ---- cross-validation (nodulekit.evaluate.crossval) -----------------------------------


@app.command()
def crossval(
    data: Annotated[
        Path, typer.Argument(help="LUNA16-layout root (subsetN/, candidates_V2.csv...).")
    ],
    out: Annotated[
        Path,
        typer.Option(help="Folder for the fold-K/ runs, folds.csv, predictions.csv, evaluation/."),
    ],
    folds: Annotated[
        int, typer.Option(help="Folds: 3 to the number of subsets on disk (10 on full LUNA16).")
    ] = 10,
    epochs: Annotated[
        Optional[int],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option(help="Maximum epochs of each fold (default: nodulekit train's)."),
    ] = None,
    samples_per_epoch: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="Training samples per epoch (default: nodulekit train's)."),
    ] = None,
    model: Annotated[str, typer.Option(help="Model name (cnn, resnet, resnet18).")] = "cnn",
    batch_size: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="Batch size (default: nodulekit train's)."),
    ] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: torch's default).")] = 0,
    device: Annotated[str, typer.Option(help="auto (CUDA, MPS, CPU), cpu, cuda...")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of every fold's training.")] = 0,
    cache_workers: Annotated[int, typer.Option(help="Processes that build the crop cache.")] = 2,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples of scans.")] = 1000,
    figures: Annotated[
        bool, typer.Option(help="Draw froc.png, roc_pr.png... into OUT/evaluation/.")
    ] = True,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Train every fold again when OUT holds a cross-validation with other options.",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No line per epoch (one line per fold stays).")
    ] = False,
) -> None:
    """Cross-validate by subset as LUNA16 does: fold k tests on subset k, validates on the
    next, trains on the rest; every scan is scored once by the fold that held it out, and the
    pooled predictions get one FROC/CPM (with intervals) over all scans. Finished folds are
    reused on a rerun, an interrupted one continues from its last.pt. Costs FOLDS training runs."""
    import sys

    from nodulekit.evaluate.crossval import cross_validate
    from nodulekit.train.config import TrainConfig

    given = {"epochs": epochs, "samples_per_epoch": samples_per_epoch, "batch_size": batch_size}
    config = TrainConfig(
        data=str(data), out=str(out), model=model, threads=threads, device=device, seed=seed,
        cache_workers=cache_workers, **{k: v for k, v in given.items() if v is not None},
    )  # fmt: skip
    result = cross_validate(
        config, folds=folds, out=out, n_resamples=resamples, seed=0, overwrite=overwrite,
        progress=sys.stderr.isatty() and not quiet, quiet=quiet, echo=typer.echo,
    )  # fmt: skip
    if figures:
        from nodulekit.viz.evaluate import save_evaluation_figures

        save_evaluation_figures(result.evaluation, out / "evaluation")
    typer.echo(result.summary())


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
