"""Candidate recall against candidates per scan: the blob detector beside the U-Net.

Run: ``python benchmarks/compare_candidates.py --segmenter RUN/best.pt --data ROOT
[--subsets 9] [--out DIR]``; with ``NODULEKIT_SAMPLE_DIR`` set, the real sample scan is compared
too. Writes ``DIR/candidate_recall.csv`` (one row per data set, source and budget) and
``DIR/candidate_recall.png``, and prints the table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd


def main() -> None:
    from nodulekit.data import Luna16
    from nodulekit.evaluate.segment_candidates import compare_candidate_sources
    from nodulekit.evaluate.segmentation import load_segmenter
    from nodulekit.viz.segmentation import candidate_recall_figure

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmenter", required=True)
    parser.add_argument("--data", required=True, help="a LUNA16-layout root (e.g. synthetic)")
    parser.add_argument("--subsets", type=int, nargs="*", help="default: the segmenter's test")
    parser.add_argument("--out", default="candidate-recall")
    args = parser.parse_args()
    model, config = load_segmenter(args.segmenter, device="cpu")
    subsets = args.subsets if args.subsets else config.get("test_subsets") or []
    luna = Luna16(args.data, warn_missing=False)
    uids = luna.scans.loc[luna.scans.subset.astype(int).isin(subsets), "seriesuid"]
    tables = [compare_candidate_sources(luna, model, uids)[0].assign(data="synthetic")]
    sample = os.environ.get("NODULEKIT_SAMPLE_DIR")
    if sample and (Path(sample) / "luna16-mini").is_dir():
        real = Luna16(Path(sample) / "luna16-mini", warn_missing=False)
        tables.append(compare_candidate_sources(real, model)[0].assign(data="real sample scan"))
    table = pd.concat(tables, ignore_index=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "candidate_recall.csv", index=False)
    candidate_recall_figure(table).savefig(out / "candidate_recall.png", dpi=100)
    print(table.to_string(index=False))
    print(f"wrote {out}/candidate_recall.csv and candidate_recall.png")


if __name__ == "__main__":
    main()
