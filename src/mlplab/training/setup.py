"""Build everything a run needs from its config: device, data, model, loss, batches, optimizer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mlplab.config import Config, from_dict
from mlplab.data import Batches, DataBundle, load_data
from mlplab.errors import MlplabError
from mlplab.losses import build_loss
from mlplab.models import MLP, build_model
from mlplab.optim import Schedule, build_optimizer, build_schedule
from mlplab.training.checkpoint import load_checkpoint
from mlplab.training.device import cpu_threads, resolve_device
from mlplab.training.steps import resolve_engine

LossFn = Callable[[Tensor, Tensor], Tensor]


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
    threads: int  # CPU threads to train with (see `cpu_threads`)
    engine: str  # "autograd", "manual" or "scratch": how gradients are computed (see `mlplab.training.steps`)

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset."""
        return len(self.data.spec.classes)


def prepare(config: Config, loss_fn: LossFn | str | None = None) -> Setup:
    """Seed, load the data onto the device, build the model, loss, batches, optimizer and schedule."""
    loss = build_loss(loss_fn or config.train.loss, config.model.output, config.train.beta)
    # A bad --engine fails before the data loads.
    engine = resolve_engine(config.train.engine, config.model, loss, config.optim.optimizer)
    device = resolve_device(_device_name(config.train.device, engine))
    torch.manual_seed(config.train.seed)  # one seed: split, initialisation, shuffling, dropout
    data = load_data(config.data, device=device, seed=config.train.seed, progress=config.train.progress)
    model = build_model(config.model, in_features=data.train.images[0].numel(),
                        num_classes=len(data.spec.classes)).to(device)
    train_batches = Batches(data.train, config.train.batch_size, shuffle=True,
                            drop_last=config.data.drop_last, seed=config.train.seed)
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
        threads=cpu_threads(config.train.threads, config.train.batch_size, device),
        engine=engine,
    )


def _device_name(device: str, engine: str) -> str:
    """The --device setting to resolve: the scratch engine computes in NumPy, on the CPU."""
    if engine != "scratch" or device in ("auto", "cpu"):
        return "cpu" if engine == "scratch" else device
    raise MlplabError(f"--engine scratch computes in NumPy on the CPU, not on {device}; use --device cpu or auto")


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> MLP:
    """Rebuild the trained network stored in a checkpoint (a .pt file or a run directory), in eval mode."""
    checkpoint = load_checkpoint(path, map_location=map_location)
    config = from_dict(checkpoint["config"])
    info = checkpoint["model_info"]
    model = build_model(config.model, in_features=info["in_features"], num_classes=info["num_classes"])
    model.load_state_dict(checkpoint["model"])
    return model.to(map_location).eval()
