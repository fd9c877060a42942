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

    monkeypatch.setattr(nodulekit.data.info, "describe_path", boom)
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
