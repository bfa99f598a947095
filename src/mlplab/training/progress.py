"""`ProgressBar`: the callback that shows training as it goes, for notebooks and the command line.

It is the one place outside the CLI that prints, and only when asked for:
``fit(..., callbacks=[mlplab.ProgressBar()])``. Bars are tqdm's (``tqdm.auto``: a widget in
Jupyter, text in a terminal); the per-epoch lines go to ``stream``.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from mlplab.runs.state import Callback, FitState


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """``epoch 2/3  train loss 0.2108 acc  93.57%  val loss ... acc ...  lr 0.01  1.9s``."""
    line = (
        f"epoch {record['epoch']:>{len(str(epochs))}}/{epochs}  "
        f"train loss {record['train_loss']:.4f} acc {100 * record['train_accuracy']:6.2f}%"
    )
    if record["val_loss"] is not None:
        line += f"  val loss {record['val_loss']:.4f} acc {100 * record['val_accuracy']:6.2f}%"
    return line + f"  lr {record['lr']:.4g}  {record['seconds']:.1f}s"


def threads_line(entry: dict[str, Any]) -> str:
    """``threads: 1 from step 1234 (1.0 of 2 CPUs busy with other work, 1.0 free; ...)``: a change of CPU threads."""
    return f"threads: {entry['threads']} from step {entry['step']} ({entry['reason']})"


def _tqdm() -> Any:
    """tqdm's bar: a widget in a notebook that has ipywidgets, text elsewhere (and in a notebook without them)."""
    from mlplab.session import in_notebook

    if in_notebook() and importlib.util.find_spec("ipywidgets") is None:  # tqdm.auto would warn, then fall back
        from tqdm import tqdm

        return tqdm
    from tqdm.auto import tqdm

    return tqdm


class ProgressBar(Callback):
    """A bar over each epoch's batches, then one line per epoch and the test result.

    Args:
        bar: show the per-batch bar (``None``: only where the output is a terminal or a notebook).
        stream: where the lines go (stdout).
    """

    def __init__(self, bar: bool | None = True, stream: Any = None) -> None:
        self.show_bar = bar
        self.stream = stream or sys.stdout
        self.bar: Any = None
        self.epochs = 0
        self._threads_seen: int | None = None  # entries of the threads log already shown

    def write(self, text: str) -> None:
        """Print one line to the stream, at once."""
        print(text, file=self.stream, flush=True)

    def on_fit_start(self, state: FitState) -> None:
        self.epochs = state.epochs

    def on_epoch_start(self, state: FitState, epoch: int) -> None:
        if self._threads_seen is None:
            self._threads_seen = len(state.history.threads)  # the choice training started with is the header's
        if self.show_bar is not False:
            tqdm = _tqdm()
            self.bar = tqdm(
                total=state.num_batches,
                desc=f"epoch {epoch}/{state.epochs}",
                unit="batch",
                leave=False,
                disable=None if self.show_bar is None else False,
                mininterval=0.2,
            )

    def on_batch_end(self, loss: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        self.close()
        self.write(epoch_line(record, state.epochs))
        for entry in state.history.threads[self._threads_seen or 0 :]:
            self.write(threads_line(entry))
        self._threads_seen = len(state.history.threads)

    def on_fit_end(self, state: FitState) -> None:
        metrics = state.metrics
        if metrics is not None:
            self.write(
                f"test loss {metrics['test_loss']:.4f}  accuracy {100 * metrics['test_accuracy']:.2f}% "
                f"({metrics['test_count']} images, epoch {metrics['tested_epoch']})"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TrainingBar(Callback):
    """One bar over a whole training (every epoch's batches), left on screen when it ends, with the
    epoch and its validation accuracy: for a training the user did not start by itself, such as the
    model `mlplab.pretrained` trains on first use. It prints nothing else.

    Args:
        description: the bar's label, e.g. ``"digits model"``.
        bar: show it (``None``: only where the output is a terminal or a notebook).
    """

    def __init__(self, description: str, bar: bool | None = None) -> None:
        self.description = description
        self.show_bar = bar
        self.bar: Any = None

    def on_fit_start(self, state: FitState) -> None:
        if self.show_bar is not False:
            total = None if state.num_batches is None else state.num_batches * (state.epochs - state.epoch)
            self.bar = _tqdm()(
                total=total,
                desc=self.description,
                unit="batch",
                leave=True,
                disable=None if self.show_bar is None else False,
                mininterval=0.2,
            )

    def on_batch_end(self, loss: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        if self.bar is not None:
            accuracy = record["val_accuracy"] if record["val_accuracy"] is not None else record["train_accuracy"]
            which = "val" if record["val_accuracy"] is not None else "train"
            self.bar.set_postfix_str(f"epoch {record['epoch']}/{state.epochs}, {which} {100 * accuracy:.2f}%")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
