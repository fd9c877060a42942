"""Shared fixtures: tiny hand-made scans, the real sample data when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SAMPLE_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"


@pytest.fixture
def sample_dir() -> Path:
    """The real LIDC-IDRI/LUNA16 sample (``NODULEKIT_SAMPLE_DIR``); skip, saying why, without it."""
    value = os.environ.get("NODULEKIT_SAMPLE_DIR")
    if not value:
        pytest.skip("NODULEKIT_SAMPLE_DIR is not set: no real sample data (see ../shared/data)")
    path = Path(value)
    if not (path / "luna16-mini").is_dir():
        pytest.skip(f"NODULEKIT_SAMPLE_DIR={path} holds no luna16-mini/ folder")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
