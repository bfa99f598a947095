"""The scratch engine: each batch's step computed by `mlplab.scratch` in NumPy.

The torch model stays the run's model: the scratch network is built on NumPy views of
its parameter tensors (`mlplab.scratch.from_torch` with ``share=True``), so every update
the NumPy optimizer makes lands in the torch model. Evaluation, checkpoints, resume and
``mlplab eval`` then work unchanged. The optimizer's state is shared the same way: its
momentum and Adam moments live in the torch optimizer's state tensors, under PyTorch's
own names, so checkpoints carry them and a resumed run continues exactly. The learning
rate is read from the torch optimizer before every step, so every schedule works.

It needs the CPU (NumPy computes there), an MLP without dropout or GELU, a built-in
loss, and SGD, Adam or AdamW.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mlplab import scratch
from mlplab.engines.base import Engine
from mlplab.losses import NamedLoss
from mlplab.models import MLP, activation_and_dropout
from mlplab.precision import check_precision

# The torch optimizers whose update `mlplab.scratch` implements, by name.
SCRATCH_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
_STATE_KEYS = {
    "sgd": ("momentum_buffer",),
    "adam": ("step", "exp_avg", "exp_avg_sq"),
    "adamw": ("step", "exp_avg", "exp_avg_sq"),
}


def _unsupported(model: Any, loss_fn: object, optimizer: str | torch.optim.Optimizer) -> str | None:
    """Why the scratch engine cannot train this model, loss and optimizer (a name or a torch optimizer); None if
    it can."""
    traits = activation_and_dropout(model)
    if traits is None:
        return f"it builds mlplab's MLP only, not {type(model).__name__}"
    activation, dropout = traits
    name = optimizer if isinstance(optimizer, str) else _optimizer_name(optimizer)
    if dropout:
        return "it has no dropout (set --dropout 0)"
    if activation not in scratch.ACTIVATION_LAYERS:
        return f"it has no activation {activation!r} (it has {', '.join(scratch.ACTIVATION_LAYERS)})"
    if not isinstance(loss_fn, NamedLoss):
        return "a custom loss function needs autograd to differentiate it"
    if loss_fn.label_smoothing:
        return "it has no label smoothing (set --label-smoothing 0, or use --engine manual)"
    if name not in SCRATCH_OPTIMIZERS:
        return f"it implements {', '.join(SCRATCH_OPTIMIZERS)}, not {name or type(optimizer).__name__}"
    return None


def _optimizer_name(optimizer: torch.optim.Optimizer) -> str | None:
    return next((name for name, kind in SCRATCH_OPTIMIZERS.items() if type(optimizer) is kind), None)


class ScratchEngine(Engine):
    """The whole step in NumPy by `mlplab.scratch` (`ScratchStep`)."""

    name = "scratch"

    def unsupported(self, model: Any, loss: Any, optimizer: Any) -> str | None:
        return _unsupported(model, loss, optimizer)

    def step(
        self, model: MLP, loss: NamedLoss, optimizer: torch.optim.Optimizer, compute_dtype: torch.dtype | None = None
    ) -> ScratchStep:
        if compute_dtype is not None:
            check_precision("bf16-mixed", self.name)  # NumPy has no bfloat16: refused in one line
        return ScratchStep(model, loss, optimizer)


class ScratchStep:
    """One training step by `mlplab.scratch`: ``step(images, labels) -> (outputs, loss)``.

    Args:
        model: a CPU `MLP` without dropout; trained in place.
        loss_fn: a built-in `NamedLoss`.
        optimizer: the run's torch SGD, Adam or AdamW over ``model.parameters()``: its
            hyperparameters, learning rate (read every step) and state tensors are used; it never steps itself.
    """

    def __init__(self, model: MLP, loss_fn: NamedLoss, optimizer: torch.optim.Optimizer) -> None:
        reason = _unsupported(model, loss_fn, optimizer)
        if reason is not None:
            raise ValueError(f"the scratch engine cannot train this run: {reason}")
        parameters = list(model.parameters())
        group_parameters = optimizer.param_groups[0]["params"]
        if (
            len(optimizer.param_groups) != 1
            or len(group_parameters) != len(parameters)
            or any(a is not b for a, b in zip(group_parameters, parameters, strict=True))
        ):
            raise ValueError("the scratch engine needs one optimizer param group holding model.parameters() in order")
        self.network = scratch.from_torch(model, share=True)  # views of the model's tensors
        self.loss_fn = scratch.loss_for(loss_fn.name, loss_fn.beta)
        self.torch_optimizer = optimizer
        self.optimizer = _shared_optimizer(optimizer, self.network, parameters)
        # The torch optimizer never steps the weights, but an LR scheduler warns when its step
        # comes before any optimizer.step(). One step with no gradients tells it a step ran, and
        # changes nothing: optimizers skip parameters whose .grad is None.
        optimizer.zero_grad(set_to_none=True)
        optimizer.step()

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, float]:
        """Forward, loss, backward and update in NumPy; returns the outputs (B, C) as a tensor and the batch-mean
        loss."""
        self.optimizer.lr = self.torch_optimizer.param_groups[0]["lr"]  # schedules change it between steps
        outputs, loss = scratch.train_step(self.network, self.loss_fn, self.optimizer, images.numpy(), labels.numpy())
        return torch.from_numpy(outputs), loss


def _shared_optimizer(
    optimizer: torch.optim.Optimizer, network: scratch.Sequential, parameters: list[torch.nn.Parameter]
) -> scratch.SGD | scratch.Adam:
    """The scratch optimizer with the torch optimizer's settings, its state arrays views of the torch state."""
    name = _optimizer_name(optimizer)
    assert name is not None  # ScratchStep refused any other optimizer (`_unsupported`)
    group = optimizer.param_groups[0]
    keys = _STATE_KEYS[name] if name != "sgd" or group["momentum"] else ()
    state = [{key: _state_tensor(optimizer, parameter, key).numpy() for key in keys} for parameter in parameters]
    if name == "sgd":
        if group["dampening"] or group["maximize"]:
            raise ValueError("the scratch engine's SGD has no dampening or maximize")
        return scratch.SGD(
            network.parameters(), group["lr"], group["momentum"], group["weight_decay"], group["nesterov"], state=state
        )
    if group["amsgrad"] or group["maximize"]:
        raise ValueError("the scratch engine's Adam has no amsgrad or maximize")
    return scratch.Adam(
        network.parameters(),
        group["lr"],
        group["betas"],
        group["eps"],
        group["weight_decay"],
        decoupled=name == "adamw",
        state=state,
    )


def _state_tensor(optimizer: torch.optim.Optimizer, parameter: torch.nn.Parameter, key: str) -> Tensor:
    """``optimizer.state[parameter][key]``, created as PyTorch would at its first step if missing.

    Zeros are PyTorch's first step exactly: momentum 0 * v + g is g, and Adam starts its
    moments at 0. The step count is a float32 0-d tensor, as PyTorch keeps it.
    """
    state: dict[str, Any] = optimizer.state[parameter]
    if state.get(key) is None:
        state[key] = torch.zeros((), dtype=torch.float32) if key == "step" else torch.zeros_like(parameter.detach())
    return state[key]
