"""Optimizers and learning-rate schedules built from an `OptimConfig`.

Speed: the lab's nets are tiny, so an optimizer step costs Python and per-tensor kernel
overhead, not arithmetic. The fused kernels (one call updates every parameter) cut an
Adam step on the 784-16-32-24-10 net from about 165 to 50 µs on a 2-core CPU, and an
SGD-with-momentum step from about 55 to 27 µs; RMSprop has no fused kernel, and its
multi-tensor (foreach) path takes about 110 µs against 143. Both are deterministic
(checked on CPU in float32 and float64). Where this torch build has no fused kernel for
the parameters' device and dtype (found by one trial step on a dummy), the optimizer
uses foreach on CPU/CUDA and PyTorch's default implementation elsewhere (the probe
``fused_optimizer`` of `mlplab.torch_internals`).

A `Schedule` wraps any PyTorch LR scheduler with the interval it is stepped at;
`mlplab.train_epoch` is the one place that steps it (`Schedule.step_batch` after every
optimizer step, `Schedule.step_epoch` at the end of the pass), each schedule reacting only
to its own interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CyclicLR,
    ExponentialLR,
    OneCycleLR,
    ReduceLROnPlateau,
    StepLR,
)

from mlplab.config import MOMENTUM_OPTIMIZERS, OptimConfig
from mlplab.errors import MlplabError, check_choice
from mlplab.torch_internals import FUSED_OPTIMIZERS, works

# Each of `mlplab.choices.OPTIMIZERS` as a torch optimizer class.
_CLASSES: dict[str, Callable[..., Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

_FOREACH_DEVICES = ("cpu", "cuda")  # where the multi-tensor path is known to work


def _groups(parameters: Iterable[Any] | torch.Tensor) -> list[Any]:
    """Parameters as a list of tensors or of param-group dicts whose "params" are lists."""
    if isinstance(parameters, torch.Tensor):
        return [parameters]
    groups = []
    for item in parameters:
        if isinstance(item, dict):
            params = item["params"]
            item = dict(item, params=[params] if isinstance(params, torch.Tensor) else list(params))
        groups.append(item)
    return groups


def _fast_path(name: str, groups: list[Any]) -> dict[str, bool]:
    """``fused=True`` where it works for every parameter, else ``foreach=True`` on CPU/CUDA, else nothing."""
    tensors = [t for group in groups for t in (group["params"] if isinstance(group, dict) else [group])]
    if not tensors or not all(t.is_floating_point() for t in tensors):
        return {}
    kinds = {(t.device, t.dtype) for t in tensors}
    if name in FUSED_OPTIMIZERS and all(works("fused_optimizer", name, device, dtype) for device, dtype in kinds):
        return {"fused": True}
    if len({device for device, _ in kinds}) == 1 and tensors[0].device.type in _FOREACH_DEVICES:
        return {"foreach": True}
    return {}


def build_optimizer(parameters: Iterable[Any], config: OptimConfig) -> Optimizer:
    """The torch optimizer ``config.optimizer`` over ``parameters``, fused where possible.

    Args:
        parameters: tensors (``model.parameters()``) or param-group dicts.
        config: optimizer name, lr, momentum (sgd, rmsprop), nesterov (sgd) and
            weight_decay: an L2 penalty added to the gradient, except for adamw, where
            it is decoupled (and, unlike PyTorch's AdamW default of 0.01, it is 0 unless
            set). Other settings keep PyTorch's defaults (Adam betas (0.9, 0.999), eps 1e-8,
            RMSprop alpha 0.99). The config has checked its settings when it was built.
    """
    groups = _groups(parameters)
    options: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer in MOMENTUM_OPTIMIZERS:
        options["momentum"] = config.momentum
    if config.optimizer == "sgd":
        options["nesterov"] = config.nesterov
    kind = _CLASSES[config.optimizer]
    return kind(groups, **options, **_fast_path(config.optimizer, groups))


def load_optimizer_state(optimizer: Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, but keeping this optimizer's fused/foreach choice.

    PyTorch restores every saved param-group setting, including ``fused``; a checkpoint
    written on one device (fused Adagrad exists only on CPU) could then break or slow
    down a resume on another. Use this instead of ``load_state_dict`` when resuming.
    """
    kept: list[dict[str, Any]] = [
        {key: group[key] for key in ("fused", "foreach") if key in group} for group in optimizer.param_groups
    ]
    optimizer.load_state_dict(state)
    for group, flags in zip(optimizer.param_groups, kept, strict=True):
        group.update(flags)


# PyTorch schedulers that move the rate within an epoch: stepped after every optimizer step.
PER_STEP_SCHEDULERS = (OneCycleLR, CyclicLR)


class Schedule:
    """A learning-rate scheduler and when it is stepped: the one place a training loop steps it.

    `mlplab.train_epoch` calls `step_batch` after every optimizer step and `step_epoch` at
    the end of its pass, so `fit` and a hand-written loop over `train_epoch` step a
    schedule the same way. Each call advances only schedulers of its own interval.

    Args:
        scheduler: any PyTorch LR scheduler (``torch.optim.lr_scheduler``), or None for a
            constant rate.
        interval: ``"step"`` or ``"epoch"``; by default ``"step"`` for OneCycleLR and
            CyclicLR, which are laid out in optimizer steps, and ``"epoch"`` for the others.
            ReduceLROnPlateau is stepped per epoch with the epoch's mean training loss.
        name: what checkpoints record (a resume must use the same kind); by default the
            scheduler's class name.
        optimizer: the optimizer, for `lr` when there is no scheduler.
    """

    def __init__(
        self,
        scheduler: Any = None,
        interval: str | None = None,
        *,
        name: str | None = None,
        optimizer: Optimizer | None = None,
    ) -> None:
        if interval is None:
            interval = "step" if isinstance(scheduler, PER_STEP_SCHEDULERS) else "epoch"
        else:
            check_choice("schedule interval", interval, ("step", "epoch"))
        self.scheduler = scheduler
        self.interval = interval
        self.optimizer = optimizer if scheduler is None else scheduler.optimizer
        self.name = name or ("none" if scheduler is None else type(scheduler).__name__)

    @property
    def lr(self) -> float | None:
        """The learning rate the next optimizer step will use (first param group)."""
        return None if self.optimizer is None else self.optimizer.param_groups[0]["lr"]

    def step_batch(self) -> None:
        """Call after every ``optimizer.step()``; advances only per-step schedules."""
        if self.interval == "step" and self.scheduler is not None:
            self.scheduler.step()

    def step_epoch(self, train_loss: float | None = None) -> None:
        """Call at the end of every epoch; advances only per-epoch schedules (ReduceLROnPlateau on ``train_loss``)."""
        if self.interval != "epoch" or self.scheduler is None:
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):
            if train_loss is None:
                raise ValueError("a ReduceLROnPlateau schedule is stepped with the epoch's training loss; got None")
            self.scheduler.step(train_loss)
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        """Plain data (loadable with ``torch.load(..., weights_only=True)``)."""
        state = None if self.scheduler is None else self.scheduler.state_dict()
        return {"name": self.name, "scheduler": state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`; it must come from the same kind of schedule."""
        if state.get("name") != self.name:
            raise MlplabError(
                f"the checkpoint's scheduler is {state.get('name')!r} but the config asks for "
                f"{self.name!r}; resume with --scheduler {state.get('name')}"
            )
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])

    def __repr__(self) -> str:
        return f"Schedule({self.name!r}, interval={self.interval!r}, lr={self.lr:g})"


def as_schedule(scheduler: Any, optimizer: Optimizer | None = None) -> Schedule | None:
    """``scheduler`` as a `Schedule`: a `Schedule` as it is, a PyTorch scheduler wrapped, None kept."""
    if scheduler is None or isinstance(scheduler, Schedule):
        return scheduler
    if not hasattr(scheduler, "step") or not hasattr(scheduler, "optimizer"):
        raise TypeError(
            f"scheduler must be a torch.optim.lr_scheduler scheduler or an mlplab.Schedule, "
            f"not {type(scheduler).__name__}"
        )
    return Schedule(scheduler)


def build_schedule(optimizer: Optimizer, config: OptimConfig, epochs: int, steps_per_epoch: int) -> Schedule:
    """The learning-rate schedule ``config.scheduler`` for a run of ``epochs`` x ``steps_per_epoch``.

    - ``none``: constant lr.
    - ``exponential``: lr x gamma after every epoch.
    - ``step``: lr x gamma after every ``step_size`` epochs.
    - ``cosine``: cosine annealing from lr to 0 over ``epochs`` (stepped per epoch).
    - ``onecycle``: OneCycleLR with peak ``config.lr`` over ``epochs * steps_per_epoch``
      optimizer steps, stepped per batch: it starts at lr/25, rises to lr over the first
      30% of the steps, then anneals to lr/25e4. Momentum is left as configured
      (``cycle_momentum=False``), so --momentum means what it says for every scheduler.
      ``steps_per_epoch`` must be the true number of batches per epoch: stepping past
      the total is an error in PyTorch.

    The config has checked its settings; the run's length is checked here.
    """
    if epochs < 1 or steps_per_epoch < 1:
        raise MlplabError(f"a schedule needs epochs >= 1 and steps_per_epoch >= 1; got {epochs} and {steps_per_epoch}")
    name = config.scheduler
    if name == "none":
        return Schedule(None, name=name, optimizer=optimizer)
    if name == "exponential":
        return Schedule(ExponentialLR(optimizer, gamma=config.gamma), name=name)
    if name == "step":
        return Schedule(StepLR(optimizer, step_size=config.step_size, gamma=config.gamma), name=name)
    if name == "cosine":
        return Schedule(CosineAnnealingLR(optimizer, T_max=epochs), name=name)
    total = epochs * steps_per_epoch  # optimizer steps in the whole run
    onecycle = OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, cycle_momentum=False)
    return Schedule(onecycle, name=name)
