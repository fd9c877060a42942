"""Fail if any notebook is committed with outputs or execution counts (nbstripout's job)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def dirty_cells(path: Path) -> list[int]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [
        i
        for i, cell in enumerate(notebook.get("cells", []))
        if cell.get("outputs") or cell.get("execution_count") is not None
    ]


def main(folder: str) -> int:
    bad = {p: dirty_cells(p) for p in sorted(Path(folder).glob("*.ipynb"))}
    bad = {p: cells for p, cells in bad.items() if cells}
    for path, cells in bad.items():
        print(f"{path}: cells {cells} hold outputs; run `nbstripout {path}`", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "notebooks"))
