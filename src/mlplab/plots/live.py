"""`LivePlot`: loss and accuracy curves redrawn in a notebook while a model trains (like fastai's ShowGraph).

A callback for `fit` (``callbacks=[mlplab.LivePlot()]``), or fed by a training loop of your own
(``live.batch(loss)`` per batch, ``live.update(epoch=..., train_loss=..., ...)`` per epoch). In a
Jupyter kernel (JupyterLab, Notebook, VS Code) the picture is one output that is replaced in place
after every epoch, and during a long epoch at most once per ``interval`` seconds (and never
more than 5% of the time); elsewhere
nothing is shown and ``live.figure`` (or ``live.save(path)``) holds the curves at the end.

The figure is a ``matplotlib.figure.Figure`` drawn without pyplot, so it never changes the
notebook's matplotlib backend and is not shown a second time when the cell ends.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from mlplab.errors import MlplabError
from mlplab.runs.state import Callback, FitState
from mlplab.session import in_notebook

TRAIN, VAL = "#1f77b4", "#ff7f0e"  # the colours of `mlplab.plots.charts.training_curves`
DRAW_SHARE = 20  # within an epoch, wait at least 20 redraws' time between two: drawing takes <= 5%
KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


class LivePlot(Callback):
    """Training curves that redraw in the notebook as training goes: loss on the left, accuracy (%) on the right.

    Args:
        title: the figure's title (default "Training curves").
        epochs: the number of epochs, to fix the x axis from the start (`fit` sets it).
        interval: the fewest seconds between two redraws within an epoch (0: only at epoch ends);
            longer where a redraw is slow, so that drawing never takes more than 5% of the time.
        loss_name: the loss's label on the y axis, with its unit.
        show: draw in the notebook (default: when running in a Jupyter kernel).
        epoch_name: what one step of the x axis is called ("sweep" for full-batch training).

    Example, with a loop of your own (accuracies are fractions in [0, 1], as in `History`)::

        live = mlplab.LivePlot(title="784-16-32-24-10 on MNIST", epochs=5)
        for epoch in range(1, 6):
            for images, labels in train:
                ...
                live.batch(loss.item())
            live.update(epoch=epoch, train_loss=..., train_accuracy=..., val_loss=..., val_accuracy=...)
    """

    def __init__(
        self,
        title: str | None = None,
        epochs: int | None = None,
        interval: float = 1.0,
        loss_name: str = "loss (mean per image)",
        show: bool | None = None,
        epoch_name: str = "epoch",
    ) -> None:
        self.title = title or "Training curves"
        self.epochs = epochs
        self.interval = interval
        self.loss_name = loss_name
        self.epoch_name = epoch_name
        self.show = in_notebook() if show is None else show
        self.records: list[dict[str, Any]] = []  # one per epoch: "epoch" and any of KEYS
        self.batch_losses: list[list[float]] = [[]]  # per epoch, the batches' losses; the last list is filling
        self._figure: Any = None
        self._display: Any = None  # the IPython display handle updated in place
        self._drawn_at = 0.0
        self._draw_seconds = 0.0  # what the last redraw took (a PNG of the figure: about 0.1-0.2 s)

    def batch(self, loss: Any) -> None:
        """Record one training batch's loss (a float or a 0-d tensor); redraws at most every ``interval`` s."""
        self.batch_losses[-1].append(float(loss))
        # At most one redraw per ``interval``, and never more than 5% of the time training takes.
        wait = max(self.interval, DRAW_SHARE * self._draw_seconds)
        if self.show and self.interval and time.monotonic() - self._drawn_at >= wait:
            self.draw()

    def update(self, record: dict[str, Any] | None = None, **values: Any) -> None:
        """Add one epoch's numbers (a `History` record, or keyword arguments) and redraw.

        Keys: ``epoch`` (default: the next one), ``train_loss``, ``train_accuracy``, ``val_loss``,
        ``val_accuracy``; any may be missing or None; accuracies are fractions in [0, 1].
        """
        merged = {**(record or {}), **values}
        unknown = sorted(set(merged) - {"epoch", *KEYS}) if record is None else []
        if unknown:
            raise MlplabError(f"LivePlot.update takes epoch and {', '.join(KEYS)}; got {', '.join(unknown)}")
        epoch = merged.get("epoch") or len(self.records) + 1
        self.records.append({"epoch": epoch, **{key: _number(merged.get(key)) for key in KEYS}})
        self.batch_losses.append([])
        self.draw()

    # -- as a callback of fit
    def on_fit_start(self, state: FitState) -> None:
        self.epochs = state.epochs
        self.records, self.batch_losses = [], [[]]
        for record in state.history.epochs:  # a resumed run shows the epochs it already has
            self.update(record)

    def on_batch_end(self, loss: Any) -> None:
        self.batch(loss)

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        self.update(record)

    # -- the picture
    @property
    def figure(self) -> Any:
        """The matplotlib Figure with the curves so far."""
        if self._figure is None:
            from matplotlib.figure import Figure

            self._figure = Figure(figsize=(11, 4.2))
        self._redraw(self._figure)
        return self._figure

    def draw(self) -> None:
        """Redraw the curves; in a notebook, replace the previous picture in place."""
        started = time.monotonic()
        if self.show:
            from IPython.display import Image, display

            image = Image(data=self._png())
            if self._display is None:
                self._display = display(image, display_id=True)
            else:
                self._display.update(image)
        self._drawn_at = time.monotonic()
        self._draw_seconds = self._drawn_at - started

    def save(self, path: str | Path) -> Path:
        """Write the curves to ``path`` (.png or .svg), atomically."""
        from mlplab.plots.backend import save

        return save(self.figure, path)[0]

    def _png(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()

    def _redraw(self, figure: Any) -> None:
        from matplotlib.ticker import MaxNLocator

        figure.clear()
        loss_axis, accuracy_axis = figure.subplots(1, 2)
        self._draw_batches(loss_axis)
        mean = " (epoch mean)" if self.epoch_name == "epoch" else ""
        # The x axis spans the epochs to come, the last one recorded (numbers need not count from 1 by 1),
        # and an epoch whose batches are filling.
        last = max(
            self.epochs or 0,
            max((record["epoch"] for record in self.records), default=0),
            len(self.batch_losses) - 1 + bool(self.batch_losses[-1]),
        )
        for axis, key, scale in ((loss_axis, "loss", 1.0), (accuracy_axis, "accuracy", 100.0)):
            for split, color, label in (("train", TRAIN, f"training{mean}"), ("val", VAL, "validation")):
                points = [
                    (r["epoch"], scale * r[f"{split}_{key}"]) for r in self.records if r[f"{split}_{key}"] is not None
                ]
                if points:
                    axis.plot(*zip(*points, strict=True), marker="o", color=color, label=label)
            axis.set_xlabel(self.epoch_name)
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.grid(alpha=0.3)
            axis.set_xlim(0, max(last, 1) + 0.2)
            if axis.has_data():
                axis.legend(fontsize=9, loc="best")
        loss_axis.set_ylabel(self.loss_name)
        loss_axis.set_title("Loss")
        accuracy_axis.set_ylabel("accuracy (%)")
        accuracy_axis.set_title("Accuracy")
        figure.suptitle(self._heading(), fontsize=11)
        # Fixed margins, not tight_layout: that draws the figure once more, doubling each redraw's cost.
        figure.subplots_adjust(left=0.07, right=0.985, bottom=0.12, top=0.85, wspace=0.2)

    def _draw_batches(self, axis: Any) -> None:
        """Each batch's loss, thin, at its place within its epoch (epoch e's batches fill (e-1, e])."""
        xs: list[float] = []
        ys: list[float] = []
        for index, losses in enumerate(self.batch_losses):
            count = len(losses)
            done = index < len(self.batch_losses) - 1  # a filling epoch is spread by the finished ones' length
            per_epoch = count if done else max(count, len(self.batch_losses[index - 1]) if index else count)
            xs += [index + (i + 1) / max(per_epoch, 1) for i in range(count)]
            ys += losses
        if ys:
            axis.plot(xs, ys, color=TRAIN, alpha=0.3, linewidth=0.7, label="training batch")

    def _heading(self) -> str:
        if not self.records:
            return f"{self.title}: {self.epoch_name} 1 training"
        last = self.records[-1]
        parts = [f"{self.epoch_name} {last['epoch']}" + (f"/{self.epochs}" if self.epochs else "")]
        for key, name in (("train_loss", "train loss"), ("val_accuracy", "val acc"), ("train_accuracy", "train acc")):
            if last[key] is not None:
                parts.append(f"{name} {last[key]:.4f}" if "loss" in key else f"{name} {100 * last[key]:.2f}%")
        return f"{self.title}: " + ", ".join(parts[:3])


def _number(value: Any) -> float | None:
    """A float from a float, an int or a 0-d tensor; None stays None."""
    return None if value is None else float(value)
