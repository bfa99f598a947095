"""The members of a vectorised sweep: which train together, what may differ, how each one starts, and its data.

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

Each dataset the programs read is loaded once, in the sweep's layout (`SweepData`:
flattened images in the training dtype), the first time a program asks for it
(`SweepDataCache`; `data_key` says which programs share one), and kept for the sweep,
since the plan and then the training read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mlplab.config import Config, DataConfig, ModelConfig
from mlplab.data import DataBundle, load_data
from mlplab.device import config_device
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

OPTIMIZERS = (
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
)  # what the stacked updates implement (`mlplab.sweep.optimizers`)


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
    """A program's shared settings in a few words, e.g.
    ``"784-16-32-24-10 relu, cross_entropy, sgd, batch 64, 3 epochs"``."""
    widths = "-".join(str(width) for width in (in_features, *config.model.hidden, num_classes))
    epochs = config.train.epochs
    return (
        f"{config.data.dataset} {widths} {config.model.activation}, {config.train.loss}, {config.optim.optimizer}, "
        f"batch {config.train.batch_size}, {epochs} epoch{'s' if epochs > 1 else ''}"
    )


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
                    raise MlplabError(
                        f"sweep members must share {name}: member {index} has {mine!r} where member 0 "
                        f"has {theirs!r}; sweep them separately"
                    )
    optimizer = first.optim.optimizer
    if optimizer not in OPTIMIZERS:
        raise MlplabError(
            f"the vectorised trainer takes --optimizer {', '.join(OPTIMIZERS)}, not {optimizer}; "
            "train these runs one by one with mlplab train"
        )
    if first.model.dropout > 0:
        raise MlplabError("the vectorised trainer does not implement dropout; set --dropout 0")
    extras = [flag for flag, value in (("--max-norm", first.optim.max_norm), ("--ema", first.train.ema)) if value]
    if extras:
        raise MlplabError(
            f"the vectorised trainer does not implement {', '.join(extras)}; leave "
            f"{'it' if len(extras) == 1 else 'them'} out, or train these runs one by one with mlplab train"
        )
    if first.train.precision != "32-true":
        raise MlplabError(
            f"the vectorised trainer computes in float32, not --precision {first.train.precision}; "
            "set --precision 32-true, or train these runs one by one with mlplab train"
        )
    if first.data.augment != "none" or first.data.stroke > 0 or first.data.blur > 0:
        raise MlplabError(
            "the vectorised trainer does not augment batches; set --augment none, --stroke 0 and "
            "--blur 0, or train these runs one by one with mlplab train"
        )
    # refuses what prepare refuses (nll of logits, label smoothing of a quadratic loss)
    config_loss(first)
    seeds = {config.train.seed for config in configs}
    if first.data.val_split == "random" and len(seeds) > 1:
        raise MlplabError(
            "with --val-split random each seed holds out different images, so members of different "
            "seeds would train on different splits; use --val-split last or none, or one seed"
        )


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
    return [
        {name: getattr(getattr(config, section), name) for section, names in VARYING_FIELDS.items() for name in names}
        for config in configs
    ]


@dataclass
class SweepData:
    """A dataset's splits as a sweep reads them: flattened (N, n_0) images in the training dtype."""

    bundle: DataBundle
    train_images: Tensor  # (N, n_0)
    train_labels: Tensor  # (N,) int64
    val: tuple[Tensor, Tensor] | None
    test: tuple[Tensor, Tensor]

    @classmethod
    def from_bundle(cls, bundle: DataBundle, dtype: torch.dtype = torch.float32) -> SweepData:
        """Flatten the bundle's splits and convert them to ``dtype`` (float32 keeps the same memory)."""

        def split(images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
            return images.flatten(1).to(dtype).contiguous(), labels

        val = split(bundle.val.images, bundle.val.labels) if bundle.val is not None else None
        return cls(
            bundle, *split(bundle.train.images, bundle.train.labels), val, split(bundle.test.images, bundle.test.labels)
        )

    @property
    def in_features(self) -> int:
        return self.train_images.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.bundle.spec.classes)

    @property
    def nbytes(self) -> int:
        """Bytes of every split's images and labels."""
        splits = [(self.train_images, self.train_labels), self.val, self.test]
        return sum(t.numel() * t.element_size() for split in splits if split is not None for t in split)


def load_sweep_data(config: Config, dtype: torch.dtype = torch.float32) -> SweepData:
    """The data of ``config`` (as ``prepare`` loads it: device, split, normalisation) in the sweep's layout."""
    device = config_device(config)  # checked by the config
    bundle = load_data(config.data, device=device, seed=config.train.seed, progress=config.train.progress)
    return SweepData.from_bundle(bundle, dtype)


def data_key(config: Config) -> tuple[Any, ...]:
    """What decides the data a config trains on: its data settings, the device, and the seed of a random split."""
    key = (*(getattr(config.data, name) for name in SHARED_FIELDS["data"]), config.train.device)
    return (*key, config.train.seed) if config.data.val_split == "random" else key


class SweepDataCache:
    """Each dataset a sweep's configs read, loaded on first use: ``cache.get(config) -> SweepData``.

    Args:
        dtype: of the images (float32, or float64 for exactness checks).
        data: an already loaded `SweepData`, used for every config (a sweep over one dataset).
    """

    def __init__(self, dtype: torch.dtype = torch.float32, data: SweepData | None = None) -> None:
        self.dtype = dtype
        self.given = data
        self.loaded: dict[tuple[Any, ...], SweepData] = {}

    def get(self, config: Config) -> SweepData:
        """``config``'s data (the given `SweepData` if there is one)."""
        if self.given is not None:
            return self.given
        key = data_key(config)
        if key not in self.loaded:
            self.loaded[key] = load_sweep_data(config, self.dtype)
        return self.loaded[key]

    @property
    def nbytes(self) -> int:
        """Bytes of every dataset loaded so far."""
        datasets = [self.given] if self.given is not None else list(self.loaded.values())
        return sum(data.nbytes for data in datasets)


def as_cache(data: SweepData | SweepDataCache | None, dtype: torch.dtype) -> SweepDataCache:
    """``data`` as a cache: a `SweepData` serves every config; None loads each dataset on first use."""
    return data if isinstance(data, SweepDataCache) else SweepDataCache(dtype, data)
