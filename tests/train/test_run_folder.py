"""Run folders: a non-empty one is refused, a busy one is locked, stale files never stay."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from nodulekit.errors import OutputExistsError
from nodulekit.train.loop import fit
from nodulekit.train.run_dir import LOCK_NAME, claim_run_dir
from tests.train.test_loop import _config, _datasets


def test_a_second_run_into_the_same_folder_is_refused(fake_cache, tmp_path):
    fit(_config(tmp_path, epochs=1), *_datasets(fake_cache))
    before = (tmp_path / "run" / "metrics.csv").read_bytes()
    with pytest.raises(OutputExistsError, match=r"run folder .*run is not empty \(it holds ") as e:
        fit(_config(tmp_path, epochs=1, seed=3), *_datasets(fake_cache))
    assert "--overwrite" in str(e.value) and "--resume" in str(e.value)
    assert (tmp_path / "run" / "metrics.csv").read_bytes() == before  # nothing was touched


def test_overwrite_replaces_the_run_and_drops_old_test_metrics(fake_cache, tmp_path):
    train, val = _datasets(fake_cache)
    fit(_config(tmp_path, epochs=1), train, val, test_dataset=val)
    assert (tmp_path / "run" / "test_metrics.json").is_file()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    fit(_config(tmp_path, epochs=1, overwrite=True), train, val)  # no test split this time
    assert not (tmp_path / "run" / "test_metrics.json").exists()
    assert (tmp_path / "run" / "notes.txt").read_text(
        encoding="utf-8"
    ) == "mine"  # not a run file: kept


def test_a_folder_with_only_the_crop_cache_is_not_refused(fake_cache, tmp_path):
    (tmp_path / "run" / "cache").mkdir(parents=True)
    fit(_config(tmp_path, epochs=1), *_datasets(fake_cache))
    assert (tmp_path / "run" / "best.pt").is_file()


def test_a_run_folder_in_use_is_refused(fake_cache, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = textwrap.dedent(
        f"""
        import fcntl, os, sys, time
        fd = os.open({str(folder / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, str(os.getpid()).encode())
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "locked"
        with pytest.raises(
            OutputExistsError, match=rf"in use by another run \(process {process.pid}"
        ):
            fit(_config(tmp_path, epochs=1), *_datasets(fake_cache))
    finally:
        process.kill()
        process.wait()
    assert not (folder / "config.json").exists()
    fit(_config(tmp_path, epochs=1), *_datasets(fake_cache))  # free again once it ended


def test_the_lock_is_held_while_claimed_and_released_after(tmp_path):
    import fcntl
    import os

    with claim_run_dir(tmp_path / "run"):
        fd = os.open(tmp_path / "run" / LOCK_NAME, os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    fd = os.open(tmp_path / "run" / LOCK_NAME, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free
    os.close(fd)


def test_resuming_in_place_drops_the_old_test_metrics_first(fake_cache, tmp_path):
    train, val = _datasets(fake_cache)
    fit(_config(tmp_path, epochs=1), train, val, test_dataset=val)
    last = tmp_path / "run" / "last.pt"
    result = fit(_config(tmp_path, epochs=2, resume=str(last)), train, val)  # no test split
    assert len(result.metrics) == 2
    assert not (tmp_path / "run" / "test_metrics.json").exists()


def test_train_refuses_the_folder_before_building_the_cache(tmp_path, monkeypatch):
    from nodulekit.train import pipeline
    from nodulekit.train.config import TrainConfig

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("epoch\n0\n")

    def never(*args, **kwargs):
        raise AssertionError("the cache was built before the run folder was checked")

    monkeypatch.setattr(pipeline, "open_or_build_cache", never)
    with pytest.raises(OutputExistsError, match="is not empty"):
        pipeline.train(TrainConfig(cache=str(tmp_path / "c"), out=str(tmp_path / "run")))


def test_train_refuses_a_root_with_one_subset_before_the_cache(tmp_path, monkeypatch):
    from nodulekit.data import make_synthetic_luna16
    from nodulekit.errors import NodulekitError
    from nodulekit.train import pipeline
    from nodulekit.train.config import TrainConfig

    root = make_synthetic_luna16(
        tmp_path / "d", n_scans=1, size="tiny", n_subsets=1, progress=False
    )

    def never(*args, **kwargs):
        raise AssertionError("the cache was built for a root that cannot be split")

    monkeypatch.setattr(pipeline, "open_or_build_cache", never)
    with pytest.raises(NodulekitError, match=r"only subsets \[0\] are on disk"):
        pipeline.train(TrainConfig(data=str(root), out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()
