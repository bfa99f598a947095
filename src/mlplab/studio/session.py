"""`Studio`: the one run a studio trains at a time, on its own thread, and the `Hub` that tells every browser.

A run is an ordinary ``mlplab train`` run: `Studio.start` resolves a `Config` from the page's
fields (a preset, then the fields; bad values refused before anything starts), and a training
thread builds it with `mlplab.training.runner.prepare` and trains it with `train_prepared`, the
same calls as ``mlplab train``, with two more callbacks: `mlplab.Steering` (pause, stop, a new
learning rate or momentum) and `LiveFeed` (what the page draws). So the run directory is an
ordinary one: ``mlplab train --resume``, ``mlplab report`` and `mlplab.open_run` read it.

Everything the page shows is kept here as plain data (the points, epochs, changes, the last
snapshot), so a browser that connects late, or reconnects, gets the whole picture first.
The event loop never waits for training: the trainer publishes into the `Hub`, which hands
each event to every browser's queue with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from pathlib import Path
from typing import Any

from mlplab.errors import MlplabError, one_line

ACTIVE = ("preparing", "training", "paused", "stopping")  # a run is under way: no second one starts
QUEUE = 512  # events a slow browser may fall behind by before it is sent the whole picture again
MAX_POINTS = 4000  # points kept for late browsers; beyond, every other one of the older half is dropped
RESYNC = "resync"  # what a browser's queue holds when it fell behind: send the whole state again

# The page's fields: what a run can be set up with (the rest keep the preset's or mlplab's defaults).
FIELDS = (
    "dataset",
    "hidden",
    "activation",
    "optimizer",
    "scheduler",
    "lr",
    "momentum",
    "batch_size",
    "epochs",
    "augment",
    "seed",
    "threads",
)  # threads: fixed, a run is bit for bit the same on any machine's load
# A first run for a class: small and quick (a few seconds an epoch on a laptop), and steerable.
DEFAULTS: dict[str, Any] = {
    "preset": None,
    "dataset": "mnist",
    "hidden": [128],
    "activation": "relu",
    "optimizer": "sgd",
    "scheduler": "none",
    "lr": 0.1,
    "momentum": 0.9,
    "batch_size": 64,
    "epochs": 3,
    "augment": "none",
    "seed": 0,
    "threads": None,
}


class Busy(MlplabError):
    """A request that does not fit the studio's state (a second run, a pause with nothing training)."""


class NoModelYet(Busy):
    """No run has started yet, so there is no model to look inside."""


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as None: browsers' JSON.parse refuses NaN and Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def sse(kind: str, data: Any) -> str:
    """One Server-Sent Event."""
    return f"event: {kind}\ndata: {json.dumps(json_safe(data), separators=(',', ':'))}\n\n"


class Hub:
    """Hands every event to each connected browser's queue, from any thread, never blocking it."""

    def __init__(self) -> None:
        self._clients: dict[asyncio.Queue, asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()

    def subscribe(self) -> asyncio.Queue:
        """A queue of encoded events for a browser (call on the event loop)."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE)
        with self._lock:
            self._clients[queue] = asyncio.get_running_loop()
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        """Forget a browser that went away."""
        with self._lock:
            self._clients.pop(queue, None)

    @property
    def watchers(self) -> int:
        """Browsers connected now."""
        with self._lock:
            return len(self._clients)

    def send(self, event: str) -> None:
        """Queue an encoded event for every browser."""
        with self._lock:
            clients = list(self._clients.items())
        for queue, loop in clients:
            try:
                loop.call_soon_threadsafe(_offer, queue, event)
            except RuntimeError:  # that browser's loop closed: the server is stopping
                pass


def _offer(queue: asyncio.Queue, event: str) -> None:
    """Queue ``event``; a browser too far behind gets the whole state again instead of every event."""
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(RESYNC)


class Studio:
    """The studio's one run at a time: started, steered and watched from the page.

    Args:
        runs_root: the folder new runs are made in (``runs/``), one folder per run as ``mlplab train`` names them.
    """

    def __init__(self, runs_root: str | Path = "runs") -> None:
        self.runs_root = Path(runs_root)
        self.hub = Hub()
        self._lock = threading.RLock()
        self.status: str = "idle"
        self.message: str | None = None
        self.run: dict[str, Any] | None = None
        self.points: list[dict[str, Any]] = []
        self.epochs: list[dict[str, Any]] = []
        self.changes: list[dict[str, Any]] = []
        self.latest: dict[str, Any] | None = None
        self.metrics: dict[str, Any] | None = None
        self.steering: Any = None
        self.inspector: Any = None
        self.test_images: Any = None  # (images uint8 (N, 28, 28), labels) of the run's test split
        self.thread: threading.Thread | None = None
        self.closing = threading.Event()  # set when the server stops: every event stream ends

    def close_streams(self) -> None:
        """End every browser's event stream (a server stopping; safe from a signal handler)."""
        self.closing.set()

    # What the page reads.

    def state(self) -> dict[str, Any]:
        """Everything the page shows, as plain data (`GET /api/state`, the ``hello`` event)."""
        with self._lock:
            return json_safe(
                {
                    "status": self.status,
                    "message": self.message,
                    "run": self.run,
                    "points": list(self.points),
                    "epochs": list(self.epochs),
                    "changes": list(self.changes),
                    "latest": self.latest,
                    "metrics": self.metrics,
                }
            )

    def watch(self) -> tuple[asyncio.Queue, str]:
        """A new browser's queue and its first event, ``hello`` (the whole state), taken together
        (call on the event loop): every event after it is new to that browser, none is missed."""
        with self._lock:
            return self.hub.subscribe(), sse("hello", self.state())

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Keep an event of the run (from `LiveFeed`, on the training thread) and send it to every browser."""
        with self._lock:
            if kind == "point":
                self.points.append(data)
                if len(self.points) > MAX_POINTS:
                    half = len(self.points) // 2
                    self.points = self.points[:half:2] + self.points[half:]
            elif kind == "snapshot":
                self.latest = data
            elif kind == "epoch":
                self.epochs.append(data)
            elif kind == "change":
                self.changes.append(data)
            elif kind == "done":
                self.metrics = data
            self.hub.send(sse(kind, data))

    def _set_status(self, status: str, message: str | None = None) -> None:
        with self._lock:
            self.status, self.message = status, message
            self.hub.send(sse("state", {"status": status, "message": message, "run": self.run}))

    # What the page asks for.

    def start(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Start a run of the page's ``fields`` on the training thread; returns its description.

        Raises `Busy` while another run is under way, `MlplabError` (one line) for a bad field.
        """
        config = self.config_of(fields)
        with self._lock:
            if self.status in ACTIVE:
                assert self.run is not None  # described as its run started
                raise Busy(f"a run is already {self.status} ({self.run['name']}); stop it first")
            from mlplab.training.steering import Steering

            self.steering = Steering(on_hold=self.held)
            self.run = describe_config(config)
            self.points, self.epochs, self.changes, self.latest, self.metrics = [], [], [], None, None
            self._set_status("preparing", "loading the data and building the model")
            self.thread = threading.Thread(
                target=self._train, args=(config, self.steering), daemon=True, name="mlplab-studio-training"
            )
            self.thread.start()
            return dict(self.run)

    def config_of(self, fields: dict[str, Any]) -> Any:
        """The `Config` of the page's fields: the preset's (or mlplab's defaults), then each field given."""
        from mlplab.config import MOMENTUM_OPTIMIZERS, resolve_config
        from mlplab.runs.directory import default_run_dir

        if not isinstance(fields, dict):
            raise MlplabError('send the run\'s settings as a JSON object, e.g. {"hidden": [128], "epochs": 3}')
        unknown = sorted(set(fields) - {*FIELDS, "preset"})
        if unknown:
            raise MlplabError(f"unknown field {', '.join(unknown)}; the fields are preset, {', '.join(FIELDS)}")
        preset = fields.get("preset") or None
        given = {name: value for name, value in fields.items() if name in FIELDS and value is not None}
        if preset is None:  # the page's defaults under the fields given
            given = {**{name: DEFAULTS[name] for name in FIELDS if DEFAULTS[name] is not None}, **given}
        if given.get("optimizer", "sgd") not in MOMENTUM_OPTIMIZERS:
            given.pop("momentum", None)  # the form's momentum field is greyed out for adam: it means nothing
        if isinstance(given.get("hidden"), list):
            given["hidden"] = ",".join(str(width) for width in given["hidden"]) or "none"
        if given.get("hidden") == "":
            given["hidden"] = "none"
        config = resolve_config(preset, flags={**given, "progress": False})
        out = default_run_dir(config, self.runs_root)
        return resolve_config(base=config, flags={"out": str(out)})

    def pause(self) -> str:
        """Hold the run before its next step. The status turns to paused when training has stopped
        there (`held`), after the last point it measured: the page never shows a paused run moving."""
        with self._lock:
            if self.status not in ("preparing", "training"):
                raise Busy(f"nothing to pause: the studio is {self.status}")
            self.steering.pause()
            return "paused"

    def resume(self) -> str:
        """Let a paused run go on (or take back a pause that has not held yet)."""
        with self._lock:
            if not (
                self.steering is not None
                and self.steering.paused
                and self.status in ("preparing", "training", "paused")
            ):
                raise Busy(f"nothing to resume: the studio is {self.status}")
            self.steering.resume()
            return "training"

    def held(self, holding: bool) -> None:
        """The training thread stopped before a step for a pause (True), or goes on (False)."""
        with self._lock:
            if holding and self.status == "training":
                self._set_status("paused", "paused: press Resume to go on")
            elif not holding and self.status == "paused":
                self._set_status("training")

    def stop(self) -> str:
        """End the run after the epoch in progress (then it is tested and finished)."""
        with self._lock:
            if self.status not in ("training", "paused", "preparing"):
                raise Busy(f"nothing to stop: the studio is {self.status}")
            self.steering.stop("stopped from the studio")
            self._set_status("stopping", "stopping after the epoch in progress, then testing the best epoch")
            return self.status

    def settings(self, changes: dict[str, Any]) -> dict[str, float]:
        """Ask for a new learning rate and/or momentum from the next step."""
        if not isinstance(changes, dict) or not changes:
            raise MlplabError('send {"lr": 0.05} and/or {"momentum": 0.5}')
        unknown = sorted(set(changes) - {"lr", "momentum"})
        if unknown:
            raise MlplabError(f"unknown setting {', '.join(unknown)}; the settings are lr and momentum")
        with self._lock:
            if self.status not in ("preparing", "training", "paused"):
                raise Busy(f"no run to change: the studio is {self.status}")
            assert self.run is not None  # described as its run started
            if changes.get("momentum") is not None and not self.run["momentum_steerable"]:
                raise MlplabError(f"{self.run['optimizer']} has no momentum setting to change; change its lr instead")
            return self.steering.set(lr=changes.get("lr"), momentum=changes.get("momentum"))

    def require_model(self) -> Any:
        """The `Inspector` of the current (or last) run; `NoModelYet` before any run."""
        inspector = self.inspector
        if inspector is None:
            raise NoModelYet("no model yet: start a run first")
        return inspector

    def inspect(self, image: Any) -> dict[str, Any]:
        """The current model's reading of an MNIST-style (28, 28) uint8 image."""
        return self.require_model().inspect(image)

    def test_image(self, index: int | None) -> dict[str, Any]:
        """The current model's reading of test image ``index`` (a random one when None)."""
        import random

        with self._lock:
            test, inspector = self.test_images, self.inspector
        if test is None or inspector is None:
            raise NoModelYet("no model yet: start a run first")
        images, labels = test
        if index is None:
            index = random.randrange(len(labels))
        if not 0 <= index < len(labels):
            raise MlplabError(f"index must be from 0 to {len(labels) - 1}; got {index}")
        answer = inspector.inspect(images[index])
        true = int(labels[index])
        return {**answer, "index": index, "true_label": true, "true_name": inspector.classes[true]}

    def shutdown(self, timeout: float = 30.0) -> None:
        """Abort a run under way before its next step (its run directory keeps the last saved epoch) and wait."""
        with self._lock:
            steering, thread = self.steering, self.thread
        if steering is not None and thread is not None and thread.is_alive():
            steering.abort("the studio server stopped")
            thread.join(timeout)

    # The training thread.

    def _train(self, config: Any, steering: Any) -> None:
        """Build the run and train it (the training thread's body); every outcome becomes a status."""
        from mlplab.training.steering import TrainingAborted

        try:
            setup = self._prepare(config)
            with self._lock:  # stopped while the data loaded: say so (a pause says so itself, once it holds)
                self._set_status(
                    "stopping" if steering.stopping else "training", self.message if steering.stopping else None
                )
            from mlplab.training.runner import train_prepared

            train_prepared(setup, callbacks=[steering, self._feed(setup, steering)])
        except TrainingAborted as error:
            self._set_status("interrupted", f"{error}; continue it with `mlplab train --resume {config.train.out}`")
        except MlplabError as error:
            self._set_status("failed", one_line(error, limit=None))  # the page has room for the whole advice
        except Exception as error:  # a bug: say so on the page instead of dying silently
            self._set_status("failed", f"internal error ({type(error).__name__}: {one_line(error)})")
        else:
            stopped = (self.metrics or {}).get("stopped")
            self._set_status("finished", stopped or "finished: the best epoch was tested")

    def _prepare(self, config: Any) -> Any:
        """`prepare` the run and what the page reads besides it (the pad's model copy, the test images)."""
        from mlplab.data.loading import unscale_pixels
        from mlplab.studio.inspect import Inspector
        from mlplab.training.runner import prepare

        setup = prepare(config)
        test = setup.data.test
        images = unscale_pixels(test.images, config.data.normalize, setup.data.spec)[:, 0].numpy()
        with self._lock:
            self.run = describe_config(config, setup)
            self.inspector = Inspector(setup.model, config.data.normalize, setup.data.spec, setup.data.spec.classes)
            self.test_images = (images, test.labels.cpu().numpy())
        return setup

    def _feed(self, setup: Any, steering: Any) -> Any:
        """The `LiveFeed` of a run: its probe is the first 1,000 validation images (test images without a split)."""
        from mlplab.studio.feed import PROBE_SIZE, LiveFeed

        split = setup.data.val if setup.data.val is not None else setup.data.test
        probe = (split.images[:PROBE_SIZE], split.labels[:PROBE_SIZE])
        return LiveFeed(
            self.publish, probe, on_weights=self.inspector.update, paused_seconds=lambda: steering.paused_seconds
        )


def describe_config(config: Any, setup: Any = None) -> dict[str, Any]:
    """The run as the page names it: its folder, architecture, dataset and the settings it can steer."""
    from mlplab.config import MOMENTUM_OPTIMIZERS
    from mlplab.data import get_spec

    spec = get_spec(config.data.dataset)
    widths = (784, *config.model.hidden, len(spec.classes))
    out = Path(config.train.out)
    return {
        "dir": str(out),
        "name": out.name,
        "architecture": "-".join(map(str, widths)),
        "dataset": config.data.dataset,
        "dataset_title": spec.title,
        "preset": config.preset,
        "epochs": config.train.epochs,
        "batch_size": config.train.batch_size,
        "steps_per_epoch": len(setup.train_batches) if setup is not None else None,
        "optimizer": config.optim.optimizer,
        "scheduler": config.optim.scheduler,
        "activation": config.model.activation,
        "lr": config.optim.lr,
        "momentum": config.optim.momentum if config.optim.optimizer in MOMENTUM_OPTIMIZERS else None,
        "momentum_steerable": config.optim.optimizer in MOMENTUM_OPTIMIZERS,
        "augment": config.data.augment,
        "classes": list(spec.classes),
    }
