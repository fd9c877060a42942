"""`TrainingMonitor`: live loss and validation curves while training runs in a notebook.

Pass it to training as a callback::

    monitor = TrainingMonitor()
    monitor                       # shows the (empty) panel in the notebook
    result = train(config, callbacks=[monitor])

Each epoch it records the metrics row (``monitor.history``, a DataFrame) and, when it is shown
in a notebook, redraws the curves (`nodulekit.viz.training.training_curves_figure`) and a
status line: epoch, throughput, best validation AUC and its checkpoint. Without a notebook
(a script, CI) it only records.
"""

from __future__ import annotations

import html
import time
from typing import Any

import pandas as pd

from nodulekit.viz.training import figure_png, training_curves_figure


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def status_text(
    rows: list[dict[str, Any]], *, epochs: int | None = None, finished: bool = False
) -> str:
    """One line about a run so far (a plain function so a script or a test can call it).

    Examples
    --------
    >>> status_text([{"epoch": 0, "val_auc": 0.9, "samples_per_s": 120.0,
    ...               "best_epoch": 0, "best_checkpoint": "run/best.pt"}], epochs=4)
    'epoch 1/4 · 120 samples/s · best val AUC 0.900 (epoch 1) → run/best.pt'
    """
    if not rows:
        return "done: no epoch ran" if finished else "waiting for the first epoch…"
    last = rows[-1]
    total = f"/{epochs}" if epochs else ""
    parts = [f"epoch {int(last['epoch']) + 1}{total}"]
    if last.get("samples_per_s") is not None:
        parts.append(f"{last['samples_per_s']:.0f} samples/s")
    best = last.get("best_epoch")
    if best is not None:
        column = "val_dice" if "val_dice" in last else "val_auc"  # --task segment: Dice
        score = next((r.get(column) for r in rows if r.get("epoch") == best), float("nan"))
        label = "val Dice" if column == "val_dice" else "val AUC"
        text = f"best {label} {score:.3f} (epoch {int(best) + 1})"
        if last.get("best_checkpoint"):
            text += f" → {last['best_checkpoint']}"
        parts.append(text)
    line = " · ".join(parts)
    return f"done: {line}" if finished else line


class TrainingMonitor:
    """A training callback that records each epoch and, in a notebook, draws live curves.

    Parameters
    ----------
    display : bool, optional
        Draw the widget; default: only inside a Jupyter kernel.
    dpi : int
        Resolution of the curves image.

    Attributes
    ----------
    history : DataFrame
        One row per finished epoch (the ``metrics.csv`` columns plus ``best_epoch``,
        ``best_checkpoint``).
    widget : ipywidgets.VBox or None
        The panel (None when not displaying).
    """

    def __init__(self, *, display: bool | None = None, dpi: int = 80) -> None:
        self.live = _in_notebook() if display is None else bool(display)
        self.dpi = int(dpi)
        self.epochs: int | None = None
        self.finished = False
        self._rows: list[dict[str, Any]] = []
        self._batches = 0
        self._last_batch_draw = 0.0
        self.widget = None
        if self.live:
            import ipywidgets as w

            self._status = w.HTML(value=html.escape(status_text([])))
            self._batch = w.HTML(value="")
            self._image = w.Image(format="png", layout=w.Layout(max_width="900px"))
            self.widget = w.VBox([self._status, self._batch, self._image])
            self._draw_curves()

    # -- callback hooks ------------------------------------------------------------
    def on_train_begin(self, config: Any) -> None:
        self.epochs = getattr(config, "epochs", None)
        self.finished = False

    def on_batch_end(self, step: int, loss: float) -> None:
        self._batches += 1
        now = time.monotonic()
        if self.live and now - self._last_batch_draw > 0.5:  # a cheap line, twice a second
            self._last_batch_draw = now
            self._batch.value = html.escape(f"step {step + 1} · batch loss {loss:.4f}")

    def on_epoch_end(self, metrics: dict[str, Any]) -> None:
        self._rows.append(dict(metrics))
        self.refresh()

    def on_train_end(self, result: Any) -> None:
        self.finished = True
        self.refresh()

    # -- state and drawing -------------------------------------------------------
    @property
    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows)

    @property
    def status(self) -> str:
        return status_text(self._rows, epochs=self.epochs, finished=self.finished)

    def figure(self):
        """The current curves as a matplotlib Figure."""
        best = self._rows[-1].get("best_epoch") if self._rows else None
        return training_curves_figure(self.history, best_epoch=best)

    def _draw_curves(self) -> None:
        self._image.value = figure_png(self.figure(), dpi=self.dpi)

    def refresh(self) -> None:
        """Redraw the status line and the curves (no-op when not displaying)."""
        if not self.live:
            return
        self._status.value = f"<b>{html.escape(self.status)}</b>"
        self._draw_curves()

    def _ipython_display_(self) -> None:  # pragma: no cover - needs a notebook front end
        from IPython.display import display

        if self.widget is None:
            display(self.history)
        else:
            display(self.widget)
