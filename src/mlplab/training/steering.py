"""`Steering`: pause, stop and retune a run while `fit` trains it, from another thread, with every change recorded.

A teacher's page (`mlplab studio`), a notebook widget or your own thread calls `Steering.pause`,
`resume`, `stop` and `set` while `fit` trains on its own thread; the callback acts on them
between two optimizer steps, where the model, optimizer and schedule are whole:

- a new learning rate or momentum is applied before the next step and recorded in
  ``history.changes`` as ``{"step", "epoch", "lr"}`` or ``{"step", "epoch", "momentum"}``, ``step``
  counting the optimizer steps taken before it. The checkpoint of the epoch carries the
  optimizer's new settings and the record, so ``mlplab train --resume`` continues exactly;
  ``Steering(replay=history.changes)`` applies the same changes at the same steps to a fresh
  run of the same config, which then trains bit for bit as the steered one did.
- ``pause`` holds training before the next step until ``resume`` (or ``stop``); nothing is
  recorded, since a pause changes no number.
- ``stop`` ends training after the epoch in progress: that epoch is saved, the best weights are
  tested, and ``history.stopped`` says why, as with early stopping.
- ``abort`` (a server shutting down) raises `TrainingAborted` before the next step: the run
  directory keeps its last saved epoch, which ``mlplab train --resume`` continues.

A new learning rate under a schedule scales the schedule: the rate becomes the value asked for
now, and every later rate of the schedule is multiplied by the same factor (OneCycleLR's peak and
floor, the base rates of the others), so a one-cycle run still anneals, from the new level.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from mlplab.errors import MlplabError
from mlplab.runs.state import Callback, FitState

SETTINGS = ("lr", "momentum")  # what can be changed while training
# Param-group keys and scheduler attributes holding rates a schedule derives later rates from.
_GROUP_RATES = ("initial_lr", "max_lr", "min_lr")
_SCHEDULER_RATES = ("base_lrs", "max_lrs")  # CyclicLR's peaks; a plateau's floors (min_lrs) stay


class TrainingAborted(MlplabError):
    """`Steering.abort` ended training before a step; the run directory keeps its last saved epoch."""


class Steering(Callback):
    """A callback that lets another thread pause, stop and change the learning rate or momentum of a run.

    Args:
        replay: changes to apply at given steps (``history.changes`` of a steered run): each
            ``{"step": s, "lr": x}`` or ``{"step": s, "momentum": m}`` is applied before the optimizer
            step that follows ``s`` steps, exactly as it was when recorded.
        on_hold: called on the training thread with True when a pause takes hold (every step
            before it is done and every callback has heard of it) and with False when training goes
            on again: what a page shows as "paused" is then true.

    Example (a notebook; ``fit`` trains on a thread, the cell goes on)::

        steering = mlplab.Steering()
        thread = threading.Thread(target=mlplab.fit, args=(model, batches),
                                  kwargs={"epochs": 5, "callbacks": [steering]})
        thread.start()
        steering.set(lr=0.01)        # from the next step on; in history.changes
        steering.pause(); steering.resume(); steering.stop()
    """

    def __init__(self, replay: Iterable[dict[str, Any]] = (), on_hold: Callable[[bool], None] | None = None) -> None:
        self.on_hold = on_hold
        self._lock = threading.Condition()
        self._pending: dict[str, float] = {}
        self._paused = False
        self._stop_reason: str | None = None
        self._aborted: str | None = None
        self._replay = sorted((dict(change) for change in replay), key=lambda change: change["step"])
        for change in self._replay:
            check_change(change)
        self.state: FitState | None = None
        self.paused_seconds = 0.0  # time spent paused so far (so a rate of images per second can leave it out)

    # Called from any thread.

    def set(self, lr: float | None = None, momentum: float | None = None) -> dict[str, float]:
        """Ask for a new learning rate and/or momentum from the next step; returns what is pending.

        Raises `MlplabError` for a rate that is not a positive number, a momentum outside [0, 1),
        or a momentum for an optimizer that has none.
        """
        asked = {name: value for name, value in (("lr", lr), ("momentum", momentum)) if value is not None}
        if not asked:
            raise MlplabError("give a new lr or momentum")
        check_change(asked)
        if "momentum" in asked and self.state is not None and "momentum" not in self.state.optimizer.param_groups[0]:
            name = type(self.state.optimizer).__name__
            raise MlplabError(f"{name} has no momentum setting to change; change its learning rate instead")
        with self._lock:
            self._pending.update({name: float(value) for name, value in asked.items()})
            return dict(self._pending)

    def pause(self) -> None:
        """Hold training before its next step, until `resume` or `stop`."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        """Let a paused run go on."""
        with self._lock:
            self._paused = False
            self._lock.notify_all()

    def stop(self, reason: str = "stopped while training") -> None:
        """End training after the epoch in progress (a paused run is let go to finish it)."""
        with self._lock:
            self._stop_reason = reason
            self._paused = False
            self._lock.notify_all()

    def abort(self, reason: str = "training was aborted") -> None:
        """End training before its next step with `TrainingAborted` (the last saved epoch stays)."""
        with self._lock:
            self._aborted = reason
            self._paused = False
            self._lock.notify_all()

    @property
    def paused(self) -> bool:
        """Whether a pause is asked for (training holds at its next step)."""
        return self._paused

    @property
    def stopping(self) -> bool:
        """Whether a stop is asked for."""
        return self._stop_reason is not None

    # Called by fit, on the training thread.

    def on_fit_start(self, state: FitState) -> None:
        self.state = state

    def on_batch_start(self, images: Any, step: int) -> Any:
        with self._lock:
            hold = self._paused and self._aborted is None
        if hold:
            self._hold()
        with self._lock:
            if self._aborted is not None:
                raise TrainingAborted(self._aborted)
            pending, self._pending = self._pending, {}
        due = []
        while self._replay and self._replay[0]["step"] <= step:
            due.append(self._replay.pop(0))
        for change in due:
            if change["step"] < step:
                raise MlplabError(f"cannot replay the change at step {change['step']}: this run is at step {step}")
            self._apply(step, {name: change[name] for name in SETTINGS if name in change})
        if pending:
            self._apply(step, pending)
        return images

    def _hold(self) -> None:
        """Wait here, between two steps, until resumed, stopped or aborted; tell ``on_hold`` (outside the
        lock: its listener may hold a lock of its own that pause and resume are called under)."""
        if self.on_hold is not None:
            self.on_hold(True)
        with self._lock:
            started = time.monotonic()
            while self._paused and self._aborted is None:
                self._lock.wait()
            self.paused_seconds += time.monotonic() - started
        if self.on_hold is not None:
            self.on_hold(False)

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        if self._stop_reason is not None and state.epoch < state.epochs:
            state.stop, state.stop_reason = True, self._stop_reason

    def _apply(self, step: int, settings: dict[str, float]) -> None:
        """Set each of ``settings`` on every param group before step ``step + 1``, and record it."""
        state = self.state
        assert state is not None, "Steering acts only inside fit"
        for name, value in settings.items():
            if name == "lr":
                set_learning_rate(state.optimizer, state.schedule, value)
            else:
                for group in state.optimizer.param_groups:
                    group["momentum"] = value
            state.history.changes.append({"step": step, "epoch": state.epoch + 1, name: value})


def check_change(change: dict[str, Any]) -> None:
    """Refuse a change that is not a positive learning rate or a momentum in [0, 1)."""
    known = set(SETTINGS) | {"step", "epoch"}
    unknown = sorted(set(change) - known)
    if unknown:
        raise MlplabError(f"unknown setting {', '.join(unknown)}; the settings are lr and momentum")
    for name, low, high in (("lr", 0.0, math.inf), ("momentum", 0.0, 1.0)):
        if name not in change:
            continue
        value = change[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or not (value > low if name == "lr" else low <= value < high):
            wanted = "a number > 0" if name == "lr" else "a number in [0, 1)"
            raise MlplabError(f"{name} must be {wanted}; got {value!r}")


def set_learning_rate(optimizer: Any, schedule: Any, lr: float) -> None:
    """Make ``lr`` the first param group's rate for the next step; every other rate the schedule and
    the other groups hold is multiplied by the same factor (all are set to ``lr`` when the rate is 0)."""
    current = optimizer.param_groups[0]["lr"]
    factor = lr / current if current > 0 else None
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor if factor is not None else lr
        for key in _GROUP_RATES:
            if key in group and factor is not None:
                group[key] = group[key] * factor
    optimizer.param_groups[0]["lr"] = lr  # exactly the value asked for, not a rounded product
    scheduler = getattr(schedule, "scheduler", schedule)
    for name in _SCHEDULER_RATES:
        rates = getattr(scheduler, name, None)
        if isinstance(rates, list) and factor is not None:
            setattr(scheduler, name, [rate * factor for rate in rates])
