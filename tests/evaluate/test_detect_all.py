"""Detection over a data set: per-rank device, merge that refuses holes, resume manifest,
the caller's torch threads left alone."""

import pandas as pd
import pytest
import torch

from nodulekit.errors import NodulekitError, OutputExistsError
from nodulekit.evaluate.detect_all import detect_dataset, process_device, read_parts


@pytest.fixture
def calls(monkeypatch):
    import nodulekit.evaluate.detect as detect_module

    seen = []

    def fake_detect(scan, model, *, seriesuid, **kwargs):
        seen.append(seriesuid)
        return pd.DataFrame({"seriesuid": [seriesuid], "coordX": [1.0], "coordY": [2.0],
                             "coordZ": [3.0], "probability": [0.5]})  # fmt: skip

    monkeypatch.setattr(detect_module, "detect_scan", fake_detect)
    return seen


def test_each_torchrun_rank_takes_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_device("auto") == torch.device("cuda", 1)
    assert process_device("cpu") == torch.device("cpu")


def test_merge_refuses_scans_without_marks(tmp_path):
    parts = tmp_path / "all.csv.parts"
    parts.mkdir()
    (parts / "1.2.3.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,probability\n1.2.3,1,2,3,0.5\n"
    )
    with pytest.raises(NodulekitError, match=r"no marks for 1 scan\(s\): 1\.2\.4"):
        read_parts(parts, ["1.2.3", "1.2.4"])  # what detect_dataset merges from


def test_parts_of_another_checkpoint_are_not_reused(tiny_root, checkpoints, tmp_path, calls):
    out = tmp_path / "all.csv"
    detect_dataset(tiny_root, checkpoints[0], out, device="cpu")
    assert len(calls) == 2
    calls.clear()
    with pytest.raises(OutputExistsError, match="overwrite"):
        detect_dataset(tiny_root, checkpoints[1], out, device="cpu")
    with pytest.raises(OutputExistsError, match="overwrite"):
        detect_dataset(tiny_root, checkpoints[0], out, device="cpu", max_candidates=10)
    assert calls == []
    detect_dataset(tiny_root, checkpoints[1], out, device="cpu", overwrite=True)
    assert len(calls) == 2  # everything done again with the new checkpoint
    calls.clear()
    detect_dataset(tiny_root, checkpoints[1], out, device="cpu")  # same again: all resumed
    assert calls == [] and len(pd.read_csv(out)) == 2


def test_in_process_detection_leaves_the_callers_threads(tiny_root, checkpoints, tmp_path, calls):
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        detect_dataset(tiny_root, checkpoints[0], tmp_path / "all.csv", device="cpu")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
