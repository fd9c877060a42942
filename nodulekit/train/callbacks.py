"""The tiny callback protocol of the training loop.

A callback is any object with some of these methods (missing ones are skipped):

- ``on_train_begin(config)``: once, before the first epoch;
- ``on_batch_end(step, loss)``: after each optimiser step (``step`` counts from 0 over the run);
- ``on_epoch_end(metrics) -> bool | None``: after validation, with that epoch's metrics row
  (the dict written to ``metrics.csv``, ``epoch`` counted from 0, plus ``best_epoch`` and
  ``best_checkpoint``); return ``True`` to stop: the run then ends as ``"stopped"`` and does
  not score the test split (`TrainResult.stop_reason`);
- ``on_train_end(result)``: once, with the `TrainResult`.

Only rank 0 of a distributed run calls them. The loop's own handlers
(`nodulekit.train.handlers`: metrics file, checkpoints, progress line, early stopping) follow
the same protocol and run before these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Callback(Protocol):
    """Hooks the training loop calls; implement any subset."""

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool | None: ...


class CallbackList:
    """Calls a hook on every callback that defines it."""

    def __init__(self, callbacks: Iterable[Any] = ()) -> None:
        self.callbacks = list(callbacks)

    def call(self, hook: str, *args: Any) -> bool:
        """Call ``hook`` on each callback; True if any returned True (a stop request)."""
        stop = False
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None and method(*args) is True:
                stop = True
        return stop


class History:
    """A callback that keeps every epoch's metrics row (``history.rows``)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_epoch_end(self, metrics: dict[str, Any]) -> None:
        self.rows.append(dict(metrics))


class StopAfter:
    """A callback that stops training after ``epochs`` epochs of this run (e.g. to test resume)."""

    def __init__(self, epochs: int) -> None:
        self.epochs, self.seen = int(epochs), 0

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        self.seen += 1
        return self.seen >= self.epochs
