"""Callbacks that act on training itself: `EarlyStopping`, `BatchLossLog` (the interface, `Callback`
and `FitState`, is `mlplab.runs.state`; `MaxNorm` and `WeightAverage` are `mlplab.training.weights`)."""

from __future__ import annotations

from typing import Any

from mlplab.metrics import AverageMeter
from mlplab.runs.state import Callback, FitState


class EarlyStopping(Callback):
    """Stop training once the best epoch is ``patience`` epochs behind: no better validation accuracy since.

    "Best" is `fit`'s own judgement (validation accuracy, or training accuracy without validation
    data; the earliest of equal scores), kept in ``state.best`` and in every checkpoint, so a
    resumed run stops exactly where an uninterrupted one would.

    Args:
        patience: epochs without a new best before training stops, >= 1.
    """

    def __init__(self, patience: int) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a whole number >= 1; got {patience!r}")
        self.patience = patience

    def on_fit_start(self, state: FitState) -> None:
        self._check(state)  # a resumed run that had stopped stays stopped

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        self._check(state)

    def _check(self, state: FitState) -> None:
        reason = early_stop(state.best, state.epoch, state.epochs, self.patience)
        if reason is not None:
            state.stop, state.stop_reason = True, reason


def early_stop(best: dict[str, Any] | None, epoch: int, epochs: int, patience: int) -> str | None:
    """Why a run whose best epoch is ``best`` should stop after ``epoch`` of ``epochs``; None to go on.

    The rule of `EarlyStopping` (the vectorised trainer applies it to each member too): stop once
    the best epoch is ``patience`` epochs behind, unless ``epoch`` is the last anyway.
    """
    if best is None or epoch - best["epoch"] < patience or epoch >= epochs:
        return None
    metric = best["metric"].replace("_", " ")
    return (
        f"early stopping: no better {metric} than epoch {best['epoch']}'s {best['score']:.4f} "
        f"in {patience} epoch{'s' if patience > 1 else ''}"
    )


class BatchLossLog(Callback):
    """Record every training batch's loss in ``history.batch_losses`` (batches.csv in a run directory);
    ``fit(log_batches=True)`` makes one, placed before the run's writer so each epoch is saved with its batches."""

    def on_epoch_start(self, state: FitState, epoch: int) -> None:
        self.losses = AverageMeter()  # keeps 0-d tensors as they come: one device sync, at the epoch's end

    def on_batch_end(self, loss: Any) -> None:
        self.losses.update(loss)

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        state.history.batch_losses.extend(self.losses.values())
