"""Checkpoints: round trip, safe loading, clear errors for corrupt or foreign files."""

from __future__ import annotations

import hashlib
import pickle

import pytest
import torch

from nodulekit.errors import CheckpointError
from nodulekit.models import build_model
from nodulekit.train.checkpoint import load_checkpoint, save_checkpoint


def _save(path, **overrides):
    torch.manual_seed(0)
    model = build_model("default", channels=(2, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    args = dict(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=None,
        epoch=3,
        config={"model": "default", "crop_shape": (8, 8, 8)},
        metrics={"val_auc": 0.9},
        data_fingerprint="abc",
    )
    args.update(overrides)
    return save_checkpoint(path, **args), model


def test_round_trip_loads_with_weights_only(tmp_path):
    path, model = _save(tmp_path / "run" / "last.pt")
    plain = torch.load(path, weights_only=True)  # the safe loader accepts it as it is
    assert plain["format"] == "nodulekit-checkpoint"
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 3
    assert ckpt["config"] == {"model": "default", "crop_shape": [8, 8, 8]}
    assert ckpt["metrics"] == {"val_auc": 0.9}
    assert ckpt["data_fingerprint"] == "abc"
    for key, value in model.state_dict().items():
        assert torch.equal(ckpt["model"][key], value)
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert (path.stat().st_mode & 0o777) == 0o600
    assert not list(path.parent.glob("*.tmp"))


def test_numpy_scalars_are_stored_as_plain_numbers(tmp_path):
    import numpy as np

    path, _ = _save(tmp_path / "a.pt", metrics={"val_auc": np.float64(0.5), "n": np.int64(3)})
    metrics = load_checkpoint(path)["metrics"]
    assert metrics == {"val_auc": 0.5, "n": 3} and type(metrics["n"]) is int


def test_objects_that_are_not_plain_are_refused_when_saving(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint field config\['when'\] holds a object"):
        _save(tmp_path / "a.pt", config={"when": object()})


def test_sha256_is_checked(tmp_path):
    path, _ = _save(tmp_path / "a.pt")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_checkpoint(path, expected_sha256=digest.upper())["epoch"] == 3
    with pytest.raises(
        CheckpointError, match=r"a\.pt has SHA-256 [0-9a-f]{64}, not the expected 00"
    ):
        load_checkpoint(path, expected_sha256="00" * 32)


def test_truncated_file(tmp_path):
    path, _ = _save(tmp_path / "a.pt")
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"a\.pt is corrupt, truncated"):
        load_checkpoint(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint\n")
    with pytest.raises(
        CheckpointError, match=r"notes\.pt is corrupt, truncated or not a torch\.save file"
    ):
        load_checkpoint(path)


class Sneaky:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_random_pickle_is_never_unpickled(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": Sneaky()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt holds Python objects that a safe load"):
        load_checkpoint(path)
    assert "arbitrary code ran" not in capsys.readouterr().out
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Sneaky()))
    with pytest.raises(
        CheckpointError, match=r"plain\.pkl is corrupt, truncated or not a torch\.save file"
    ):
        load_checkpoint(plain)


def test_bare_state_dict_is_foreign(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(build_model("default", channels=(2,)).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"weights\.pt is not a nodulekit checkpoint"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_copies_get_the_same_bytes_and_their_own_checksums(tmp_path):
    from nodulekit.train.checkpoint import checksum_path, load_checkpoint, save_checkpoint

    model = torch.nn.Linear(2, 1)
    last = save_checkpoint(tmp_path / "last.pt", model=model, epoch=3, config={"model": "x"},
                           copies=[tmp_path / "best.pt"])  # fmt: skip
    best = tmp_path / "best.pt"
    assert best.read_bytes() == last.read_bytes()
    assert checksum_path(best).read_text().split() == [
        checksum_path(last).read_text().split()[0],
        "best.pt",
    ]
    assert load_checkpoint(best)["epoch"] == 3  # verified against its own checksum file
