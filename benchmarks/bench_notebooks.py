"""Seconds per course notebook at CI parameters (the sizes `make test` runs them at).

Runs 00 → 03 in order in a fresh copy of ``notebooks/`` (00 makes the synthetic set, 02 the
crop cache, 03 reuses both), each in a fresh ``python3`` kernel through papermill, and prints
one line per notebook and the total against the 8-minute budget on 2 CPU cores (issue 11).

    python benchmarks/bench_notebooks.py [--json out.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.notebooks.runner import (
    CI_PARAMETERS,
    copy_notebooks,
    notebook_paths,
    problems,
    run_notebook,
)

BUDGET_S = 8 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", type=Path, help="run in (and keep) this folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="nodulekit-bench-notebooks-"))
    copy_notebooks(work)
    out = work / "executed"
    seconds: dict[str, float] = {}
    print(f"{os.cpu_count()} CPUs; notebooks run in {work}")
    for path in notebook_paths():
        seconds[path.name] = run_notebook(path.name, work, out)
        found = problems(out / path.name)
        flag = f"  PROBLEMS: {found}" if found else ""
        print(f"{path.name:<28} {seconds[path.name]:6.1f} s  {CI_PARAMETERS[path.name]}{flag}")
    total = sum(seconds.values())
    print(f"{'total':<28} {total:6.1f} s  ({total / BUDGET_S:.0%} of the {BUDGET_S} s budget)")
    if args.json:
        args.json.write_text(json.dumps({"seconds": seconds, "total_s": total}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
