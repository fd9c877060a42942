"""The ``nodulekit`` command fails the way a user can act on: one line naming the path and the
fix, a non-zero status, and the traceback only under ``--debug``."""

from __future__ import annotations

import errno

import pytest
import typer
from typer.testing import CliRunner

from nodulekit._cmdline import error_line
from nodulekit.cli import app
from nodulekit.errors import CacheError


@pytest.fixture
def blocker(tmp_path):
    """A file where a folder is expected: writing under it fails with an OSError, even as root."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def test_an_os_error_is_one_line_naming_the_path(blocker):
    result = CliRunner().invoke(app, ["synth", str(blocker / "data"), "--scans", "1"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(blocker) in lines[0] and "--debug" in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_lets_the_traceback_through(blocker, where):
    args = ["synth", str(blocker / "data"), "--scans", "1"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, OSError)


def test_error_lines_name_the_fix():
    denied = PermissionError(errno.EACCES, "Permission denied", "/shared/.nodulekit-cache")
    assert error_line(denied) == (
        "error: Permission denied: /shared/.nodulekit-cache; choose a folder you can write "
        "(--out, --cache) or fix its permissions (run with --debug for the traceback)"
    )
    full = OSError(errno.ENOSPC, "No space left on device", "/runs/x/best.pt")
    assert "/runs/x/best.pt; the disk is full" in error_line(full)
    oom = RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\nmore detail")
    assert error_line(oom).startswith("error: CUDA out of memory. Tried to allocate 2 GiB; use a")
    assert "more detail" not in error_line(oom)
    assert error_line(CacheError("cache /c was built with 40 mm crops")).startswith(
        "error: cache /c was built with 40 mm crops"
    )


def test_a_runtime_error_in_a_command_exits_non_zero(monkeypatch):
    import nodulekit.data.info

    def boom(path):
        raise RuntimeError("something broke inside")

    monkeypatch.setattr(nodulekit.data.info, "describe_scan_file", boom)
    result = CliRunner().invoke(app, ["info", "x.mhd"])
    assert result.exit_code == 1
    assert result.output.startswith("error: something broke inside")


def test_deid_of_a_folder_without_dicom_fails(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images here")
    result = CliRunner().invoke(
        app, ["deid", str(tmp_path / "in"), str(tmp_path / "out"), "--random-salt"]
    )
    assert result.exit_code != 0
    assert "error:" in result.output and str(tmp_path / "in") in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("command", "options"),
    [("synth", ["--scans", "--overwrite"]), ("demo", ["--quiet", "--out", "--scans"]),
     ("train", ["--quiet", "--out", "--data"])],
)  # fmt: skip
def test_documented_options_exist(command, options):
    params = typer.main.get_command(app).commands[command].params
    names = {o for p in params for o in [*p.opts, *p.secondary_opts]}
    assert set(options) <= names
    assert "--debug" in CliRunner().invoke(app, ["--help"]).output


def test_a_closed_pipe_is_not_reported_as_an_error():
    from nodulekit._cmdline import OneLineErrorsGroup

    piped = typer.Typer(cls=OneLineErrorsGroup)
    piped.callback()(lambda: None)

    @piped.command()
    def show() -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")  # as `nodulekit ... | head` gets

    result = CliRunner().invoke(piped, ["show"])
    assert result.exit_code == 1  # click's own quiet exit for a closed pipe
    assert "error:" not in result.output and "Broken pipe" not in result.output


def test_synth_takes_the_share_of_nodule_free_scans_and_nodules_per_scan(tmp_path):
    import json

    args = ["synth", str(tmp_path / "d"), "--scans", "4", "--subsets", "2", "--size", "tiny"]
    result = CliRunner().invoke(app, [*args, "--nodules-per-scan", "1", "1"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "d" / "synthetic.json").read_text(encoding="utf-8"))
    assert meta["parameters"]["nodules_per_scan"] == [1, 1]
    # by default (1/3) the second scan of each subset is nodule-free; one nodule in the others
    assert (meta["counts"]["scans_without_nodules"], meta["counts"]["nodules"]) == (2, 2)
    assert "4 scans (.mhd + .raw), 2 without nodules" in result.output
    readme = (tmp_path / "d" / "README.txt").read_text(encoding="utf-8")
    assert "--nodules-per-scan 1 1 --nodule-free-fraction 0.333333" in readme  # to recreate it
    again = [*args, "--nodule-free-fraction", "0", "--nodules-per-scan", "2", "2", "--overwrite"]
    result = CliRunner().invoke(app, again)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "d" / "synthetic.json").read_text(encoding="utf-8"))
    assert meta["parameters"]["nodule_free_fraction"] == 0.0
    assert (meta["counts"]["scans_without_nodules"], meta["counts"]["nodules"]) == (0, 8)


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--nodule-free-fraction", "1"], "nodule_free_fraction must be a number in [0, 1), not 1.0"),
     (["--nodules-per-scan", "3", "1"],
      "nodules_per_scan must be (low, high) with 1 <= low <= high, not (3, 1)")],
)  # fmt: skip
def test_synth_refuses_what_the_library_refuses_with_its_message(tmp_path, option, message):
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "d"), "--scans", "2", *option])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {message}"
    assert not (tmp_path / "d").exists()  # refused before anything is written
