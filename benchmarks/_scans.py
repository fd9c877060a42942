"""The scan a benchmark measures: a given file, else the real sample, else a synthetic one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def benchmark_scan(path: str | None):
    """``path`` read; else the real sample scan (``NODULEKIT_SAMPLE_DIR``, 512 x 512 x 133)
    when present; else one generated full-size synthetic scan."""
    from nodulekit.data import make_synthetic_luna16, read_scan

    if path:
        return read_scan(path)
    sample = os.environ.get("NODULEKIT_SAMPLE_DIR")
    if sample and (Path(sample) / "luna16-mini").is_dir():
        return read_scan(next((Path(sample) / "luna16-mini" / "subset0").glob("*.mhd")))
    root = make_synthetic_luna16(tempfile.mkdtemp(), n_scans=1, size="full", progress=False)
    return read_scan(next(root.glob("subset*/*.mhd")))
