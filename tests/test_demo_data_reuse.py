"""The demo reuses its synthetic set only when the same generator made it with the same options."""

from __future__ import annotations

import json

from nodulekit.data.synthetic import GENERATOR_VERSION, make_synthetic_luna16
from nodulekit.demo import _synthetic_is_current


def test_a_set_from_an_older_generator_is_made_again(tmp_path):
    root = make_synthetic_luna16(tmp_path / "data", n_scans=1, size="tiny", progress=False)
    meta_path = root / "synthetic.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    assert meta["generator_version"] == GENERATOR_VERSION
    assert _synthetic_is_current(root, 1, 0, "tiny")
    assert not _synthetic_is_current(root, 2, 0, "tiny")  # other options: made again
    meta["generator_version"] = "1.0"  # what the generator before the LUNA16-like set wrote
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    assert not _synthetic_is_current(root, 1, 0, "tiny")
    del meta["generator_version"]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    assert not _synthetic_is_current(root, 1, 0, "tiny")
    meta_path.write_text("{not json", encoding="utf-8")
    assert not _synthetic_is_current(root, 1, 0, "tiny")
