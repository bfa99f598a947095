"""The members of a vectorised sweep: what they must share, what may differ, and how each one starts.

K configs train as one program only if every tensor of the program has the same shape
for all of them and every member walks the same number of steps: so they share the data,
the network, the loss, the batch size and the number of epochs. What a member may set for
itself is what only scales or orders its arithmetic:

    seed                                   its initial weights and its data order
    lr, momentum, nesterov, weight_decay   its optimizer's update (momentum: sgd and rmsprop; nesterov: sgd)
    scheduler, gamma, step_size            its learning rate at every step

The optimizer kind itself (sgd, adam, adamw, rmsprop or adagrad) is shared: one program
takes one kind of update (`mlplab.sweep.optimizers`).

The run's bookkeeping settings (engine, threads, out, progress, log_batches, tensorboard,
wandb, wandb_project) are not read: a sweep computes with its own engine and writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from mlplab.config import Config, DataConfig, ModelConfig
from mlplab.errors import MlplabError
from mlplab.losses import build_loss
from mlplab.models import MLP, build_model

# The settings every member must share, by section (all of data and model).
SHARED_FIELDS: dict[str, tuple[str, ...]] = {
    "data": tuple(f.name for f in dataclasses.fields(DataConfig)),
    "model": tuple(f.name for f in dataclasses.fields(ModelConfig)),
    "optim": ("optimizer",),
    "train": ("loss", "beta", "batch_size", "eval_batch_size", "epochs", "device"),
}

# The settings a member may set for itself.
VARYING_FIELDS: dict[str, tuple[str, ...]] = {
    "optim": ("lr", "momentum", "nesterov", "weight_decay", "scheduler", "gamma", "step_size"),
    "train": ("seed",),
}

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")  # what the stacked updates implement (`mlplab.sweep.optimizers`)


def check_members(configs: Sequence[Config]) -> None:
    """Raise a one-line `MlplabError` unless ``configs`` can train together as one vectorised program.

    Checks that there is at least one config, that all share `SHARED_FIELDS`, that the
    optimizer is one of `OPTIMIZERS`, that the manual engine's backprop applies (no dropout, a loss the model's
    output allows), and that a ``random`` validation split (drawn from the seed) is the same for
    every member.
    """
    if len(configs) == 0:
        raise MlplabError("a vectorised sweep needs at least one config")
    first = configs[0]
    for index, config in enumerate(configs[1:], start=1):
        for section, names in SHARED_FIELDS.items():
            for name in names:
                mine, theirs = getattr(getattr(config, section), name), getattr(getattr(first, section), name)
                if mine != theirs:
                    raise MlplabError(f"sweep members must share {name}: member {index} has {mine!r} where member 0 "
                                      f"has {theirs!r}; sweep them separately")
    optimizer = first.optim.optimizer
    if optimizer not in OPTIMIZERS:
        raise MlplabError(f"the vectorised trainer takes --optimizer {', '.join(OPTIMIZERS)}, not {optimizer}; "
                          "train these runs one by one with mlplab train")
    if first.model.dropout > 0:
        raise MlplabError("the vectorised trainer does not implement dropout; set --dropout 0")
    build_loss(first.train.loss, first.model.output, first.train.beta)  # refuses what prepare refuses (nll of logits)
    seeds = {config.train.seed for config in configs}
    if first.data.val_split == "random" and len(seeds) > 1:
        raise MlplabError("with --val-split random each seed holds out different images, so members of different "
                          "seeds would train on different splits; use --val-split last or none, or one seed")


def initial_model(config: Config, in_features: int, num_classes: int) -> MLP:
    """The MLP ``prepare(config)`` builds, with the same initial weights, on the CPU.

    `mlplab.training.runner.prepare` seeds the global RNG with ``config.train.seed`` and
    builds the model next (loading the data in between draws nothing from that RNG). This
    does the same inside ``torch.random.fork_rng``, so the caller's RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return build_model(config.model, in_features=in_features, num_classes=num_classes)


def member_settings(configs: Sequence[Config]) -> list[dict[str, Any]]:
    """Each member's own settings (`VARYING_FIELDS`), flat, in member order: what tells members apart."""
    return [{name: getattr(getattr(config, section), name)
             for section, names in VARYING_FIELDS.items() for name in names} for config in configs]
