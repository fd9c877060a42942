"""Checkpoints: save atomically, load safely.

A nodulekit checkpoint is a ``torch.save`` of a dict holding only tensors and plain containers
(dicts, lists, str, int, float, bool, None), so it loads with ``torch.load(weights_only=True)``:
loading never unpickles arbitrary objects. Keys:

``format`` (``"nodulekit-checkpoint"``), ``version``, ``model`` (state dict), ``optimizer``,
``scheduler``, ``scaler`` (state dicts or None), ``epoch`` (last finished epoch, 0-based),
``config`` (the run's config as a dict), ``metrics`` (that epoch's metrics), ``history`` (all
epochs so far), ``data_fingerprint`` (str), ``extra`` (loop state such as RNG and best score).

Files are written with `nodulekit._files.atomic_write` (a temporary name renamed over the
target), so a reader sees either the old file or the new one, never half of one. Beside each
checkpoint goes its SHA-256 (``best.pt.sha256``, the ``sha256sum`` format); `load_checkpoint`
checks it, so a flipped byte is never loaded silently. Give ``expected_sha256`` for a
downloaded or shared file that came without one.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from nodulekit._files import write_bytes_atomic, write_text_atomic
from nodulekit.errors import CheckpointError

FORMAT = "nodulekit-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "model", "epoch", "config")


def _state(obj: Any) -> Any:
    return None if obj is None else obj.state_dict()


def _plain(value: Any, where: str) -> Any:
    """Check (and lightly convert) that ``value`` holds only weights_only-safe types."""
    if value is None or isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalar
        value = value.item()
    for kind in (bool, int, float, str):  # also turns subclasses (np.float64) into the base
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(
        f"checkpoint field {where} holds a {type(value).__name__}; only tensors, numbers, "
        "strings, None, lists and dicts can be stored (convert it first)"
    )


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    epoch: int,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    data_fingerprint: str = "",
    history: list[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
    checksum: bool = True,
    copies: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write a checkpoint atomically and return its path.

    ``copies``: more paths that get the same bytes (and checksums), serialised once
    (``best.pt`` beside ``last.pt`` when an epoch improved).

    ``model`` may be wrapped in ``DistributedDataParallel``; the plain module's weights are
    stored. The file is readable by the user only (mode 0600). With ``checksum`` (the default)
    its SHA-256 goes to ``<path>.sha256`` (`checksum_path`), which `load_checkpoint` verifies.
    """
    path = Path(path)
    model = getattr(model, "module", model)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.state_dict(),
        "optimizer": _state(optimizer),
        "scheduler": _state(scheduler),
        "scaler": _state(scaler),
        "epoch": int(epoch),
        "config": _plain(dict(config), "config"),
        "metrics": _plain(dict(metrics or {}), "metrics"),
        "history": _plain(list(history or []), "history"),
        "data_fingerprint": str(data_fingerprint),
        "extra": _plain(dict(extra or {}), "extra"),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest() if checksum else None
    for target in (path, *map(Path, copies)):
        if digest:  # written first: a reader never meets a new file beside no checksum at all
            write_text_atomic(checksum_path(target), f"{digest}  {target.name}\n")
        else:
            checksum_path(target).unlink(missing_ok=True)
        write_bytes_atomic(target, data, permissions=0o600)
    return path


def checksum_path(path: str | os.PathLike) -> Path:
    """Where the SHA-256 of checkpoint ``path`` is kept: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def read_checksum(path: str | os.PathLike) -> str | None:
    """The SHA-256 recorded beside checkpoint ``path`` (None when there is no such file)."""
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        return None
    words = sidecar.read_text(errors="replace").split()
    if not words or len(words[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in words[0]):
        raise CheckpointError(
            f"{sidecar} does not hold a SHA-256 (64 hex digits); delete it to load "
            f"{Path(path).name} unchecked, or copy both files again"
        )
    return words[0].lower()


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(
    path: str | os.PathLike,
    *,
    map_location: str | torch.device = "cpu",
    expected_sha256: str | None = None,
) -> dict[str, Any]:
    """Read a nodulekit checkpoint safely (``weights_only=True``) and check its contents.

    The file's SHA-256 must equal ``expected_sha256`` when given, else the one recorded in
    ``<path>.sha256`` when that file exists (checkpoints written before checksums had none).

    Raises
    ------
    CheckpointError
        The file is missing, fails its SHA-256, is corrupt or truncated, holds arbitrary
        Python objects, or is not a nodulekit checkpoint (e.g. a bare state dict).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    given = expected_sha256 is not None
    expected = expected_sha256.strip().lower() if given else read_checksum(path)
    if expected is not None:
        actual = sha256_of(path)
        if actual != expected and given:
            raise CheckpointError(
                f"checkpoint {path} has SHA-256 {actual}, not the expected {expected}; the "
                "file is damaged or not the one you meant: download or copy it again"
            )
        if actual != expected:
            raise CheckpointError(
                f"checkpoint {path} is corrupt, truncated or changed since it was saved: its "
                f"SHA-256 is {actual}, not {expected} as recorded in {checksum_path(path).name}; "
                "copy it again with its .sha256, or use another checkpoint of the run "
                "(last.pt, best.pt)"
            )
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; check before unpickling
        raise CheckpointError(
            f"checkpoint {path} is corrupt, truncated or not a torch.save file (it is no zip "
            f"archive; {path.stat().st_size} bytes); save it again or use another file"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"checkpoint {path} holds Python objects that a safe load refuses "
            f"(weights_only=True), so it was not written by nodulekit: {str(error)[:200]}"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} is corrupt, truncated or unreadable by torch.load "
            f"({type(error).__name__}: {str(error)[:200]}); save it again or use another file"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        what = (
            f"a dict with keys {sorted(map(str, payload))[:6]}"
            if isinstance(payload, dict)
            else f"a {type(payload).__name__}"
        )
        raise CheckpointError(
            f"checkpoint {path} is not a nodulekit checkpoint: it holds {what}, not a dict "
            f"with format={FORMAT!r}; a bare state_dict can be loaded with "
            "model.load_state_dict(torch.load(path, weights_only=True))"
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the keys {missing}; it is incomplete")
    if int(payload["version"]) > VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload['version']}, newer than this "
            f"nodulekit reads ({VERSION}); upgrade nodulekit"
        )
    return payload


def load_model(
    checkpoint: str | os.PathLike, *, device: str = "auto", payload: dict | None = None
) -> tuple[Any, dict]:
    """The checkpoint's model (eval mode, on ``device``) and its training config (a dict).

    The one place a model is rebuilt from a checkpoint (evaluation, explanations, the report).
    ``payload``: the checkpoint as `load_checkpoint` already returned it (read and verified
    once by a caller that needs more of it), else it is loaded here.

    Raises
    ------
    CheckpointError
        The weights do not fit the model and options the checkpoint's config names.
    """
    from nodulekit.models import build_model
    from nodulekit.train.layout import channels_last
    from nodulekit.train.loop import resolve_device

    payload = load_checkpoint(checkpoint) if payload is None else payload
    config = dict(payload["config"])
    try:
        model = build_model(config.get("model", "cnn"), **config.get("model_options", {}))
        model.load_state_dict(payload["model"])
    except (RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(
            f"checkpoint {checkpoint}: its weights do not fit model {config.get('model')!r} "
            f"with options {config.get('model_options')} ({str(error)[:200]})"
        ) from error
    return channels_last(model.to(resolve_device(device))).eval(), config
