"""The autograd engine: the textbook PyTorch step, for any model, loss and optimizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from mlplab.engines.base import Engine
from mlplab.engines.optimizer_step import OptimizerStep


class AutogradStep:
    """Zero grad, forward, loss, backward, optimizer step: ``step(images, labels) -> (outputs, loss)``.

    Args:
        model: any ``nn.Module`` mapping a batch of images to (B, C) outputs.
        loss_fn: any ``(outputs, labels) -> scalar tensor`` callable (an ``nn.Module`` loss too).
        optimizer: any ``torch.optim`` optimizer over the model's parameters.
        compute_dtype: ``torch.bfloat16`` runs the forward pass and the loss under ``torch.autocast``
            (`mlplab.precision`): the matrix products in bfloat16, the parameters and their gradients float32.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        optimizer: torch.optim.Optimizer,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.optimizer_step = OptimizerStep(optimizer)  # optimizer.step(), cheaper for fused SGD
        self.compute_dtype = compute_dtype

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        if self.compute_dtype is None:
            outputs = self.model(images)  # (B, C) logits or log-probabilities
            loss = self.loss_fn(outputs, labels)  # mean over the batch
        else:
            with torch.autocast(images.device.type, dtype=self.compute_dtype):
                outputs = self.model(images)
            outputs = outputs.float()  # the loss in float32, as autocast's own policy has it
            loss = self.loss_fn(outputs, labels)
        loss.backward()
        self.optimizer_step()
        return outputs.detach(), loss.detach()


class AutogradEngine(Engine):
    """Gradients by PyTorch's autograd: trains anything that is differentiable."""

    name = "autograd"

    def unsupported(self, model: Any, loss: Any, optimizer: Any) -> str | None:
        return None

    def step(
        self, model: nn.Module, loss: Any, optimizer: torch.optim.Optimizer, compute_dtype: torch.dtype | None = None
    ) -> AutogradStep:
        return AutogradStep(model, loss, optimizer, compute_dtype)
