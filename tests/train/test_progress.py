"""One progress line per epoch, epochs counted from 1; quiet when asked."""

from __future__ import annotations

import io

from nodulekit.train.handlers import ProgressLine
from nodulekit.train.loop import fit
from tests.train.test_loop import _config, _datasets


def test_one_line_per_epoch_with_loss_auc_seconds_and_time_left():
    stream = io.StringIO()
    line = ProgressLine(total_epochs=4, stream=stream)
    row = {"epoch": 0, "train_loss": 0.61234, "val_auc": 0.91, "seconds": 30.0}
    line.on_epoch_end(row)
    line.on_epoch_end({**row, "epoch": 1, "seconds": 50.0})
    line.on_epoch_end({**row, "epoch": 3, "seconds": 10.0})
    assert stream.getvalue().splitlines() == [
        "epoch 1/4  loss 0.6123  val AUC 0.9100  30.0 s  about 1 min 30 s left",
        "epoch 2/4  loss 0.6123  val AUC 0.9100  50.0 s  about 1 min 20 s left",
        "epoch 4/4  loss 0.6123  val AUC 0.9100  10.0 s  done",
    ]


def test_fit_prints_a_line_per_epoch_unless_quiet(fake_cache, tmp_path, capsys):
    fit(_config(tmp_path, "a", epochs=2), *_datasets(fake_cache))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    fit(_config(tmp_path, "b", epochs=2, quiet=True), *_datasets(fake_cache))
    assert capsys.readouterr().out == ""
