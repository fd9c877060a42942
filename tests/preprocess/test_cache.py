import json
import stat
import threading
import warnings

import numpy as np
import pandas as pd
import pytest

import nodulekit.preprocess.cache as cache_module
from nodulekit.data import Scan, write_scan
from nodulekit.errors import CacheError, TableError, UnknownSeriesError
from nodulekit.preprocess import CropCache, build_crop_cache, crop

UIDS = ("1.2.840.1", "1.2.840.2")
SHAPE = (6, 6, 6)
SIZE = 12.0


def _scan(uid: str, offset: int) -> Scan:
    rng = np.random.default_rng(offset)
    array = rng.integers(-1000, 400, size=(12, 16, 16)).astype(np.int16)
    return Scan(array, (-10.0, -12.0, 5.0 * offset), (1.5, 1.5, 2.5), seriesuid=uid)


@pytest.fixture
def data(tmp_path):
    paths = {}
    for i, uid in enumerate(UIDS):
        paths[uid] = write_scan(_scan(uid, i), tmp_path / "data" / f"subset{i}" / f"{uid}.mhd")
    candidates = pd.DataFrame(
        {
            "seriesuid": [UIDS[0], UIDS[1], UIDS[0], UIDS[1]],
            "coordX": [0.0, 1.0, 2.0, -3.0],
            "coordY": [0.0, 2.0, -1.0, 4.0],
            "coordZ": [15.0, 20.0, 12.0, 18.0],
            "class": [1, 0, 0, 0],
        }
    )
    return candidates, paths, tmp_path / "cache"


def _build(candidates, paths, out, **kwargs):
    kwargs = {"size_mm": SIZE, "shape_zyx": SHAPE, "workers": 0, "progress": False, **kwargs}
    return build_crop_cache(candidates, paths, out, **kwargs)


def test_build_holds_every_crop_in_table_order(data):
    candidates, paths, out = data
    cache = _build(candidates, paths, out)
    assert len(cache) == 4 and cache.crops.shape == (4, *SHAPE) and cache.crops.dtype == np.int16
    assert not cache.crops.flags.writeable
    assert list(cache.index.columns[:8]) == [
        "seriesuid", "coordX", "coordY", "coordZ", "class", "diameter_mm", "subset", "outside",
    ]  # fmt: skip
    assert cache.index["seriesuid"].tolist() == candidates["seriesuid"].tolist()
    assert cache.index["class"].tolist() == [1, 0, 0, 0]
    assert cache.index["subset"].tolist() == [0, 1, 0, 1]  # from the subsetN folder names
    assert cache.index["diameter_mm"].isna().all() and not cache.index["outside"].any()
    assert cache.params["shape_zyx"] == list(SHAPE) and cache.params["size_mm"] == SIZE
    assert len(cache.params["fingerprint"]) == 64
    for i, row in cache.index.iterrows():
        scan = _scan(row["seriesuid"], UIDS.index(row["seriesuid"]))
        expected = crop(scan, (row["coordX"], row["coordY"], row["coordZ"]), SIZE, SHAPE).array
        np.testing.assert_allclose(cache.crops[i], expected, atol=0.5)
    reopened = CropCache.open(out)
    np.testing.assert_array_equal(reopened.crops, cache.crops)
    pd.testing.assert_frame_equal(reopened.index, cache.index)


def test_parallel_build_matches_inline(data, tmp_path):
    candidates, paths, out = data
    inline = _build(candidates, paths, out)
    parallel = _build(candidates, paths, tmp_path / "other", workers=2)
    np.testing.assert_array_equal(parallel.crops, inline.crops)
    assert parallel.params["fingerprint"] == inline.params["fingerprint"]


def test_folders_are_user_only(data):
    candidates, paths, out = data
    cache = _build(candidates, paths, out)
    for folder in (out, cache.folder):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((cache.folder / "crops.npy").stat().st_mode) == 0o600


def test_same_inputs_reuse_and_other_params_or_sources_rebuild(data, monkeypatch):
    candidates, paths, out = data
    first = _build(candidates, paths, out)

    def refuse(*args):
        raise RuntimeError("rebuilt although nothing changed")

    monkeypatch.setattr(cache_module, "_crop_scan_task", refuse)
    again = _build(candidates, paths, out)
    assert again.folder == first.folder
    monkeypatch.undo()

    bigger = _build(candidates, paths, out, shape_zyx=(4, 4, 4))
    assert bigger.crops.shape == (4, 4, 4, 4) and bigger.folder != first.folder
    assert first.folder.exists()  # the first set stays beside the new one (pruned later)
    assert len(list(out.glob("data-*"))) == 2
    # same size, other voxels: the fingerprint sees the file content, not its date
    scan = _scan(UIDS[0], 0)
    write_scan(scan.with_array(scan.array + 1), paths[UIDS[0]])
    changed = _build(candidates, paths, out, shape_zyx=(4, 4, 4))
    assert changed.params["fingerprint"] != bigger.params["fingerprint"]
    # other candidates: another fingerprint too
    fewer = _build(candidates.iloc[:2], paths, out, shape_zyx=(4, 4, 4))
    assert len(fewer) == 2


def test_open_refuses_a_cache_from_other_parameters(data):
    candidates, paths, out = data
    _build(candidates, paths, out)
    assert len(CropCache.open(out, expect={"shape_zyx": SHAPE, "size_mm": SIZE})) == 4
    with pytest.raises(CacheError, match=r"other parameters \(shape_zyx: wanted"):
        CropCache.open(out, expect={"shape_zyx": (32, 32, 32)})
    with pytest.raises(CacheError, match="not a complete crop cache"):
        CropCache.open(out / "nothing-here")


def test_interrupted_build_resumes_without_redoing_finished_scans(data, monkeypatch):
    candidates, paths, out = data
    real = cache_module._crop_scan_task
    calls = []

    def second_fails(*args):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(cache_module, "_crop_scan_task", second_fails)
    with pytest.raises(KeyboardInterrupt):
        _build(candidates, paths, out)
    assert not (out / "params.json").exists()  # nothing half-made is visible
    calls.clear()
    monkeypatch.setattr(cache_module, "_crop_scan_task", lambda *a: (calls.append(a[0]), real(*a)))
    cache = _build(candidates, paths, out)
    assert calls == [str(paths[UIDS[1]])]  # only the unfinished scan
    assert len(cache) == 4 and not list(out.glob("shards-*"))


def test_two_builders_at_once_do_the_work_once(data, monkeypatch):
    candidates, paths, out = data
    real = cache_module._crop_scan_task
    calls = []
    monkeypatch.setattr(cache_module, "_crop_scan_task", lambda *a: (calls.append(a), real(*a)))
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(_build(candidates, paths, out)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and len(calls) == 2  # two scans, cropped once
    assert results[0].folder == results[1].folder


def test_outside_candidates_are_padded_marked_and_warned_once(data):
    candidates, paths, out = data
    far = candidates.copy()
    far.loc[[1, 2], "coordZ"] = 900.0
    with pytest.warns(UserWarning, match="2 of 4 candidates lie outside their scan") as record:
        cache = _build(far, paths, out)
    assert len([w for w in record if "outside" in str(w.message)]) == 1
    assert cache.index["outside"].tolist() == [False, True, True, False]
    assert (cache.crops[1] == -1000).all() and cache.index["outside_fraction"][1] == 1.0


def test_nan_coordinate_names_the_row(data):
    candidates, paths, out = data
    bad = candidates.copy()
    bad.loc[2, "coordY"] = np.nan
    with pytest.raises(TableError, match=r"candidates row 2 .* NaN or non-numeric coordinate"):
        _build(bad, paths, out)
    with pytest.raises(TableError, match=r"lacks column\(s\) \['coordZ'\]"):
        _build(candidates.drop(columns="coordZ"), paths, out)


def test_candidates_without_a_scan(data):
    candidates, paths, out = data
    extra = pd.concat(
        [candidates, pd.DataFrame({"seriesuid": ["9.9.9"], "coordX": [0.0], "coordY": [0.0],
                                   "coordZ": [0.0], "class": [0]})],
        ignore_index=True,
    )  # fmt: skip
    with pytest.raises(
        UnknownSeriesError, match=r"1 candidate\(s\) of 1 series have no scan path: 9.9.9"
    ):
        _build(extra, paths, out)
    with pytest.warns(UserWarning, match="left out 1 candidate"):
        cache = _build(extra, paths, out, missing="skip")
    assert len(cache) == 4


def test_scan_table_and_diameter_columns(data):
    candidates, paths, out = data
    table = pd.DataFrame({"seriesuid": list(paths), "path": list(paths.values()), "subset": [7, 8]})
    with_diameter = candidates.assign(diameter_mm=[5.0, np.nan, 3.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache = _build(with_diameter, table, out)
    assert cache.index["subset"].tolist() == [7, 8, 7, 8]
    assert cache.index["diameter_mm"].tolist()[::2] == [5.0, 3.0]
    params = json.loads((out / "params.json").read_text(encoding="utf-8"))
    assert params["data"] == cache.folder.name


def test_cache_pickles_without_its_memmap(data):
    import pickle

    candidates, paths, out = data
    cache = _build(candidates, paths, out)
    _ = cache.crops
    blob = pickle.dumps(cache)
    assert len(blob) < 20_000  # the crops are not copied into the pickle
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.crops, cache.crops)
    assert "n=4" in repr(clone)


# -- after a kill, a second user, a second parameter set ---------------------------------
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _python(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO,
    )  # fmt: skip


def _save_inputs(candidates, paths, folder: Path) -> Path:
    table = folder / "inputs.pkl"
    pd.to_pickle((candidates, {k: str(v) for k, v in paths.items()}), table)
    return table


def test_kill_during_the_final_step_leaves_no_temporary_after_the_next_build(data, tmp_path):
    candidates, paths, out = data
    inputs = _save_inputs(candidates, paths, tmp_path)
    killed = _python(
        """
        import os, signal, sys
        import pandas as pd
        from nodulekit.preprocess import build_crop_cache
        candidates, paths = pd.read_pickle(sys.argv[1])
        real = pd.DataFrame.to_csv
        def die_on_the_index(self, path=None, *a, **k):
            if path is None:
                return real(self, path, *a, **k)
            os.kill(os.getpid(), signal.SIGKILL)  # while crops.npy sits in its temp folder
        pd.DataFrame.to_csv = die_on_the_index
        build_crop_cache(candidates, paths, sys.argv[2], size_mm=12.0, shape_zyx=(6, 6, 6),
                         workers=0, progress=False)
        """,
        str(inputs), str(out),
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [p.name for p in out.glob(".data-*/crops.npy")]  # the finding: a hidden leftover
    cache = _build(candidates, paths, out)
    assert not list(out.glob(".data-*")) and not list(out.glob(".*.tmp"))
    assert len(cache) == 4 and cache.folder.name.startswith("data-")
    uninterrupted = _build(candidates, paths, tmp_path / "fresh")
    np.testing.assert_array_equal(cache.crops, uninterrupted.crops)  # the resume is exact


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # an orphaned zombie nobody reaped has finished


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to see processes")
def test_workers_die_with_their_parent(tmp_path):
    script = """
        import sys, time
        from nodulekit.preprocess.cache import _worker_pool
        if __name__ == "__main__":
            pool = _worker_pool(2)
            futures = [pool.submit(time.sleep, 120) for _ in range(2)]
            while len(pool._processes) < 2:
                time.sleep(0.05)
            print(*pool._processes, flush=True)
            time.sleep(120)
        """
    path = tmp_path / "parent.py"
    path.write_text(textwrap.dedent(script))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them behind if the test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


@pytest.mark.parametrize("guard_elsewhere", [False, True])
def test_workers_in_a_script_without_a_main_guard_fail_with_the_reason(
    data, tmp_path, guard_elsewhere
):
    candidates, paths, out = data
    inputs = _save_inputs(candidates, paths, tmp_path)
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import pandas as pd
            from nodulekit.preprocess import build_crop_cache
            candidates, paths = pd.read_pickle({str(inputs)!r})
            build_crop_cache(candidates, paths, {str(out)!r}, size_mm=12.0,
                             shape_zyx=(6, 6, 6), workers=2, progress=False)
            """
        )
        + (
            'if __name__ == "__main__":\n    print("the build above is not under me")\n'
            * guard_elsewhere
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("nodulekit.errors.CacheError")
    assert 'if __name__ == "__main__":' in last and "workers=0" in last


def test_a_reader_keeps_its_crops_while_other_parameters_are_built(data):
    candidates, paths, out = data
    first = _build(candidates, paths, out)
    import pickle

    clone = pickle.loads(pickle.dumps(first))  # what a DataLoader worker opens later
    for n in (5, 4, 3, 2):
        _build(candidates, paths, out, shape_zyx=(n, n, n), keep=2)
    assert first.folder.exists()  # in use: never pruned
    np.testing.assert_array_equal(clone.crops, first.crops)
    again = CropCache.open(out, expect={"shape_zyx": SHAPE, "size_mm": SIZE})
    assert again.folder == first.folder
    folders = sorted(p.name for p in out.glob("data-*"))
    assert len(folders) == 3  # the open one, and the two most recently used (3^3 and 2^3)
    assert CropCache.open(out).params["shape_zyx"] == [2, 2, 2]  # the last built
    first.close()
    again.close()
    clone.close()
    _build(candidates, paths, out, shape_zyx=(2, 2, 2), keep=1)
    assert [p.name for p in out.glob("data-*")] == [f"data-{_fp(out)}"]


def _fp(out: Path) -> str:
    return json.loads((out / "params.json").read_text(encoding="utf-8"))["fingerprint"][:16]


def test_a_cache_folder_of_another_user_says_whose_and_how_to_fix_it(data, monkeypatch):
    candidates, paths, out = data
    out.mkdir(mode=0o700)
    if os.geteuid() == 0:  # root may enter any folder: simulate the second user's view
        os.chown(out, 65534, 65534)
        real = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode, **k: False if Path(p) == out else real(p, mode, **k)
        )
    else:
        out.chmod(0o000)
    try:
        with pytest.raises(CacheError) as caught:
            _build(candidates, paths, out)
    finally:
        out.chmod(0o700)
    message = str(caught.value)
    assert str(out) in message and "cannot use this crop cache folder" in message
    assert "--cache" in message and str(cache_module.user_cache_dir(out.parent / "data")) in message


def test_default_folder_is_the_users_own_cache_keyed_by_the_data_root(data, tmp_path, monkeypatch):
    candidates, paths, _out = data
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = _build(candidates, paths, None)
    root = (tmp_path / "data").resolve()
    assert cache_module.user_cache_dir(root).parent == tmp_path / "xdg" / "nodulekit" / "crops"
    assert cache.folder.parent == cache_module.user_cache_dir(root)
    assert cache_module.user_cache_dir(root).name.startswith("data-")


def test_defaults_are_the_training_crop():
    import inspect

    defaults = inspect.signature(build_crop_cache).parameters
    assert defaults["size_mm"].default == 32.0
    assert tuple(defaults["shape_zyx"].default) == (24, 24, 24)
    with pytest.raises(CacheError, match=r"size_mm must be one or 3 finite positive numbers"):
        cache_module._params(0, (4, 4, 4), -1000)
    with pytest.raises(CacheError, match=r"shape_zyx must be one or 3 positive integers"):
        cache_module._params(10, (4, 0, 4), -1000)


def test_opening_a_cache_this_user_cannot_read_says_the_fix(data, monkeypatch):
    candidates, paths, out = data
    _build(candidates, paths, out)
    real = Path.read_text

    def denied(self, *args, **kwargs):  # what a second user meets on a 0o700 folder
        if out in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(
        CacheError, match=r"cannot read this crop cache \(Permission denied.*--cache DIR"
    ):
        CropCache.open(out)
