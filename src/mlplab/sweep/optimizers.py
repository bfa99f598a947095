"""The stacked optimizers: one update for K members' (K, P) parameter buffers, and each member's learning rates.

`stacked_optimizer` builds, for members that share one optimizer kind, the update that
reproduces that kind's single-run step (`mlplab.optim.build_optimizer`) for each of them:
`StackedSGD`, `StackedAdam` (AdamW too), `StackedRMSprop` or `StackedAdagrad`. Each has
``step(parameters, grads, negative_lr, out)`` and ``state_tensors``, the (K, P) tensors it
keeps between steps (`state_count` says how many, for the plan's memory count).
`MemberRates` gives each member's learning rate at every step, from its own scheduler.

Each update follows the PyTorch implementation a single run takes, term by term and
rounding by rounding: the fused CPU kernels of SGD, Adam, AdamW and Adagrad, and the
multi-tensor (foreach) RMSprop. "One rounding" below is a fused multiply-add, here
``torch.addcmul``, whose CPU kernel rounds once as those kernels do. Every coefficient is a
(K, 1) column, so one operation on the whole (K, P) buffers updates every layer of every
member; where members differ in a flag, the flag is a mask, and a member whose momentum or
weight decay is 0 gets the numbers it would alone (buf = 0 buf + g = g, g + 0 p = g).
PyTorch's defaults hold for every setting a config does not carry: Adam betas (0.9, 0.999),
eps 1e-8; RMSprop alpha 0.99, eps 1e-8, not centered; Adagrad eps 1e-10, lr_decay 0.

Learning rates arrive with every step as a (K, 1) column of minus each member's rate, in
float64 like a single run's Python float, so that coefficients such as Adam's
lr / (1 - beta1^t) are rounded once, from double, as the kernels round them.

Where the kernels' machine code rounds otherwise than their source (a scalar loop that fuses
a multiply-add, a correctly rounded square root), the update takes the copies in
`mlplab.torch_internals`, which probes them bit for bit against PyTorch once per process;
where a probe fails (another CPU, another torch) the formulas below stand, and each member
equals its run to rounding instead of bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mlplab.config import OptimConfig
from mlplab.optim import Schedule, build_optimizer, build_schedule
from mlplab.torch_internals import kernel_sqrt, momentum_update, scalar_loop_columns, second_moment_update

BETAS = (0.9, 0.999)  # Adam's
ADAM_EPS = 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8
ADAGRAD_EPS = 1e-10


def column(values: Sequence[float], like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``values`` as a (K, 1) column on ``like``'s device, in ``dtype`` (default ``like``'s)."""
    return torch.tensor(values, dtype=torch.float64).to(dtype or like.dtype).to(like.device).unsqueeze(1)


class StackedUpdate:
    """What every stacked update offers: `step`, and `state_tensors`, the (K, P) tensors it keeps between steps."""

    @property
    def state_tensors(self) -> list[Tensor]:
        """The (K, P) tensors the update keeps between steps."""
        raise NotImplementedError

    def step(self, parameters: Tensor, grads: Tensor, negative_lr: Tensor, out: Tensor) -> Tensor:
        """Write the updated parameters into ``out`` (K, P) and return it; ``grads`` (K, P) is used up as scratch.

        Args:
            parameters: (K, P) the current parameters (left unchanged).
            grads: (K, P) this step's gradients.
            negative_lr: (K, 1) minus each member's learning rate for this step (float64, or the parameters' dtype).
        """
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """What a resume needs: `state_tensors` (not copied: save them before the next step) and Adam's step count."""
        return {"tensors": list(self.state_tensors), "steps": getattr(self, "steps", 0)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy a `state_dict` back into this update's tensors (of the same members, in the same order)."""
        mine, saved = self.state_tensors, state["tensors"]
        if len(mine) != len(saved) or any(a.shape != b.shape for a, b in zip(mine, saved, strict=True)):
            raise ValueError(
                f"the saved optimizer state has {[tuple(t.shape) for t in saved]}, this update "
                f"{[tuple(t.shape) for t in mine]}"
            )
        for tensor, value in zip(mine, saved, strict=True):
            tensor.copy_(value)
        if hasattr(self, "steps"):
            self.steps = state["steps"]


class StackedSGD(StackedUpdate):
    """SGD's update (dampening 0) for K members' (K, P) parameter buffers; learning rates come with every step.

    Per member and per number, in the fused kernel's order:

        g = grad + weight_decay * p            one rounding (skipped when weight_decay is 0)
        buf = momentum * buf + g               two roundings (buf = g at the first step; skipped when momentum is 0)
        g = g + momentum * buf   if nesterov,  one rounding; else g = buf
        p = p + (-lr) * g                      one rounding

    Args:
        momentum, weight_decay, nesterov: one value per member.
        like: a (K, P) tensor of the parameters' shape, dtype and device (for the momentum buffers).
        sizes: the numbers in each parameter tensor of a member, in the buffer's order (for the
            kernel's scalar-loop columns, probe ``sgd_tail_width``); None: none are treated apart.
    """

    def __init__(
        self,
        momentum: Sequence[float],
        weight_decay: Sequence[float],
        nesterov: Sequence[bool],
        like: Tensor,
        sizes: Sequence[int] | None = None,
    ) -> None:
        self.momentum = column(momentum, like) if any(momentum) else None  # None: no member uses momentum
        self.weight_decay = column(weight_decay, like) if any(weight_decay) else None
        # Nesterov for every member (True), none (False), or a (K, 1) mask of those that use it.
        self.nesterov: bool | Tensor = all(nesterov) or (
            torch.tensor(nesterov, device=like.device).unsqueeze(1) if any(nesterov) else False
        )
        self.buffers = torch.zeros_like(like) if self.momentum is not None else None  # (K, P)
        self.tail = scalar_loop_columns("sgd_tail_width", like.dtype, like.device, sizes)  # (T,) columns, or None

    @property
    def state_tensors(self) -> list[Tensor]:
        """The tensors the update keeps between steps: the momentum buffers (K, P), if any member uses momentum."""
        return [self.buffers] if self.buffers is not None else []

    def step(self, parameters: Tensor, grads: Tensor, negative_lr: Tensor, out: Tensor) -> Tensor:
        """The update of every member (see `StackedUpdate.step`)."""
        negative_lr = negative_lr.to(parameters.dtype)
        g = grads
        if self.weight_decay is not None:
            g.addcmul_(parameters, self.weight_decay)  # g = grad + wd p
        if self.momentum is not None:
            assert self.buffers is not None  # made with the momentum
            buffers = momentum_update(self.buffers, g, self.momentum, self.tail)  # buf = mu buf + g
            if self.nesterov is True:
                g.addcmul_(buffers, self.momentum)  # g = g + mu buf
            elif self.nesterov is False:
                g = buffers
            else:
                g = torch.where(self.nesterov, g.addcmul_(buffers, self.momentum), buffers)
        return torch.addcmul(parameters, g, negative_lr, out=out)  # p + (-lr) g


class StackedAdam(StackedUpdate):
    """Adam's update (AdamW's when ``decoupled``) for K members' (K, P) parameter buffers.

    Per member and per number, with t the step (from 1), in the fused kernel's order:

        g = grad + weight_decay * p             Adam: one rounding (skipped when weight_decay is 0)
        p = p * (1 - lr * weight_decay)         AdamW instead (the factor rounded once from double)
        m = lerp(m, g, 1 - beta1)               m + (1 - beta1)(g - m), one fused rounding after g - m
        v = beta2 v + (1 - beta2) g g           ``mul_``, ``addcmul_`` (the kernel's scalar loop: one fma)
        denom = sqrt(v) / sqrt(1 - beta2^t) + eps
        p = p + ((-lr / (1 - beta1^t)) m) / denom

    Args:
        weight_decay: one value per member.
        decoupled: AdamW (weight decay applied to the parameters) rather than Adam (added to the gradient).
        like: a (K, P) tensor of the parameters' shape, dtype and device (for the moments).
        sizes: the numbers in each parameter tensor of a member, in the buffer's order (for the
            kernel's scalar-loop columns, probe ``adam_tail_width``); None: none are treated apart.
    """

    def __init__(
        self, weight_decay: Sequence[float], decoupled: bool, like: Tensor, sizes: Sequence[int] | None = None
    ) -> None:
        self.decoupled = decoupled
        # (K, 1): Adam's in the parameters' dtype (a kernel operand); AdamW's in float64 (1 - lr wd is taken in double).
        self.weight_decay = (
            column(weight_decay, like, torch.float64 if decoupled else None) if any(weight_decay) else None
        )
        self.exp_avg = torch.zeros_like(like)  # (K, P) first moment m
        self.exp_avg_sq = torch.zeros_like(like)  # (K, P) second moment v
        self.steps = 0
        self.tail = scalar_loop_columns("adam_tail_width", like.dtype, like.device, sizes, decoupled)  # (T,) or None
        self.sqrt = kernel_sqrt(like.dtype, like.device)

    @property
    def state_tensors(self) -> list[Tensor]:
        """The tensors the update keeps between steps: m and v, (K, P) each."""
        return [self.exp_avg, self.exp_avg_sq]

    def step(self, parameters: Tensor, grads: Tensor, negative_lr: Tensor, out: Tensor) -> Tensor:
        """The update of every member (see `StackedUpdate.step`)."""
        beta1, beta2 = BETAS
        self.steps += 1
        negative_lr = negative_lr.double()
        g, base = grads, parameters
        if self.weight_decay is not None and not self.decoupled:
            g.addcmul_(parameters, self.weight_decay)  # g = grad + wd p
        elif self.weight_decay is not None:
            base = torch.mul(parameters, (1 + negative_lr * self.weight_decay).to(parameters.dtype), out=out)
        self.exp_avg.lerp_(g, 1 - beta1)
        second_moment_update(self.exp_avg_sq, g, beta2, self.tail)  # v = beta2 v + (1 - beta2) g g
        denom = self.sqrt(self.exp_avg_sq, g).div_(math.sqrt(1 - beta2**self.steps)).add_(ADAM_EPS)
        step_size = (negative_lr / (1 - beta1**self.steps)).to(parameters.dtype)  # (K, 1) -lr / (1 - beta1^t)
        update = torch.mul(self.exp_avg, step_size).div_(denom)
        if base is out:
            return out.add_(update)
        return torch.add(parameters, update, out=out)


class StackedRMSprop(StackedUpdate):
    """RMSprop's update (not centered) for K members' (K, P) parameter buffers, as PyTorch's foreach path takes it.

    Per member and per number, each line one PyTorch operation and its roundings:

        g = grad + weight_decay * p            one rounding (skipped when weight_decay is 0)
        s = alpha s + (1 - alpha) g g          ``s.mul_(alpha).addcmul_(g, g, value=1 - alpha)``
        avg = sqrt(s) + eps                    ``torch.sqrt``, as the foreach path calls it
        with momentum:     buf = momentum buf + g / avg,  p = p + (-lr) buf       (``add_(buf, alpha=-lr)``)
        without momentum:  p = p + ((-lr) g) / avg                                 (``addcdiv_(g, avg, value=-lr)``)

    A member whose momentum is 0 takes the second form even where others take the first, as its run would.

    Args:
        momentum, weight_decay: one value per member.
        like: a (K, P) tensor of the parameters' shape, dtype and device (for the state).
    """

    def __init__(self, momentum: Sequence[float], weight_decay: Sequence[float], like: Tensor) -> None:
        self.weight_decay = column(weight_decay, like) if any(weight_decay) else None
        self.momentum = column(momentum, like) if any(momentum) else None  # None: no member uses momentum
        # The members without momentum, as a (K, 1) mask, when some others have it; else None.
        self.plain = (
            torch.tensor([value == 0 for value in momentum], device=like.device).unsqueeze(1)
            if any(momentum) and not all(momentum)
            else None
        )
        self.square_avg = torch.zeros_like(like)  # (K, P)
        self.buffers = torch.zeros_like(like) if self.momentum is not None else None  # (K, P)

    @property
    def state_tensors(self) -> list[Tensor]:
        """The tensors the update keeps between steps: the mean square and, with momentum, its buffer, (K, P) each."""
        return [self.square_avg] + ([self.buffers] if self.buffers is not None else [])

    def step(self, parameters: Tensor, grads: Tensor, negative_lr: Tensor, out: Tensor) -> Tensor:
        """The update of every member (see `StackedUpdate.step`)."""
        negative_lr = negative_lr.to(parameters.dtype)
        g = grads
        if self.weight_decay is not None:
            g.addcmul_(parameters, self.weight_decay)  # g = grad + wd p
        self.square_avg.mul_(RMSPROP_ALPHA).addcmul_(g, g, value=1 - RMSPROP_ALPHA)
        avg = torch.sqrt(self.square_avg).add_(RMSPROP_EPS)
        if self.momentum is None:
            return torch.add(parameters, g.mul_(negative_lr).div_(avg), out=out)  # p + ((-lr) g) / avg
        assert self.buffers is not None  # made with the momentum
        self.buffers.mul_(self.momentum).addcdiv_(g, avg)  # buf = mu buf + g / avg
        new = torch.addcmul(parameters, self.buffers, negative_lr, out=out)  # p + (-lr) buf
        if self.plain is not None:
            new.copy_(torch.where(self.plain, parameters + g.mul_(negative_lr).div_(avg), new))
        return new


class StackedAdagrad(StackedUpdate):
    """Adagrad's update (lr_decay 0) for K members' (K, P) parameter buffers, as the fused CPU kernel takes it.

    Per member and per number:

        g = grad + weight_decay * p          one rounding (skipped when weight_decay is 0)
        s = s + g g                          one rounding
        p = p + ((-lr) g) / (sqrt(s) + eps)

    Args:
        weight_decay: one value per member.
        like: a (K, P) tensor of the parameters' shape, dtype and device (for the sums of squares).
    """

    def __init__(self, weight_decay: Sequence[float], like: Tensor) -> None:
        self.weight_decay = column(weight_decay, like) if any(weight_decay) else None
        self.sum = torch.zeros_like(like)  # (K, P)
        self.sqrt = kernel_sqrt(like.dtype, like.device)

    @property
    def state_tensors(self) -> list[Tensor]:
        """The tensors the update keeps between steps: the sum of squared gradients, (K, P)."""
        return [self.sum]

    def step(self, parameters: Tensor, grads: Tensor, negative_lr: Tensor, out: Tensor) -> Tensor:
        """The update of every member (see `StackedUpdate.step`)."""
        g = grads
        if self.weight_decay is not None:
            g.addcmul_(parameters, self.weight_decay)  # g = grad + wd p
        self.sum.addcmul_(g, g)  # s + g g
        std = self.sqrt(self.sum, torch.empty_like(g)).add_(ADAGRAD_EPS)
        update = g.mul_(negative_lr.to(parameters.dtype)).div_(std)
        return torch.add(parameters, update, out=out)


StackedOptimizer = StackedSGD | StackedAdam | StackedRMSprop | StackedAdagrad


def state_count(optims: Sequence[OptimConfig]) -> int:
    """How many (K, P) state tensors the stacked update of members with ``optims`` keeps: 0, 1 or 2.

    SGD keeps its momentum buffers, when any member uses momentum; Adam and AdamW their two
    moments; RMSprop its mean squares, and momentum buffers when any member uses momentum;
    Adagrad its sums of squares.
    """
    kind = optims[0].optimizer
    momentum = int(any(optim.momentum > 0 for optim in optims))
    return {"sgd": momentum, "adam": 2, "adamw": 2, "rmsprop": 1 + momentum, "adagrad": 1}[kind]


def stacked_optimizer(
    optims: Sequence[OptimConfig], like: Tensor, sizes: Sequence[int] | None = None
) -> StackedOptimizer:
    """The stacked update of K members, one `OptimConfig` each, all of one optimizer kind.

    Args:
        optims: each member's optimizer settings (lr comes with every step; the rest is read here).
        like: a (K, P) tensor of the parameters' shape, dtype and device (for the state).
        sizes: the numbers in each parameter tensor of a member, in the buffer's order (for the
            fused kernels' scalar-loop columns).
    """
    kinds = {optim.optimizer for optim in optims}
    if len(kinds) != 1:
        raise ValueError(f"the members of one group must share their optimizer; got {sorted(kinds)}")
    kind = kinds.pop()
    weight_decay = [optim.weight_decay for optim in optims]
    momentum = [optim.momentum for optim in optims]
    if kind == "sgd":
        return StackedSGD(momentum, weight_decay, [optim.nesterov for optim in optims], like=like, sizes=sizes)
    if kind in ("adam", "adamw"):
        return StackedAdam(weight_decay, decoupled=kind == "adamw", like=like, sizes=sizes)
    if kind == "rmsprop":
        return StackedRMSprop(momentum, weight_decay, like=like)
    if kind == "adagrad":
        return StackedAdagrad(weight_decay, like=like)
    raise ValueError(f"no stacked update for optimizer {kind!r}")


def dummy_schedule(config: OptimConfig, epochs: int, steps_per_epoch: int) -> Schedule:
    """The `Schedule` a run with ``config`` builds, on a dummy optimizer over one parameter."""
    parameter = torch.zeros(1, requires_grad=True)
    optimizer = build_optimizer([parameter], config)
    schedule = build_schedule(optimizer, config, epochs, steps_per_epoch)
    optimizer.step()  # no gradient, so nothing changes; the scheduler then sees a step before its own
    return schedule


class MemberRates:
    """The learning rates of K members, one epoch at a time, exactly as each one's own run would set them.

    A single run reads ``optimizer.param_groups[0]["lr"]`` at every step and steps its
    `mlplab.Schedule` after every batch and at the end of every epoch. Here each member gets
    the same `Schedule`, built by `build_optimizer` and `build_schedule` from its
    `OptimConfig` over one dummy parameter (`dummy_schedule`); `epoch` walks it through one
    epoch. Members with equal optimizer settings share one schedule (no mlplab schedule
    depends on the losses). Walking a OneCycleLR costs about 2.5 µs a step on a 2-core CPU,
    once per distinct setting.

    Args:
        configs: each member's optimizer settings.
        epochs: the run's epochs.
        steps_per_epoch: optimizer steps per epoch (batches per epoch).
    """

    def __init__(self, configs: Sequence[OptimConfig], epochs: int, steps_per_epoch: int) -> None:
        self.steps_per_epoch = steps_per_epoch
        keys = [dataclasses.astuple(config) for config in configs]
        distinct = list(dict.fromkeys(keys))
        self.schedules = [dummy_schedule(configs[keys.index(key)], epochs, steps_per_epoch) for key in distinct]
        self.member_schedule = torch.tensor([distinct.index(key) for key in keys])  # (K,) into `schedules`

    def epoch(self) -> Tensor:
        """The next epoch's rates, (steps_per_epoch, K) float64: row s is what each member's step s uses."""
        table = torch.empty(self.steps_per_epoch, len(self.schedules), dtype=torch.float64)
        for column, schedule in enumerate(self.schedules):
            rates = []
            for _ in range(self.steps_per_epoch):
                rates.append(schedule.lr)
                schedule.step_batch()
            schedule.step_epoch()
            table[:, column] = torch.tensor(rates, dtype=torch.float64)
        return table[:, self.member_schedule]
