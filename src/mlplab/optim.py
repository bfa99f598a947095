"""Optimizers and learning-rate schedules built from an `OptimConfig`.

Speed: the lab's nets are tiny, so an optimizer step costs Python and per-tensor kernel
overhead, not arithmetic. The fused kernels (one call updates every parameter) cut an
Adam step on the 784-16-32-24-10 net from about 165 to 50 µs on a 2-core CPU, and an
SGD-with-momentum step from about 55 to 27 µs; RMSprop has no fused kernel, and its
multi-tensor (foreach) path takes about 110 µs against 143. Both are deterministic
(checked on CPU in float32 and float64). Where this torch build has no fused kernel for
the parameters' device and dtype (found by one trial step on a dummy), the optimizer
uses foreach on CPU/CUDA and PyTorch's default implementation elsewhere.

Schedules are stepped by the training loop through `Schedule.step_batch` (after every
optimizer step) and `Schedule.step_epoch` (after every epoch); each schedule reacts only
to its own interval, so the loop calls both unconditionally.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.optim.optimizer as _optimizer_module
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LRScheduler,
    OneCycleLR,
    StepLR,
)

from mlplab.choices import OPTIMIZERS, SCHEDULERS
from mlplab.config import OptimConfig
from mlplab.errors import MlplabError, check_choice

# Each of `mlplab.choices.OPTIMIZERS` as a torch optimizer class.
_CLASSES: dict[str, type[Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

_USES_MOMENTUM = ("sgd", "rmsprop")
_FUSED = ("sgd", "adam", "adamw", "adagrad")  # optimizers with a fused kernel in recent torch
_FOREACH_DEVICES = ("cpu", "cuda")  # where the multi-tensor path is known to work


def _check_optimizer(config: OptimConfig) -> None:
    """Raise a one-line MlplabError for any setting the optimizer cannot take."""
    name = config.optimizer
    check_choice("optimizer", name, OPTIMIZERS)
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise MlplabError(f"lr must be a positive number; got {config.lr}")
    if not config.momentum >= 0:
        raise MlplabError(f"momentum must be >= 0; got {config.momentum}")
    if not config.momentum < 1:  # at 1 no gradient is ever forgotten: the steps grow without end
        raise MlplabError(f"momentum must be below 1 (0.9 is usual); got {config.momentum}")
    if not (config.weight_decay >= 0 and math.isfinite(config.weight_decay)):
        raise MlplabError(f"weight_decay must be >= 0 and finite; got {config.weight_decay}")
    if config.momentum > 0 and name not in _USES_MOMENTUM:
        raise MlplabError(
            f"momentum applies only to sgd and rmsprop, not {name}; set --momentum 0 or change --optimizer"
        )
    if config.nesterov and name != "sgd":
        raise MlplabError(f"nesterov applies only to --optimizer sgd, not {name}; drop --nesterov")
    if config.nesterov and config.momentum <= 0:
        raise MlplabError("nesterov needs momentum > 0; set --momentum (e.g. 0.9) or drop --nesterov")


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


@functools.cache
def _fused_works(name: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether this torch build takes a fused ``name`` step on such parameters (tried once on a dummy).

    Support varies with the torch version, device and dtype (fused Adagrad was CPU-only
    for several releases), and an unsupported combination fails at the first step, not
    at construction, so the only reliable test is a step.
    """
    probe = torch.zeros(1, device=device, dtype=dtype, requires_grad=True)
    probe.grad = torch.zeros_like(probe)
    try:
        _CLASSES[name]([probe], lr=0.1, fused=True).step()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def _fast_path(name: str, groups: list[Any]) -> dict[str, bool]:
    """``fused=True`` where it works for every parameter, else ``foreach=True`` on CPU/CUDA, else nothing."""
    tensors = [t for group in groups for t in (group["params"] if isinstance(group, dict) else [group])]
    if not tensors or not all(t.is_floating_point() for t in tensors):
        return {}
    kinds = {(t.device, t.dtype) for t in tensors}
    if name in _FUSED and all(_fused_works(name, device, dtype) for device, dtype in kinds):
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
            RMSprop alpha 0.99).
    """
    _check_optimizer(config)
    groups = _groups(parameters)
    options: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer in _USES_MOMENTUM:
        options["momentum"] = config.momentum
    if config.optimizer == "sgd":
        options["nesterov"] = config.nesterov
    kind = _CLASSES[config.optimizer]
    return kind(groups, **options, **_fast_path(config.optimizer, groups))


class OptimizerStep:
    """``step()``: ``optimizer.step()``, calling the fused SGD kernel directly when that is the same update.

    ``torch.optim.SGD(fused=True).step()`` spends about 40 µs per call on the lab net
    gathering parameters, gradients and state before one ``torch._fused_sgd_`` call that
    takes 5-8 µs (2-core CPU). Here the same kernel gets the same arguments, so the
    result is bit-identical (see tests/test_optim.py), without the bookkeeping; the lists
    it passes are kept between calls while the same gradient and momentum tensors are
    in place (autograd's ``zero_grad(set_to_none=True)`` makes new gradients every
    step; the manual engine reuses its own). Anything else goes through
    ``optimizer.step()``: other optimizers, several param groups, tensor learning rates,
    step hooks, and the first call, which creates the momentum buffers as PyTorch does
    and lets an LR scheduler see that ``optimizer.step()`` ran before it.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.steps = 0  # taken so far
        self._tensors: tuple[Any, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] | None = None

    def __call__(self) -> None:
        if self.steps > 0 and _direct_sgd(self.optimizer):
            group = self.optimizer.param_groups[0]
            params, grads, buffers = self._kernel_tensors(group)
            torch._fused_sgd_(params, grads, buffers, weight_decay=group["weight_decay"],
                              momentum=group["momentum"], lr=group["lr"], dampening=group["dampening"],
                              nesterov=group["nesterov"], maximize=group["maximize"], is_first_step=False,
                              grad_scale=None, found_inf=None)
        else:
            self.optimizer.step()
        self.steps += 1

    def _kernel_tensors(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Parameters with a gradient, their gradients and momentum buffers: reused while still current."""
        state = self.optimizer.state  # load_state_dict replaces it, and with it every buffer
        if self._tensors is not None and self._tensors[0] is state:
            _, params, grads, buffers = self._tensors
            if len(params) == len(group["params"]) and all(p.grad is g for p, g in zip(params, grads)):
                return params, grads, buffers
        params = [p for p in group["params"] if p.grad is not None]
        grads = [p.grad for p in params]
        buffers = [state[p]["momentum_buffer"] for p in params] if group["momentum"] != 0 else []
        self._tensors = (state, params, grads, buffers)
        return params, grads, buffers


def _direct_sgd(optimizer: Optimizer) -> bool:
    """Whether `OptimizerStep` may call the fused SGD kernel itself (see there)."""
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    if not group.get("fused") or group.get("differentiable") or isinstance(group["lr"], torch.Tensor):
        return False
    if optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks:
        return False
    if _optimizer_module._global_optimizer_pre_hooks or _optimizer_module._global_optimizer_post_hooks:
        return False
    if getattr(optimizer, "grad_scale", None) is not None or getattr(optimizer, "found_inf", None) is not None:
        return False
    if group["momentum"] != 0:  # buffers exist after the first step; that one PyTorch takes
        return all("momentum_buffer" in optimizer.state[p] for p in group["params"])
    return True


def load_optimizer_state(optimizer: Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, but keeping this optimizer's fused/foreach choice.

    PyTorch restores every saved param-group setting, including ``fused``; a checkpoint
    written on one device (fused Adagrad exists only on CPU) could then break or slow
    down a resume on another. Use this instead of ``load_state_dict`` when resuming.
    """
    kept = [{key: group[key] for key in ("fused", "foreach") if key in group} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flags in zip(optimizer.param_groups, kept):
        group.update(flags)


class Schedule:
    """A learning-rate schedule and the interval it is stepped at.

    Attributes:
        name: the `SCHEDULERS` entry it was built from.
        interval: ``"step"`` (stepped after every optimizer step) or ``"epoch"``.
        scheduler: the torch LR scheduler, or None for ``"none"``.
    """

    def __init__(self, name: str, optimizer: Optimizer, scheduler: LRScheduler | None, interval: str) -> None:
        self.name = name
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.interval = interval

    @property
    def lr(self) -> float:
        """The learning rate the next optimizer step will use (first param group)."""
        return self.optimizer.param_groups[0]["lr"]

    def step_batch(self) -> None:
        """Call after every ``optimizer.step()``; advances only per-step schedules."""
        if self.interval == "step" and self.scheduler is not None:
            self.scheduler.step()

    def step_epoch(self) -> None:
        """Call after every epoch; advances only per-epoch schedules."""
        if self.interval == "epoch" and self.scheduler is not None:
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


def _check_schedule(config: OptimConfig, epochs: int, steps_per_epoch: int) -> None:
    """Raise a one-line MlplabError for any setting the schedule cannot take."""
    check_choice("scheduler", config.scheduler, SCHEDULERS)
    if not 0 < config.gamma <= 1:
        raise MlplabError(f"gamma must be in (0, 1] (lr decay factor); got {config.gamma}")
    if config.step_size < 1:
        raise MlplabError(f"step_size must be >= 1 epoch; got {config.step_size}")
    if epochs < 1 or steps_per_epoch < 1:
        raise MlplabError(f"a schedule needs epochs >= 1 and steps_per_epoch >= 1; got {epochs} and {steps_per_epoch}")


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
    """
    _check_schedule(config, epochs, steps_per_epoch)
    name = config.scheduler
    if name == "none":
        return Schedule(name, optimizer, None, "epoch")
    if name == "exponential":
        return Schedule(name, optimizer, ExponentialLR(optimizer, gamma=config.gamma), "epoch")
    if name == "step":
        return Schedule(name, optimizer, StepLR(optimizer, step_size=config.step_size, gamma=config.gamma), "epoch")
    if name == "cosine":
        return Schedule(name, optimizer, CosineAnnealingLR(optimizer, T_max=epochs), "epoch")
    total = epochs * steps_per_epoch  # optimizer steps in the whole run
    onecycle = OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, cycle_momentum=False)
    return Schedule(name, optimizer, onecycle, "step")
