"""The members of a vectorised sweep: which train together, what may differ, and how each one starts.

K configs train as one *program* only if every tensor of the program has the same shape
for all of them and every member walks the same number of steps: so the members of one
program share the data, the network, the loss, the optimizer's kind, the batch size and the
number of epochs (`SHARED_FIELDS`; `program_key`). What a member of a program may set for
itself is what only scales or orders its arithmetic:

    seed                                   its initial weights and its data order
    lr, momentum, nesterov, weight_decay   its optimizer's update (momentum: sgd and rmsprop; nesterov: sgd)
    scheduler, gamma, step_size            its learning rate at every step
    patience                               when it stops early (it is then halted; the others go on)

A sweep may mix anything else (widths, depth, activation, loss, optimizer kind, batch size,
epochs, dataset): `partition` splits its configs into programs, each trained as one batched
program after the other; one program takes one kind of update (`mlplab.sweep.optimizers`).
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
from mlplab.losses import config_loss
from mlplab.models import MLP, build_model

# The settings every member must share, by section (all of data and model).
SHARED_FIELDS: dict[str, tuple[str, ...]] = {
    "data": tuple(f.name for f in dataclasses.fields(DataConfig)),
    "model": tuple(f.name for f in dataclasses.fields(ModelConfig)),
    "optim": ("optimizer", "max_norm"),
    "train": ("loss", "beta", "label_smoothing", "batch_size", "eval_batch_size", "epochs", "device", "ema"),
}

# The settings a member may set for itself.
VARYING_FIELDS: dict[str, tuple[str, ...]] = {
    "optim": ("lr", "momentum", "nesterov", "weight_decay", "scheduler", "gamma", "step_size"),
    "train": ("seed", "patience"),
}

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")  # what the stacked updates implement (`mlplab.sweep.optimizers`)


def program_key(config: Config) -> tuple[Any, ...]:
    """What members of one program share: every `SHARED_FIELDS` value, and the seed when it draws the split.

    With ``val_split = "random"`` each seed holds out other images, so members of different
    seeds train on different data: they go to different programs.
    """
    key = tuple(getattr(getattr(config, section), name) for section, names in SHARED_FIELDS.items() for name in names)
    return (*key, config.train.seed) if config.data.val_split == "random" else key


def partition(configs: Sequence[Config]) -> list[list[int]]:
    """The indices of ``configs`` grouped into programs (`program_key`), in order of first appearance."""
    programs: dict[tuple[Any, ...], list[int]] = {}
    for index, config in enumerate(configs):
        programs.setdefault(program_key(config), []).append(index)
    return list(programs.values())


def describe_program(config: Config, in_features: int = 784, num_classes: int = 10) -> str:
    """A program's shared settings in a few words: ``"784-16-32-24-10 relu, cross_entropy, sgd, batch 64, 3 epochs"``."""
    widths = "-".join(str(width) for width in (in_features, *config.model.hidden, num_classes))
    epochs = config.train.epochs
    return (f"{config.data.dataset} {widths} {config.model.activation}, {config.train.loss}, {config.optim.optimizer}, "
            f"batch {config.train.batch_size}, {epochs} epoch{'s' if epochs > 1 else ''}")


def check_members(configs: Sequence[Config]) -> None:
    """Raise a one-line `MlplabError` unless every config of ``configs`` can train in a vectorised sweep.

    The configs are split into programs (`partition`); each program is checked by `check_program`.
    """
    if len(configs) == 0:
        raise MlplabError("a vectorised sweep needs at least one config")
    for program in partition(configs):
        check_program([configs[index] for index in program])


def check_program(configs: Sequence[Config]) -> None:
    """Raise a one-line `MlplabError` unless ``configs`` can train together as one batched program.

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
    extras = [flag for flag, value in (("--max-norm", first.optim.max_norm), ("--ema", first.train.ema)) if value]
    if extras:
        raise MlplabError(f"the vectorised trainer does not implement {', '.join(extras)}; leave "
                          f"{'it' if len(extras) == 1 else 'them'} out, or train these runs one by one with mlplab train")
    if first.data.augment != "none":
        raise MlplabError("the vectorised trainer does not augment batches; set --augment none, or train these runs "
                          "one by one with mlplab train")
    # refuses what prepare refuses (nll of logits, label smoothing of a quadratic loss)
    config_loss(first)
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
