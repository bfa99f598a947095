"""The stacked update a group of members takes, from their optimizer settings, and the state it keeps.

`stacked_optimizer` builds, for members that share one optimizer kind, the update that
reproduces that kind's single-run step (`mlplab.optim.build_optimizer`) for each of them:
`StackedSGD` (`mlplab.sweep.update`) or `StackedAdam`, `StackedRMSprop`, `StackedAdagrad`
(`mlplab.sweep.adaptive`). Each has ``step(parameters, grads, negative_lr, out)`` and
``state_tensors``, the (K, P) tensors it keeps between steps; `state_count` says how many
those are, for the plan's memory count.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mlplab.config import OptimConfig
from mlplab.sweep.adaptive import StackedAdagrad, StackedAdam, StackedRMSprop
from mlplab.sweep.update import StackedSGD

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


def stacked_optimizer(optims: Sequence[OptimConfig], like: Tensor, sizes: Sequence[int] | None = None
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
