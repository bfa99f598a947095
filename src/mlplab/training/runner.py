"""The config runner: build a run's objects from a `Config` and train them with `fit`.

``mlplab train`` is this module: `prepare` seeds and builds the device, data, model, loss,
batches, optimizer, schedule and engine in a fixed order from one seed; `train_prepared`
hands them to the same `mlplab.fit` a notebook calls, with the run directory's writer and
the trackers the config asks for. `train` does both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mlplab.config import MOMENTUM_OPTIMIZERS, Config
from mlplab.data import Batches, DataBundle, load_data
from mlplab.data.arrays import IMAGE_SHAPE
from mlplab.data.registry import get_spec
from mlplab.device import config_device
from mlplab.engines import Engine, config_engine
from mlplab.errors import MlplabError
from mlplab.losses import config_loss
from mlplab.memory import check_memory
from mlplab.models import MLP, build_model, parameter_count
from mlplab.optim import Schedule, build_optimizer, build_schedule
from mlplab.runs.directory import check_startable, create_run_dir
from mlplab.runs.history import History
from mlplab.runs.state import Callback
from mlplab.runs.writer import RunWriter
from mlplab.threads import monitor
from mlplab.training.loop import TrainingDiverged, fit
from mlplab.training.tracking import trackers

LossFn = Callable[[Tensor, Tensor], Tensor]
LARGEST_SPLIT = 60_000


@dataclass
class Setup:
    """The objects of one run, built in a fixed order from one seed."""

    config: Config
    device: torch.device
    data: DataBundle
    model: MLP
    loss_fn: LossFn
    train_batches: Batches
    val_batches: Batches | None
    test_batches: Batches
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    engine: Engine  # how gradients are computed (see `mlplab.engines`), resolved once
    augment: Callable[[Tensor, int], Tensor] | None = None  # `mlplab.augment.Augmentation`, if the config asks

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset."""
        return len(self.data.spec.classes)

    def model_info(self) -> dict[str, object]:
        """What rebuilding the model needs besides the config, as checkpoints store it."""
        return {
            "in_features": self.data.train.images[0].numel(),
            "num_classes": self.num_classes,
            "classes": list(self.data.spec.classes),
            "output": self.model.output,
        }


def prepare(config: Config, loss_fn: LossFn | str | None = None) -> Setup:
    """Seed, load the data onto the device, build the model, loss, batches, optimizer, schedule and engine."""
    monitor()  # the CPU load is read from now on: training's thread choice sees the machine while the data loads
    loss = config_loss(config, loss_fn)
    # A bad --engine fails before the data loads.
    engine = config_engine(config, loss)
    device = config_device(config)
    check_run_memory(config, device)  # before the data loads and the model is built
    torch.manual_seed(config.train.seed)  # one seed: split, initialisation, shuffling, dropout
    data = load_data(config.data, device=device, seed=config.train.seed, progress=config.train.progress)
    model = build_model(config.model, in_features=data.train.images[0].numel(), num_classes=len(data.spec.classes)).to(
        device
    )
    train_batches = Batches(
        data.train, config.train.batch_size, shuffle=True, drop_last=config.data.drop_last, seed=config.train.seed
    )
    optimizer = build_optimizer(model.parameters(), config.optim)
    return Setup(
        config=config,
        device=device,
        data=data,
        model=model,
        loss_fn=loss,
        train_batches=train_batches,
        val_batches=Batches(data.val, config.train.eval_batch_size) if data.val is not None else None,
        test_batches=Batches(data.test, config.train.eval_batch_size),
        optimizer=optimizer,
        schedule=build_schedule(optimizer, config.optim, config.train.epochs, len(train_batches)),
        engine=engine,
        augment=build_augmentation(config.data, data, config.train.seed),
    )


def run_bytes(config: Config, in_features: int = 784, num_classes: int = 10) -> int:
    """Bytes a run of ``config`` holds while it trains, roughly: its parameters six times (weights,
    gradients, up to two optimizer states, the best epoch's and an averaged copy) and a training
    batch's and an evaluation batch's activations, float32."""
    widths = (in_features, *config.model.hidden, num_classes)
    units = sum(widths)
    # A batch is at most a whole split: 60,000 images, the largest of every dataset mlplab reads.
    batch, evaluation = (min(size, LARGEST_SPLIT) for size in (config.train.batch_size, config.train.eval_batch_size))
    return 4 * (6 * parameter_count(widths) + 4 * batch * units + 2 * evaluation * units)


def check_run_memory(config: Config, device: torch.device) -> None:
    """Refuse, in one line, a run whose widths and batch sizes cannot fit in ``device``'s free memory."""
    spec = get_spec(config.data.dataset)
    needed = run_bytes(config, math.prod(IMAGE_SHAPE), len(spec.classes))
    shown = ",".join(map(str, config.model.hidden)) or "none"
    check_memory(
        needed,
        f"training --hidden {shown} with --batch-size {config.train.batch_size} and "
        f"--eval-batch-size {config.train.eval_batch_size}",
        "use narrower layers or smaller batches",
        device,
    )


def build_augmentation(config: Any, data: DataBundle, seed: int) -> Callable[[Tensor, int], Tensor] | None:
    """The batch augmentation ``config`` asks for (None when it changes nothing: kind ``none`` and no stroke
    or blur, or all-zero settings), drawing from ``seed`` and the step."""
    from mlplab.augment import Augmentation, background_value

    augmentation = Augmentation(config, seed=seed, background=background_value(config, data.spec))
    return augmentation if augmentation.active else None


def train(
    config: Config, *, callbacks: Sequence[Callback] = (), loss_fn: LossFn | None = None, resume: bool = False
) -> History:
    """Train the run ``config`` describes end to end and write its run directory; returns the history.

    Args:
        config: the resolved run config (see `mlplab.config`; ``Config()`` is mlplab's default recipe).
        callbacks: `mlplab.Callback` objects (the CLI's progress bar is one).
        loss_fn: a custom ``(outputs, labels) -> mean loss`` callable used instead of ``config.train.loss``.
        resume: continue the run in ``config.train.out`` from its last.pt, bit for bit.
    """
    if config.train.out is not None:
        check_startable(Path(config.train.out), resume)  # a folder in use, or taken, before any data loads
    tracking = trackers(config)  # built first: a missing extra fails before any data loads
    try:
        setup = prepare(config, loss_fn)
    except BaseException:
        for tracker in tracking:
            tracker.close()
        raise
    return train_prepared(setup, callbacks=[*callbacks, *tracking], resume=resume)


def train_prepared(setup: Setup, *, callbacks: Sequence[Callback] = (), resume: bool = False) -> History:
    """Train a run built by `prepare` with `fit`, writing its run directory (``--out``, or a new one under runs/)."""
    config = setup.config
    if not resume:
        run_dir = create_run_dir(config)
    elif config.train.out is not None:
        run_dir = Path(config.train.out)
    else:
        raise MlplabError("resume=True needs config.train.out: the run directory to continue")
    writer = RunWriter(run_dir, config=config, model_info=setup.model_info(), resume=resume)
    try:
        return fit(
            setup.model,
            setup.train_batches,
            val_data=setup.val_batches,
            test_data=setup.test_batches,
            loss=setup.loss_fn,
            optimizer=setup.optimizer,
            scheduler=setup.schedule,
            epochs=config.train.epochs,
            callbacks=callbacks,
            run_dir=writer,
            engine=setup.engine,
            classes=setup.data.spec.classes,
            log_batches=config.train.log_batches,
            augment=setup.augment,
            max_norm=config.optim.max_norm,
            average=config.train.ema,
            patience=config.train.patience,
            threads=config.train.threads,
            precision=config.train.precision,
            progress=False,
        )
    except TrainingDiverged as error:  # the same refusal, its advice in the command line's flags
        raise TrainingDiverged(error.epoch, error.problems, divergence_advice(config)) from None


def divergence_advice(config: Config) -> str:
    """The settings that matter for a diverging run, with their values, for the optimizer in use."""
    optim = config.optim
    advice = f"lower --lr (now {optim.lr})"
    if optim.optimizer in MOMENTUM_OPTIMIZERS and optim.momentum > 0:
        advice += f" or --momentum (now {optim.momentum})"
    if optim.scheduler == "onecycle":
        advice += " (onecycle peaks at --lr)"
    return advice + ", or pick another --loss/--optimizer"
