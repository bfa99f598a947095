"""A run as its watchers see it while it trains: the `Callback` interface `fit` calls and the `FitState` it passes.

A callback subclasses `Callback` and overrides the hooks it needs; `fit` calls them in
this order::

    on_fit_start(state)                      once, before the first epoch (a resume has restored state)
    on_epoch_start(state, epoch)             per epoch
        on_batch_start(images, step)         per training batch, before its step: the images it trains on
        on_step_end()                        after its optimizer step (a constraint, an average of the weights)
        on_batch_end(loss)                   then, with the batch-mean loss (a 0-d tensor or float)
    on_epoch_end(state, record)              per epoch, with the epoch's history record
    on_fit_end(state)                        once, after the last epoch (``state.metrics``: the test metrics)
    close()                                  always, last, also when training failed or was interrupted

The three per-batch hooks are `fit`'s one way to act at every step: `mlplab.MaxNorm`,
`mlplab.WeightAverage` and `mlplab.training.callbacks.BatchLossLog` are callbacks, and fit's
``max_norm=``, ``average=`` and ``log_batches=`` only make them for you (``augment=`` runs
as an ``on_batch_start``). They take no state, so a step pays only for the callbacks that
override them (see `Callback.overrides`).

Callbacks run in the order given, after the run directory's writer (`mlplab.runs.writer`):
when a callback sees an epoch end, the epoch is already saved. The callbacks fit makes from
its arguments run before the writer. A callback ends training early
(`EarlyStopping` does) by setting ``state.stop = True`` (and ``state.stop_reason``) in
``on_epoch_end``, or in ``on_fit_start`` for a resumed run that had already stopped: no
further epoch starts, ``history.stopped`` records the epoch and the reason, and
``on_fit_end`` follows as usual. Nothing in the loop prints:
the CLI's progress bar and summary lines are callbacks too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplab.runs.history import History

if TYPE_CHECKING:  # the CLI's callbacks import this module, and the CLI starts without torch
    import torch
    from torch import Tensor, nn


@dataclass
class FitState:
    """Everything `fit` works with, as callbacks see it (they may read it; the writer of a resume fills it)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any  # mlplab.Schedule or None
    loss: Any  # the loss callable
    engine: str  # name of the engine computing the gradients
    epochs: int  # the epoch training ends after
    train_data: Iterable[Any]
    device: torch.device
    num_batches: int | None = None  # training batches per epoch, when the data has a length
    epoch: int = 0  # epochs finished (a resume starts from its checkpoint's)
    step: int = 0  # optimizer steps taken
    best: dict[str, Any] | None = None  # {"epoch", "score", "metric"} of the best epoch so far
    best_weights: dict[str, torch.Tensor] | None = None  # its state dict, while it is not the model's own
    new_best: bool = False  # whether the epoch that just ended is the new best
    stop: bool = False  # set by a callback's on_epoch_end to end training after this epoch
    stop_reason: str | None = None  # why, in words, for the history (`History.stopped`)
    average: Any = None  # a `mlplab.training.weights.WeightAverage` when the weights are averaged
    history: History = field(default_factory=History)
    metrics: dict[str, Any] | None = None  # the test metrics, once training is over
    run_dir: Path | None = None  # where the run is written, if anywhere
    classes: list[str] | None = None  # class names, for per-class metrics
    precision: str = "32-true"  # what the training steps compute in (`mlplab.precision`)
    threads: Any = None  # the `mlplab.threads.ThreadGovernor` choosing the CPU threads (its log: history.threads)

    @property
    def eval_model(self) -> nn.Module:
        """The model that is validated, tested and saved: the averaged one when weights are averaged."""
        return self.average.module if self.average is not None else self.model


class Callback:
    """Base class of training callbacks: every hook does nothing until overridden (see the module docstring)."""

    def on_fit_start(self, state: FitState) -> None:
        """Before the first epoch (after a resume restored ``state``)."""

    def on_epoch_start(self, state: FitState, epoch: int) -> None:
        """Before epoch ``epoch`` (1-based) trains."""

    def on_batch_start(self, images: Tensor, step: int) -> Tensor:
        """Before each training step: return the images it trains on (changed, as augmentation does, or
        as they are); ``step`` counts the run's optimizer steps before this one."""
        return images

    def on_step_end(self) -> None:
        """After each optimizer step, before the schedule steps."""

    def on_batch_end(self, loss: Any) -> None:
        """After each training batch's optimizer step, with its batch-mean loss."""

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        """After an epoch is trained, validated and (with a run directory) saved."""

    def on_fit_end(self, state: FitState) -> None:
        """After the last epoch; ``state.metrics`` holds the test metrics when there is test data."""

    def close(self) -> None:
        """Release what the callback holds (files, locks, tracker runs); called however fit ends."""

    def overrides(self, hook: str) -> bool:
        """Whether this callback's class implements ``hook`` (so per-batch calls skip those that do not)."""
        return getattr(type(self), hook) is not getattr(Callback, hook)


def check_callbacks(callbacks: Iterable[Any]) -> list[Callback]:
    """The callbacks as a list, refusing anything that is not a `Callback`."""
    checked = list(callbacks)
    for callback in checked:
        if not isinstance(callback, Callback):
            raise TypeError(
                f"callbacks must subclass mlplab.Callback; got {type(callback).__name__} "
                "(subclass it and override the hooks you need)"
            )
    return checked
