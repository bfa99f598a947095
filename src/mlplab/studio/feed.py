"""`LiveFeed`: the callback that turns a training run into the studio's events, as it trains.

Between two optimizer steps (where the model is whole) it measures, at most every
``point_seconds`` and every ``every_steps`` steps, what the page draws: the mean training loss
since the last point, the current model on a fixed probe of held-out images (loss, accuracy and
confusion matrix), the learning rate and the images per second; about once a second it adds the
first layer's weights. Everything it publishes is plain JSON data; publishing never blocks
training (`mlplab.studio.session.Hub` queues it for each browser).

The probe never touches the random streams, the data order or the weights (it runs in eval mode
under ``torch.no_grad`` and puts train mode back), so a watched run trains bit for bit as an
unwatched one. Its cost is bounded: a point waits at least 20 times what the last one cost, so
watching takes at most about 5% of the training time, whatever the machine's load.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mlplab.metrics import confusion_matrix
from mlplab.runs.state import Callback, FitState

PROBE_SIZE = 1000  # held-out images scored at every point
EVERY_STEPS = 20  # the fewest optimizer steps between two points ("every few dozen steps")
POINT_SECONDS = 0.05  # the fewest seconds between two points: at most 20 a second, however quick the steps
SHARE = 20  # wait at least 20 times a point's own cost before the next: watching takes <= 5% of training
SNAPSHOT_SECONDS = 0.5  # the fewest seconds between two weight pictures (64 units: about 67 kB of base64)
WEIGHT_UNITS = 64  # first-layer units shown
PAIRS = 6  # most confused pairs listed

Publish = Callable[[str, dict[str, Any]], None]


class LiveFeed(Callback):
    """Publishes points, snapshots, epochs, changes and the test result of the run `fit` trains.

    Args:
        publish: ``publish(kind, data)``, called on the training thread (it must not block).
        probe: ``(images, labels)`` scored at every point (on the model's device).
        on_weights: called with ``(model, step)`` at every point, on the training thread: the
            studio copies the weights its drawing pad reads (`mlplab.studio.inspect.Inspector`).
        paused_seconds: a function giving the seconds spent paused so far (left out of the speed).
    """

    def __init__(
        self,
        publish: Publish,
        probe: tuple[Tensor, Tensor],
        *,
        on_weights: Callable[[Any, int], None] | None = None,
        paused_seconds: Callable[[], float] = lambda: 0.0,
        every_steps: int = EVERY_STEPS,
        point_seconds: float = POINT_SECONDS,
        snapshot_seconds: float = SNAPSHOT_SECONDS,
    ) -> None:
        self.publish = publish
        self.probe = probe
        self.on_weights = on_weights
        self.paused_seconds = paused_seconds
        self.every_steps, self.point_seconds, self.snapshot_seconds = every_steps, point_seconds, snapshot_seconds
        self.state: FitState | None = None
        self._losses: list[Any] = []  # batch losses since the last point (0-d tensors: summed once, at the point)
        self._images = 0  # images trained on since the last point
        self._last_step = -1
        self._last_point = self._last_snapshot = -math.inf
        self._clock = (time.perf_counter(), 0.0)  # (time, paused seconds) at the last point
        self._changes_seen = 0
        self._cost = 0.0  # seconds the last point took to measure and publish
        self._epoch = 0  # the epoch in progress (the last one finished, between epochs)

    def on_fit_start(self, state: FitState) -> None:
        self.state = state
        self._changes_seen = len(state.history.changes)
        self._clock = (time.perf_counter(), self.paused_seconds())
        self._epoch = state.epoch
        self.emit(state.step, snapshot=True)  # the untrained (or resumed) model: the curves' first point
        self._cost = 0.0  # that first one paid for warming up: it says nothing of the points to come

    def on_epoch_start(self, state: FitState, epoch: int) -> None:
        self._epoch = epoch

    def on_batch_start(self, images: Tensor, step: int) -> Tensor:
        self._publish_changes()
        now = time.perf_counter()
        wait = max(self.point_seconds, SHARE * self._cost)
        if step - self._last_step >= self.every_steps and now - self._last_point >= wait:
            self.emit(step, snapshot=now - self._last_snapshot >= self.snapshot_seconds)
        self._images += images.shape[0]
        return images

    def on_batch_end(self, loss: Any) -> None:
        self._losses.append(loss.detach() if isinstance(loss, Tensor) else loss)

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        self._publish_changes()
        self.emit(state.step, snapshot=True)
        self.publish("epoch", dict(record))

    def on_fit_end(self, state: FitState) -> None:
        metrics = state.metrics or {}
        self.publish(
            "done",
            {
                "test_accuracy": metrics.get("test_accuracy"),
                "test_loss": metrics.get("test_loss"),
                "tested_epoch": metrics.get("tested_epoch"),
                "stopped": (state.history.stopped or {}).get("reason"),
            },
        )

    def emit(self, step: int, snapshot: bool = False) -> None:
        """Measure and publish a point at ``step`` (and a snapshot when asked)."""
        state = self.state
        assert state is not None
        started = time.perf_counter()
        probe = self.score_probe(state)
        now, paused = time.perf_counter(), self.paused_seconds()
        seconds = (now - self._clock[0]) - (paused - self._clock[1])
        group = state.optimizer.param_groups[0]
        total = state.epochs * state.num_batches if state.num_batches else None
        self.publish(
            "point",
            {
                "step": step,
                "epoch": self._epoch,
                "progress": min(1.0, step / total) if total else None,
                "train_loss": float(sum(self._losses) / len(self._losses)) if self._losses else None,
                "probe_loss": probe["loss"],
                "probe_accuracy": probe["accuracy"],
                "lr": float(group["lr"]),
                "momentum": group.get("momentum"),
                "images_per_second": self._images / seconds if self._images and seconds > 0 else None,
            },
        )
        if snapshot:
            self.publish(
                "snapshot",
                {
                    "step": step,
                    "weights": first_layer_picture(state.eval_model),
                    "confusion": probe["confusion"],
                    "pairs": confused_pairs(probe["confusion"], state.classes),
                    "probe_size": probe["count"],
                },
            )
            self._last_snapshot = now
        if self.on_weights is not None:
            self.on_weights(state.eval_model, step)
        self._losses, self._images, self._last_step, self._last_point = [], 0, step, now
        self._clock = (now, paused)
        self._cost = time.perf_counter() - started

    def score_probe(self, state: FitState) -> dict[str, Any]:
        """Loss, accuracy and confusion matrix of ``state``'s model as it is, on the probe images (train mode kept)."""
        model, (images, labels) = state.eval_model, self.probe
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                outputs = model(images)
                loss = float(state.loss(outputs, labels))
                predicted = outputs.argmax(dim=1)
        finally:
            if was_training:
                model.train()
        confusion = confusion_matrix(predicted, labels, outputs.shape[1]).cpu()
        correct = int(confusion.trace())
        return {
            "loss": loss if math.isfinite(loss) else None,
            "accuracy": correct / labels.shape[0],
            "count": int(labels.shape[0]),
            "confusion": confusion.tolist(),
        }

    def _publish_changes(self) -> None:
        """Tell the page of changes `mlplab.Steering` recorded since it last looked."""
        changes = self.state.history.changes if self.state is not None else []
        for change in changes[self._changes_seen :]:
            self.publish("change", dict(change))
        self._changes_seen = len(changes)


def first_layer_picture(model: Any, units: int = WEIGHT_UNITS) -> dict[str, Any] | None:
    """The incoming weights of the first layer's first ``units`` units as 28x28 pictures: bytes
    ``128 + 127 * w / scale`` (128 is 0, 255 is +scale, 1 is -scale), base64, unit after unit."""
    linears = (
        model.linears() if hasattr(model, "linears") else [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    )
    if not linears or linears[0].in_features != 784:
        return None
    weight = linears[0].weight.detach()[:units].to("cpu", torch.float32)  # (units, 784)
    scale = float(weight.abs().max()) or 1.0
    if not math.isfinite(scale):
        return None
    data = (128 + 127 * weight / scale).round().clamp(1, 255).to(torch.uint8)
    return {
        "units": int(weight.shape[0]),
        "rows": 28,
        "cols": 28,
        "scale": scale,
        "data": base64.b64encode(data.numpy().tobytes()).decode("ascii"),
    }


def confused_pairs(confusion: list[list[int]], classes: list[str] | None, count: int = PAIRS) -> list[dict[str, Any]]:
    """The ``count`` most frequent mistakes of a confusion matrix (rows true, columns predicted), most first."""
    names = classes or [str(index) for index in range(len(confusion))]
    mistakes = [
        (confusion[true][predicted], true, predicted)
        for true in range(len(confusion))
        for predicted in range(len(confusion))
        if true != predicted and confusion[true][predicted] > 0
    ]
    mistakes.sort(key=lambda item: (-item[0], item[1], item[2]))
    return [
        {"true": names[true], "predicted": names[predicted], "count": number}
        for number, true, predicted in mistakes[:count]
    ]
