"""The run folder: refused when it holds another run, locked while a run writes to it.

A run writes ``config.json``, ``metrics.csv``, ``last.pt``, ``best.pt`` (each checkpoint with
its ``.sha256``) and ``test_metrics.json`` to its folder. Two runs writing to one folder mix
their files (a run could report test figures of the other's weights), so:

- a folder that holds anything but the crop cache (``cache/``) and the lock file is refused
  (`OutputExistsError`), unless the run resumes from a checkpoint inside it, or
  ``overwrite=True`` asks to delete the run files first;
- a run holds an exclusive ``fcntl`` lock on ``<folder>/.nodulekit.lock`` while it writes:
  a second run on the same folder is refused at once instead of waiting or mixing files;
- a resumed run deletes the old ``test_metrics.json`` before it starts: the test figures on
  disk always belong to the weights on disk.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from nodulekit.errors import OutputExistsError
from nodulekit.train import distributed as ddp
from nodulekit.train.config import TrainConfig

LOCK_NAME = ".nodulekit.lock"
#: what a run writes (deleted by ``overwrite``); anything else is left alone
RUN_FILES = (
    "config.json",
    "metrics.csv",
    "last.pt",
    "last.pt.sha256",
    "best.pt",
    "best.pt.sha256",
    "test_metrics.json",
)
#: entries that do not make a folder "non-empty": the lock and the crop cache `train` may
#: keep in ``<out>/cache`` when the data root is read-only
IGNORED = (LOCK_NAME, "cache")

_held: dict[Path, tuple[int, int]] = {}  # folder -> (lock file descriptor, holders)


def make_run_dir(path: str | os.PathLike) -> Path:
    """Create the run folder readable by the user only (mode 0700)."""
    run_dir = Path(path)
    existed = run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not existed:
        os.chmod(run_dir, 0o700)
    return run_dir


def _acquire(run_dir: Path) -> None:
    import fcntl

    key = run_dir.resolve()
    if key in _held:  # re-entrant within a process: `train` locks, then `fit` again
        fd, count = _held[key]
        _held[key] = (fd, count + 1)
        return
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise OutputExistsError(
            f"run folder {run_dir} is in use by another run (process {holder} holds "
            f"{run_dir / LOCK_NAME}); wait for it to finish, or choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[key] = (fd, 1)


def _release(run_dir: Path) -> None:
    key = run_dir.resolve()
    fd, count = _held[key]
    if count > 1:
        _held[key] = (fd, count - 1)
        return
    del _held[key]
    os.close(fd)  # closing the descriptor drops the flock


@contextlib.contextmanager
def locked(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the run-folder lock of ``run_dir`` (created) for as long as the block runs;
    re-entrant within a process. Another process holding it is refused (`OutputExistsError`)."""
    run_dir = make_run_dir(run_dir)
    _acquire(run_dir)
    try:
        yield run_dir
    finally:
        _release(run_dir)


def _check_contents(run_dir: Path, *, resume: str | None, overwrite: bool) -> None:
    """Refuse a folder holding another run, clear run files on ``overwrite``/resume."""
    resuming = resume is not None and Path(resume).resolve().parent == run_dir.resolve()
    if overwrite and not resuming:  # other files (notes, the cache) stay
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        return
    if resuming:  # its old test figures describe weights that training will now replace
        (run_dir / "test_metrics.json").unlink(missing_ok=True)
        return
    held = sorted(p.name for p in run_dir.iterdir() if p.name not in IGNORED)
    if held:
        shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
        raise OutputExistsError(
            f"run folder {run_dir} is not empty (it holds {shown}); give --overwrite "
            f"(overwrite=True) to replace its run files, --resume {run_dir / 'last.pt'} to "
            "continue that run, or another --out folder"
        )


@contextlib.contextmanager
def claim_run_dir(path: str | os.PathLike, *, resume: str | None = None, overwrite: bool = False):
    """Create, check and lock the run folder for as long as the block runs.

    Raises
    ------
    OutputExistsError
        The folder is locked by another run, or holds files and neither ``resume`` (a
        checkpoint inside it) nor ``overwrite`` was given.
    """
    with locked(path) as run_dir:
        _check_contents(run_dir, resume=resume, overwrite=overwrite)
        yield run_dir


@contextlib.contextmanager
def claim_run(config: TrainConfig, info: ddp.DistInfo | None = None) -> Iterator[Path]:
    """`claim_run_dir` for ``config.out`` on rank 0; every rank learns rank 0's answer."""
    info = info or ddp.DistInfo()
    with contextlib.ExitStack() as stack:
        error = None
        if info.is_main:
            try:
                stack.enter_context(
                    claim_run_dir(config.out, resume=config.resume, overwrite=config.overwrite)
                )
            except OutputExistsError as caught:
                error = caught
        if ddp.broadcast_object(info, None if error is None else str(error)) is not None:
            raise error or OutputExistsError(f"run folder {config.out} was refused by rank 0")
        yield Path(config.out)
