"""Manual backprop: an MLP's training step with the chain rule written out in PyTorch, no autograd.

The lab's nets are so small that a training step costs per-operation overhead rather
than arithmetic, and autograd's graph (recorded in the forward pass, walked in the
backward pass) is a large part of it. `ManualStep` takes the same step with no graph
recorded, with the gradients the labs derive on paper:

    forward    h_0 = x                                 (B, n_0)  flattened images
               z_i = h_{i-1} W_i^T + b_i               (B, n_i)  layers i = 1..L
               h_i = f(z_i)                            (B, n_i)  hidden layers only
    loss       p = softmax(z_L)                        (B, C)    whatever the model outputs
    backward   dz_L = dLoss/dz_L                       (B, C)    see `output_gradient`
               dW_i = dz_i^T h_{i-1}                   (n_i, n_{i-1})
               db_i = sum of dz_i over the batch       (n_i,)
               dz_{i-1} = (dz_i W_i) * f'(z_{i-1})     (B, n_{i-1})

The gradients equal autograd's to rounding (tests/engines/test_manual.py checks them to 1e-12 in
float64 and trains both engines side by side). They are written into each parameter's
``.grad``, then the run's own optimizer steps, so optimizers, schedules, checkpoints and
resume are the same whichever engine computed the gradients. It covers `MLP` models
without dropout, trained with a built-in loss; anything else needs autograd.

The activation derivatives use the kernels autograd itself runs (``torch.ops.aten.*_backward``)
where the probe ``activation_backward`` of `mlplab.torch_internals` finds them, and their
formulas written with public operations (`PUBLIC_GRADIENTS`) elsewhere.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mlplab.engines.base import Engine
from mlplab.engines.optimizer_step import OptimizerStep
from mlplab.losses import NamedLoss
from mlplab.models import ACTIVATION_FUNCTIONS, MLP, activation_and_dropout
from mlplab.torch_internals import PUBLIC_GRADIENTS, activation_gradient


def _unsupported(model: Any, loss_fn: object) -> str | None:
    """Why `ManualStep` cannot train ``model`` (or the MLP a `ModelConfig` describes) with ``loss_fn``; None if
    it can."""
    traits = activation_and_dropout(model)
    if traits is None:
        return f"it writes out the backward pass of mlplab's MLP only, not of {type(model).__name__}"
    activation, dropout = traits
    if dropout:
        return "it does not implement dropout (set --dropout 0)"
    if activation not in PUBLIC_GRADIENTS:
        return f"it has no gradient for activation {activation!r}"
    if not isinstance(loss_fn, NamedLoss):
        return "a custom loss function needs autograd to differentiate it"
    return None


class ManualEngine(Engine):
    """Gradients by the MLP's backprop written out (`ManualStep`)."""

    name = "manual"

    def unsupported(self, model: Any, loss: Any, optimizer: Any) -> str | None:
        return _unsupported(model, loss)

    def step(
        self, model: MLP, loss: NamedLoss, optimizer: torch.optim.Optimizer, compute_dtype: torch.dtype | None = None
    ) -> ManualStep:
        return ManualStep(model, loss, optimizer, compute_dtype)


class ManualStep:
    """One training step on a batch with gradients by hand: ``step(images, labels) -> (logits, loss)``.

    Args:
        model: an `MLP` without dropout.
        loss_fn: a built-in `NamedLoss` (from `mlplab.losses.build_loss`).
        optimizer: the optimizer over ``model.parameters()``; stepped after every batch.
        compute_dtype: ``torch.bfloat16`` for mixed precision (`mlplab.precision`): the matrix products
            of the forward and backward passes take bfloat16 copies of the weights and activations
            (accumulating in float32), while the loss, its gradient, the bias gradients, the
            weights and the optimizer stay float32. None (the default): everything in the
            parameters' own dtype.
    """

    def __init__(
        self, model: MLP, loss_fn: NamedLoss, optimizer: torch.optim.Optimizer, compute_dtype: torch.dtype | None = None
    ) -> None:
        reason = _unsupported(model, loss_fn)
        if reason is not None:
            raise ValueError(f"ManualStep cannot train this model: {reason}")
        self.loss = loss_fn
        self.optimizer_step = OptimizerStep(optimizer)
        layers = model.linears()
        # The step computes with detached aliases of the parameters: the same memory (the
        # optimizer's in-place updates and load_state_dict show through), but no autograd
        # graph is recorded, without the cost of entering torch.no_grad() every step.
        self.weights = [layer.weight.detach() for layer in layers]  # W_i, (n_i, n_{i-1})
        self.biases = [layer.bias.detach() for layer in layers]  # b_i, (n_i,)
        # W_i^T as views made once (the update is in place, so they stay current): F.linear(h, W, b)
        # is addmm(b, h, W^T), and each view or wrapper left out of the step saves ~1.5 µs.
        self.hidden_layers = [(W.t(), b) for W, b in zip(self.weights[:-1], self.biases[:-1], strict=True)]
        self.output_bias = self.biases[-1].unsqueeze(1)  # b_L as a column (C, 1)
        # The gradients are written into each parameter's .grad, created here once.
        self.parameters = [p for layer in layers for p in (layer.weight, layer.bias)]
        self.grads = [torch.empty_like(p) for p in self.parameters]  # dW_1, db_1, ..., dW_L, db_L
        self.activate = ACTIVATION_FUNCTIONS[model.activation]
        self.activation_gradient = activation_gradient(model.activation)
        self._rows: dict[tuple[int, torch.device], Tensor] = {}  # 0..B-1 per (B, device): row indices for p[rows, y]
        self._minus_one = torch.tensor(-1.0)
        self.compute_dtype = compute_dtype if compute_dtype != self.weights[0].dtype else None
        self._low: list[Tensor] = []  # with compute_dtype: the step's weights in it, made by forward_mixed

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Forward, loss, backward, optimizer step; returns the logits (B, C) and the batch-mean loss.

        No zero_grad: `backward` overwrites every gradient, it never adds to them.

        Forward, loss and backward run in ``torch.inference_mode()``: their tensors are
        intermediates no one differentiates, so PyTorch can skip autograd's bookkeeping
        (version counters, view tracking) on each of the step's ~30 small operations,
        about a tenth of an epoch of the lab net. The gradients land in the parameters'
        ordinary ``.grad`` tensors; the optimizer steps outside, so its state stays ordinary too.
        """
        with torch.inference_mode():
            if self.compute_dtype is None:
                z, h = self.forward(images.flatten(1))
                loss, dz = self.output_gradient(z[-1], labels)
                self.backward(z, h, dz)
            else:
                z, h = self.forward_mixed(images.flatten(1))
                loss, dz = self.output_gradient(z[-1], labels)
                self.backward_mixed(z, h, dz)
        self.optimizer_step()
        return z[-1].t(), loss

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Pre-activations ``z`` (z_1..z_L) and inputs ``h`` (h_0 = x .. h_{L-1}) of every layer.

        The logits come class-major: z[-1] is z_L^T (C, B), and z_L its ``.t()`` (B, C).
        """
        z: list[Tensor] = []
        h = [x]
        for W_t, b in self.hidden_layers:
            z.append(torch.addmm(b, h[-1], W_t))  # z_i = h_{i-1} W_i^T + b_i, (B, n_i): F.linear's own call
            h.append(self.activate(z[-1]))  # h_i = f(z_i)
        # The output layer is computed class-major, z_L^T = W_L h_{L-1}^T + b_L (C, B):
        # softmax and sums over the classes then run along contiguous memory (see `output_gradient`).
        z.append(torch.addmm(self.output_bias, self.weights[-1], h[-1].t()))
        return z, h

    def forward_mixed(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """`forward` with the products in ``compute_dtype``: z_1..z_{L-1} and h in it, z_L^T (C, B) back in float32."""
        dtype = self.compute_dtype
        self._low = [W.to(dtype) for W in self.weights]  # this step's weights, rounded once (backward reuses them)
        z: list[Tensor] = []
        h = [x.to(dtype)]
        for W, b in zip(self._low[:-1], self.biases[:-1], strict=True):
            z.append(torch.addmm(b.to(dtype), h[-1], W.t()))  # z_i = h_{i-1} W_i^T + b_i, float32 accumulation
            h.append(self.activate(z[-1]))
        z.append(torch.addmm(self.output_bias.to(dtype), self._low[-1], h[-1].t()).float())  # the loss in float32
        return z, h

    def output_gradient(self, logits_by_class: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """The batch-mean loss and dLoss/dz_L (B, C) from the class-major logits z_L^T (C, B).

        With p = softmax(z_L) and e_y the one-hot labels:

        - cross_entropy, nll: Loss = mean of -log p_y; dz = (p - e_y) / B. With label smoothing e,
          the target is q = (1 - e) e_y + e / C: Loss = (1 - e) mean(-log p_y) - e mean(log p), dz = (p - q) / B.
        - quadratic: Loss = mean of 1/2 ||p - e_y||^2; dLoss/dp = (p - e_y) / B.
        - ccql: adds 1/2 beta (p_y - 1)^2 per sample; dLoss/dp gains beta (p_y - 1) e_y / B.
        - mse: Loss = mean over B*C of (p - e_y)^2; dLoss/dp = 2 (p - e_y) / (B C).
        The last three go through the softmax: dz_c = p_c (dp_c - sum_k dp_k p_k).

        For a log_softmax model the loss reads log p directly; the gradient reaching z_L
        is the same, because log_softmax of log-probabilities returns them unchanged.
        """
        count = labels.shape[0]
        # log_softmax over the 10 classes runs 3-10x faster on class-major data (C, B) than
        # along the short last dim of (B, C) (10 µs against 2 at B = 64; 34 against 3 at
        # B = 256, on a 2-core CPU). `forward` leaves the logits class-major (contiguous);
        # log_p below is a (B, C) view of the class-major result.
        log_p = torch.log_softmax(logits_by_class, dim=0).t()  # (B, C)
        if self.loss.name in ("cross_entropy", "nll"):
            loss = F.nll_loss(log_p, labels)  # mean of -log p_y
            smoothing = self.loss.label_smoothing
            if smoothing:  # target q = (1 - e) e_y + e / C: the loss and dz = (p - q) / B
                loss = (1 - smoothing) * loss - smoothing * log_p.mean()
                p = log_p.exp_().sub_(smoothing / log_p.shape[1])
                dz = p.index_put_(
                    (self._row_indices(count, p.device), labels),
                    torch.tensor(smoothing - 1, dtype=p.dtype, device=p.device),
                    accumulate=True,
                )
                return loss, dz.div_(count)
            dz = self._minus_one_hot(log_p.exp_(), labels)  # p - e_y, in place of log p
            return loss, dz.div_(count)
        p = log_p.exp_()
        residual = self._minus_one_hot(p.clone(), labels)  # r = p - e_y, (B, C)
        squares = residual.square().sum(dim=1)  # ||r||^2 per sample, (B,)
        if self.loss.name == "mse":
            loss, dp = residual.square().mean(), residual * (2.0 / residual.numel())
        elif self.loss.name == "quadratic":
            loss, dp = 0.5 * squares.mean(), residual / count
        else:  # ccql
            beta = self.loss.beta
            correct = residual.gather(1, labels.unsqueeze(1))  # p_y - 1, (B, 1)
            loss = 0.5 * (squares + beta * correct.squeeze(1).square()).mean()
            dp = residual.scatter_add(1, labels.unsqueeze(1), beta * correct) / count
        dz = p * (dp - (dp * p).sum(dim=1, keepdim=True))  # back through the softmax
        return loss, dz

    def backward(self, z: list[Tensor], h: list[Tensor], dz: Tensor) -> None:
        """From dLoss/dz_L down to the first layer, writing dW_i and db_i into each parameter's ``.grad``."""
        self._attach_gradients()
        for i in range(len(self.weights) - 1, -1, -1):
            torch.mm(dz.t(), h[i], out=self.grads[2 * i])  # dW_i = dz_i^T h_{i-1}, (n_i, n_{i-1})
            torch.sum(dz, dim=0, out=self.grads[2 * i + 1])  # db_i, (n_i,)
            if i > 0:  # dz_{i-1} = (dz_i W_i) * f'(z_{i-1})
                dz = self.activation_gradient(dz.mm(self.weights[i]), z[i - 1], h[i])

    def backward_mixed(self, z: list[Tensor], h: list[Tensor], dz: Tensor) -> None:
        """`backward` with the products in ``compute_dtype``; the gradients land in float32 ``.grad``."""
        self._attach_gradients()
        dz = dz.to(self.compute_dtype)
        for i in range(len(self.weights) - 1, -1, -1):
            self.grads[2 * i].copy_(dz.t().mm(h[i]))  # dW_i = dz_i^T h_{i-1}, rounded up to float32
            torch.sum(
                dz, dim=0, dtype=self.grads[2 * i + 1].dtype, out=self.grads[2 * i + 1]
            )  # db_i, summed in float32
            if i > 0:
                dz = self.activation_gradient(dz.mm(self._low[i]), z[i - 1], h[i])

    def _attach_gradients(self) -> None:
        """Make this step's gradient tensors every parameter's ``.grad`` (the backward passes overwrite them)."""
        for parameter, grad in zip(self.parameters, self.grads, strict=True):
            if parameter.grad is not grad:  # first step, or zero_grad(set_to_none=True) ran
                parameter.grad = grad

    def _minus_one_hot(self, p: Tensor, labels: Tensor) -> Tensor:
        """``p - e_y`` computed in place of ``p`` (B, C): subtract 1 at each row's label."""
        if self._minus_one.dtype != p.dtype or self._minus_one.device != p.device:
            self._minus_one = torch.tensor(-1.0, dtype=p.dtype, device=p.device)
        return p.index_put_((self._row_indices(labels.shape[0], p.device), labels), self._minus_one, accumulate=True)

    def _row_indices(self, count: int, device: torch.device) -> Tensor:
        """0..count-1 on ``device``: the row of each sample, for p[rows, y] (kept per count: a slice costs ~1.5 µs)."""
        rows = self._rows.get((count, device))
        if rows is None:
            rows = self._rows[count, device] = torch.arange(count, device=device)
        return rows
