"""A scratch network's gradients checked two ways: against PyTorch autograd and against finite differences.

This is what ``mlplab gradcheck`` runs. Unlike the rest of `mlplab.scratch` it needs
torch (for the autograd reference), so the package does not import it by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mlplab.config import ModelConfig
from mlplab.losses import build_loss
from mlplab.models import build_model
from mlplab.scratch.gradcheck import gradcheck
from mlplab.scratch.losses import loss_for
from mlplab.scratch.network import from_torch


@dataclass
class GradientCheck:
    """One parameter's gradient: its shape, relative error against autograd and against finite differences."""

    name: str  # "layers.0.weight", ...
    shape: tuple[int, ...]
    vs_autograd: float  # ||scratch - autograd|| / ||autograd||
    vs_differences: float  # the same against central differences, over the checked entries
    entries: int  # entries checked by finite differences
    differences_ok: bool  # every checked entry within gradcheck's tolerance


def check_gradients(
    config: ModelConfig,
    loss: str = "cross_entropy",
    beta: float = 1.0,
    *,
    in_features: int = 784,
    num_classes: int = 10,
    batch_size: int = 8,
    entries: int | None = 200,
    seed: int = 0,
) -> tuple[float, list[GradientCheck]]:
    """The loss gradient of the network ``config`` describes, from scratch vs autograd vs finite differences.

    Everything runs in float64 on one random batch (standard normal inputs, random labels)
    with the torch MLP's initial weights for ``seed``. Returns the loss and one
    `GradientCheck` per parameter, input to output.
    """
    torch.manual_seed(seed)
    model = build_model(config, in_features, num_classes).double()
    generator = np.random.default_rng(seed)
    x = generator.standard_normal((batch_size, in_features))
    labels = generator.integers(0, num_classes, batch_size)

    reference_loss = build_loss(loss, config.output, beta)(model(torch.from_numpy(x)), torch.from_numpy(labels))
    reference_loss.backward()
    network, scratch_loss = from_torch(model), loss_for(loss, beta)
    value = scratch_loss.forward(network.forward(x), labels)
    network.backward(scratch_loss.backward())
    analytic = {name: parameter.grad.copy() for name, parameter in network.named_parameters()}

    differences = gradcheck(network, x, labels, loss=scratch_loss, entries=entries, seed=seed)
    rows = []
    for name, torch_parameter in model.named_parameters():  # the scratch network uses the same names
        # every Linear's weight and bias enter the loss, so reference_loss.backward() gave each a gradient
        assert torch_parameter.grad is not None
        want = torch_parameter.grad.numpy()
        rows.append(
            GradientCheck(
                name=name,
                shape=tuple(want.shape),
                vs_autograd=float(np.linalg.norm(analytic[name] - want) / max(float(np.linalg.norm(want)), 1e-300)),
                vs_differences=differences.relative[name],
                entries=differences.entries[name],
                differences_ok=differences.errors[name] <= 1.0,
            )
        )
    return value, rows
