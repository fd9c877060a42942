"""Resume: more epochs work, a mismatch is refused before anything is written, checksums."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
import torch

from nodulekit.errors import CheckpointError
from nodulekit.train.callbacks import StopAfter
from nodulekit.train.checkpoint import checksum_path, load_checkpoint, sha256_of
from nodulekit.train.config import TrainConfig
from nodulekit.train.loop import fit
from nodulekit.train.schedule import make_scheduler, warmup_cosine_factor, warmup_steps
from tests.train.test_loop import TIMING, _config, _datasets


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_resuming_with_more_epochs_trains_them(fake_cache, tmp_path, schedule, capsys):
    fit(_config(tmp_path, epochs=1, schedule=schedule), *_datasets(fake_cache))
    last = tmp_path / "run" / "last.pt"
    result = fit(
        _config(tmp_path, epochs=2, schedule=schedule, resume=str(last)), *_datasets(fake_cache)
    )
    assert result.metrics["epoch"].tolist() == [0, 1]
    assert json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["epochs"] == 2
    assert "planned again over 2 epochs and continues at step 6 of 12" in capsys.readouterr().out
    planned = fit(_config(tmp_path, "two", epochs=2, schedule=schedule), *_datasets(fake_cache))
    # the added epoch follows the 2-epoch schedule exactly
    assert result.metrics["lr"].iloc[1] == pytest.approx(planned.metrics["lr"].iloc[1], rel=1e-12)


def test_resuming_with_fewer_epochs_is_refused_before_anything_is_written(fake_cache, tmp_path):
    fit(_config(tmp_path, epochs=2), *_datasets(fake_cache))
    config_json = (tmp_path / "run" / "config.json").read_text(encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"already trained 2 epochs and --epochs is 1"):
        fit(
            _config(tmp_path, epochs=1, resume=str(tmp_path / "run" / "last.pt")),
            *_datasets(fake_cache),
        )
    assert (tmp_path / "run" / "config.json").read_text(encoding="utf-8") == config_json


def test_resuming_with_other_model_options_names_them_in_one_line(fake_cache, tmp_path):
    fit(_config(tmp_path, epochs=1), *_datasets(fake_cache))
    config_json = (tmp_path / "run" / "config.json").read_text(encoding="utf-8")
    with pytest.raises(CheckpointError) as caught:
        fit(
            _config(
                tmp_path,
                model_options={"channels": [4, 8]},
                resume=str(tmp_path / "run" / "last.pt"),
            ),
            *_datasets(fake_cache),
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "holds a model with other options" in message
    assert "model_options.channels: [4, 8, 16] in the checkpoint, [4, 8] here" in message
    assert (tmp_path / "run" / "config.json").read_text(encoding="utf-8") == config_json


def test_cosine_schedule_resumes_exactly(fake_cache, tmp_path):
    straight = fit(_config(tmp_path, "a", schedule="cosine"), *_datasets(fake_cache))
    fit(_config(tmp_path, "b", schedule="cosine"), *_datasets(fake_cache), callbacks=[StopAfter(1)])
    resumed = fit(
        _config(tmp_path, "b", schedule="cosine", resume=str(tmp_path / "b" / "last.pt")),
        *_datasets(fake_cache),
    )
    pd.testing.assert_frame_equal(
        straight.metrics.drop(columns=TIMING), resumed.metrics.drop(columns=TIMING)
    )


@pytest.mark.parametrize("total", [1, 3, 12, 250])
@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5])
def test_warmup_cosine_is_the_old_hand_written_schedule(total, fraction):
    config = TrainConfig(schedule="cosine", lr=3e-3, warmup_fraction=fraction)
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=config.lr)
    warmup = warmup_steps(config, total)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated scheduler calls
        scheduler = make_scheduler(optimizer, config, total)
        used = []
        for _ in range(total):
            used.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    old = [config.lr * warmup_cosine_factor(s, warmup, total) for s in range(total)]
    assert used == pytest.approx(old, rel=1e-12, abs=1e-18)


def test_checkpoints_carry_a_sha256_that_a_flipped_byte_fails(fake_cache, tmp_path):
    fit(_config(tmp_path, epochs=1), *_datasets(fake_cache))
    best = tmp_path / "run" / "best.pt"
    recorded = checksum_path(best).read_text(encoding="utf-8").split()
    assert recorded == [sha256_of(best), "best.pt"]
    data = bytearray(best.read_bytes())
    data[len(data) // 2] ^= 0x01
    best.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError,
        match=rf"best\.pt is corrupt, truncated or changed since it was saved: its SHA-256 is "
        rf"{sha256_of(best)}, not {recorded[0]} as recorded in best\.pt\.sha256; copy it again",
    ):
        load_checkpoint(best)


def test_a_garbled_checksum_file_is_named(fake_cache, tmp_path):
    fit(_config(tmp_path, epochs=1), *_datasets(fake_cache))
    checksum_path(tmp_path / "run" / "last.pt").write_text("not a hash\n")
    with pytest.raises(CheckpointError, match=r"last\.pt\.sha256 does not hold a SHA-256"):
        load_checkpoint(tmp_path / "run" / "last.pt")


def test_a_checkpoint_of_an_old_run_named_default_resumes(fake_cache, tmp_path):
    fit(_config(tmp_path, epochs=1), *_datasets(fake_cache))
    old = load_checkpoint(tmp_path / "run" / "last.pt")
    old["config"]["model"] = "default"  # what runs before the rename stored
    torch.save(old, tmp_path / "old.pt")  # and without a .sha256, as they were written
    values = {**old["config"], "epochs": 2, "out": str(tmp_path / "new")}
    config = TrainConfig.from_dict({**values, "resume": str(tmp_path / "old.pt")})
    assert config.model == "cnn"
    assert fit(config, *_datasets(fake_cache)).metrics["epoch"].tolist() == [0, 1]
