"""Training engines: how one batch's gradients are computed before the optimizer steps.

- ``autograd``: the textbook PyTorch step (zero grad, forward, loss, backward, step).
- ``manual``: the same step with the MLP's backprop written out by hand
  (`mlplab.training.manual`): the same gradients to rounding, without autograd's graph.
  On the lab's 784-16-32-24-10 net at batch 64 it trains an epoch about 1.6x faster.
- ``scratch``: the step computed in NumPy by `mlplab.scratch` (`mlplab.training.scratch_step`):
  the from-scratch engine the labs build, training the same model on the same batches.
- ``auto``: ``manual`` wherever it applies (an MLP without dropout, a built-in loss),
  else ``autograd``; never ``scratch``, which is asked for by name.

A step is a callable ``step(images, labels) -> (outputs, loss)``: the outputs detached,
the loss a 0-d tensor or a float.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from mlplab.config import ModelConfig
from mlplab.errors import MlplabError, check_choice
from mlplab.optim import OptimizerStep
from mlplab.training import scratch_step
from mlplab.training.manual import ManualStep, unsupported

ENGINES = ("auto", "autograd", "manual", "scratch")
Step = Callable[[Tensor, Tensor], tuple[Tensor, Tensor | float]]


class AutogradStep:
    """Zero grad, forward, loss, backward, optimizer step: ``step(images, labels) -> (outputs, loss)``."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 optimizer: torch.optim.Optimizer) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.optimizer_step = OptimizerStep(optimizer)

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.model(images)  # (B, C) logits or log-probabilities
        loss = self.loss_fn(outputs, labels)  # mean over the batch
        loss.backward()
        self.optimizer_step()
        return outputs.detach(), loss.detach()


def resolve_engine(engine: str, model: nn.Module | ModelConfig, loss_fn: object,
                   optimizer: str | torch.optim.Optimizer = "sgd") -> str:
    """The engine that will train: ``auto`` becomes ``manual`` where it applies, else ``autograd``.

    ``model`` may be the model's config and ``optimizer`` its name, to refuse a bad
    ``--engine`` before any data loads.
    """
    check_choice("engine", engine, ENGINES)
    if engine == "autograd":
        return engine
    if engine == "scratch":
        reason = scratch_step.unsupported(model, loss_fn, optimizer)
        if reason is not None:
            raise MlplabError(f"--engine scratch cannot train this run: {reason}; use --engine auto")
        return engine
    reason = unsupported(model, loss_fn)
    if reason is not None and engine == "manual":
        raise MlplabError(f"--engine manual cannot train this run: {reason}; use --engine autograd or auto")
    return "manual" if reason is None else "autograd"


def make_step(engine: str, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
              optimizer: torch.optim.Optimizer) -> Step:
    """The training step of ``engine`` (one of `ENGINES`) for this model, loss and optimizer."""
    resolved = resolve_engine(engine, model, loss_fn, optimizer)
    if resolved == "scratch":
        return scratch_step.ScratchStep(model, loss_fn, optimizer)  # type: ignore[arg-type]
    if resolved == "manual":
        return ManualStep(model, loss_fn, optimizer)  # type: ignore[arg-type]
    return AutogradStep(model, loss_fn, optimizer)
