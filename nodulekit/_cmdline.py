"""How nodulekit's commands fail: one readable line naming the path and the fix, not a traceback.

Used by the ``nodulekit`` command (`nodulekit.cli`) and by ``python -m nodulekit.train``. An
error a user can act on (`NodulekitError`, ``OSError``, ``RuntimeError``, ``ValueError``) is
printed as ``error: ...`` on stderr with a non-zero exit status; ``--debug`` anywhere on the
command line (or ``NODULEKIT_DEBUG=1``) lets the traceback through instead.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

DEBUG_FLAG = "--debug"
_DEBUG_KEY = "nodulekit.debug"

#: exit status of an error nodulekit raised on purpose or a bad value; other errors exit 1
USAGE_ERROR = 2

_OS_FIXES = {
    errno.EACCES: "choose a folder you can write (--out, --cache) or fix its permissions",
    errno.EPERM: "choose a folder you can write (--out, --cache) or fix its permissions",
    errno.EROFS: "the file system is read-only: choose another folder (--out, --cache)",
    errno.ENOSPC: "the disk is full: free some space or choose a folder on another disk",
    errno.ENOENT: "check that the path exists and is spelled right",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "the path is a folder where a file was expected: check the path",
}


def error_line(error: BaseException) -> str:
    """One line saying what went wrong, on which path, and what to do."""
    from nodulekit.errors import NodulekitError

    if isinstance(error, NodulekitError | ValueError):
        text = str(error)
    elif isinstance(error, OSError):
        what = error.strerror or str(error) or type(error).__name__
        paths = [p for p in (error.filename, error.filename2) if p]
        text = f"{what}: {' -> '.join(map(str, paths))}" if paths else what
        if fix := _OS_FIXES.get(error.errno or -1):
            text += f"; {fix}"
    else:  # RuntimeError
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "out of memory" in text.lower():
            text += "; use a smaller --batch-size, or --device cpu"
    return f"error: {text} (run with {DEBUG_FLAG} for the traceback)"


def _debug_on(ctx: Any) -> bool:
    root = ctx.find_root()
    return bool(root.meta.get(_DEBUG_KEY)) or os.environ.get("NODULEKIT_DEBUG", "") not in ("", "0")


def _strip_debug(ctx: Any, args: list[str]) -> list[str]:
    if DEBUG_FLAG in args:
        ctx.find_root().meta[_DEBUG_KEY] = True
    return [a for a in args if a != DEBUG_FLAG]


def _one_line(invoke: Callable[[Any], Any], ctx: Any) -> Any:
    from nodulekit.errors import NodulekitError

    try:
        return invoke(ctx)
    except (typer.Exit, typer.Abort):
        raise
    except (NodulekitError, OSError, RuntimeError, ValueError) as error:
        if _debug_on(ctx) or getattr(error, "errno", None) == errno.EPIPE:
            raise  # a closed pipe (`| head`) is the command line's own business
        typer.secho(error_line(error), err=True, fg=typer.colors.RED)
        usage = isinstance(error, NodulekitError | ValueError)
        raise typer.Exit(code=USAGE_ERROR if usage else 1) from error


class OneLineErrorsGroup(TyperGroup):
    """A command group whose commands fail with one line (see the module docstring)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _strip_debug(ctx, args))

    def invoke(self, ctx: Any) -> Any:
        return _one_line(super().invoke, ctx)


class OneLineErrorsCommand(TyperCommand):
    """A single command that fails with one line (see the module docstring)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _strip_debug(ctx, args))

    def invoke(self, ctx: Any) -> Any:
        return _one_line(super().invoke, ctx)
