"""`nodulekit.train.pipeline`: where the crop cache goes, and splits that hold nodules."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import nodulekit.train.pipeline as pipeline
from nodulekit.errors import NodulekitError
from nodulekit.preprocess.cache import user_cache_dir
from nodulekit.train.config import TrainConfig
from tests.train.conftest import make_fake_cache


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from nodulekit.data import make_synthetic_luna16

    return make_synthetic_luna16(
        tmp_path_factory.mktemp("pipeline") / "data",
        n_scans=3,
        size="tiny",
        n_subsets=3,
        negatives_per_nodule=2,
        progress=False,
    )


@pytest.fixture
def own_cache_home(tmp_path, monkeypatch):
    """This user's cache folder ($XDG_CACHE_HOME) inside the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    return tmp_path / "home-cache"


def _as_second_user(folder: Path, monkeypatch) -> None:
    """What a second user meets: ``folder`` is someone else's 0o700 folder. Root may enter any
    folder, so as root the folder is given away and `os.access` answers as that user would."""
    folder.chmod(0o700)
    if os.geteuid() != 0:
        folder.chmod(0o000)
        return
    os.chown(folder, 65534, 65534)
    real = os.access

    def access(path, mode, **kwargs):
        inside = Path(path) == folder or folder in Path(path).parents
        return False if inside else real(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_the_cache_folder_is_the_data_roots_unless_this_user_cannot_use_it(
    tmp_path, own_cache_home, monkeypatch
):
    data = tmp_path / "data"
    data.mkdir()
    shared = data / ".nodulekit-cache"
    assert pipeline.crop_cache_dir(data) == shared  # writable root: made there
    assert pipeline.crop_cache_dir(data, tmp_path / "mine") == tmp_path / "mine"  # --cache
    shared.mkdir()
    assert pipeline.crop_cache_dir(data) == shared  # exists, and this user's
    _as_second_user(shared, monkeypatch)
    try:
        assert pipeline.crop_cache_dir(data) == user_cache_dir(data)
        assert str(user_cache_dir(data)).startswith(str(own_cache_home))
        why = pipeline._cache_choice(data, None)[1]
        assert why == f"your own: this user cannot read and write {shared}; --cache DIR to choose"
    finally:
        shared.chmod(0o700)


def test_a_read_only_data_root_sends_the_cache_to_the_users_own_folder(
    tmp_path, own_cache_home, monkeypatch
):
    data = tmp_path / "data"
    data.mkdir()
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **k: False if Path(p) == data else real(p, mode, **k)
    )
    assert pipeline.crop_cache_dir(data) == user_cache_dir(data)
    assert pipeline._cache_choice(data, None)[1].startswith(f"your own: the data root {data} is")


def test_a_second_user_with_other_crop_parameters_builds_in_their_own_folder(
    tiny_root, tmp_path, own_cache_home, monkeypatch
):
    """The first user's 0o700 cache in the shared data root: the second user, whose crops
    have another fingerprint (a new data folder would be needed inside it), gets their own
    cache instead of a CacheError (or a PermissionError) about a folder they cannot enter."""
    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    first = TrainConfig(data=str(data), crop_shape=(8, 8, 8), cache_workers=0)
    built = pipeline.open_or_build_cache(first)
    shared = data / ".nodulekit-cache"
    assert built.folder.parent == shared
    built.close()
    _as_second_user(shared, monkeypatch)
    try:
        second = TrainConfig(data=str(data), crop_shape=(6, 6, 6), cache_workers=0)
        cache = pipeline.open_or_build_cache(second)
        assert cache.folder.parent == user_cache_dir(data)
        assert cache.crops.shape[1:] == (6, 6, 6)
        cache.close()
        again = pipeline.open_or_build_cache(first)  # the same crops as the first user's
        assert again.folder.parent == user_cache_dir(data)
        again.close()
    finally:
        shared.chmod(0o700)
    assert sorted(p.name for p in shared.glob("data-*")) == [built.folder.name]  # untouched


def test_the_run_says_which_cache_folder_it_uses_unless_quiet(
    tiny_root, tmp_path, monkeypatch, capsys
):
    def stop(config, **kwargs):
        raise KeyboardInterrupt  # as a user would, once the line is out

    monkeypatch.setattr(pipeline, "open_or_build_cache", stop)
    config = TrainConfig(data=str(tiny_root), out=str(tmp_path / "run"), device="cpu")
    with pytest.raises(KeyboardInterrupt):
        pipeline.train(config)
    shared = tiny_root / ".nodulekit-cache"
    assert f"crop cache: {shared} (shared by the runs on this data)\n" in capsys.readouterr().out
    quiet = TrainConfig(data=str(tiny_root), out=str(tmp_path / "quiet"), quiet=True)
    with pytest.raises(KeyboardInterrupt):
        pipeline.train(quiet)
    assert "crop cache" not in capsys.readouterr().out


def test_default_splits_are_the_last_subsets_of_the_cache_holding_nodules(tmp_path):
    cache = make_fake_cache(per_series=3, size=8)
    cache.index.loc[cache.index["subset"] == 9, "class"] = 0  # the last subset: no nodule
    config = TrainConfig(out=str(tmp_path / "run"))
    datasets = pipeline.make_datasets(config, cache)
    assert (config.val_subsets, config.test_subsets) == ((7,), (8,))
    test_rows = cache.index.iloc[datasets["test"].indices]
    assert set(test_rows["subset"]) == {8} and test_rows["class"].sum() > 0
    assert 9 in set(cache.index.iloc[datasets["train"].indices]["subset"])  # 9 trains
    told = TrainConfig(out=str(tmp_path / "run"), val_subsets=(9,), test_subsets=(8,))
    with pytest.raises(NodulekitError, match=r"validation subsets \[9\] hold no nodule"):
        pipeline.make_datasets(told, cache)


def test_a_validation_subset_without_nodules_is_refused_before_the_cache(tiny_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    table = pd.read_csv(data / "candidates_V2.csv", dtype={"seriesuid": str})
    last = {path.stem for path in data.glob("subset2/*.mhd")}
    table = table[~(table["seriesuid"].isin(last) & (table["class"] == 1))]  # no nodule in 2
    table.to_csv(data / "candidates_V2.csv", index=False)
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), val_subsets=(2,))
    with pytest.raises(NodulekitError) as caught:
        pipeline.train(config)
    assert "validation subsets [2] hold no nodule" in str(caught.value)
    assert "--val-subsets among the subsets that hold nodules: [0, 1]" in str(caught.value)
    assert not (data / ".nodulekit-cache").exists() and not (tmp_path / "run").exists()
