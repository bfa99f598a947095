"""The manual engine's training step for K members at once: the same equations with a member dimension.

`mlplab.engines.manual.ManualStep` writes one MLP's backprop out by hand. `BatchedStep`
runs the same equations, in the same order and with the same kernels, for K members that
each see their own batch (K = members, B = batch, n_i = widths, C = classes):

    forward    h_0 = x                                   (K, B, n_0)  each member's own images
               z_i = baddbmm(b_i, h_{i-1}, W_i^T)        (K, B, n_i)  layers i = 1..L-1
               h_i = f(z_i)
               z_L^T = baddbmm(b_L, W_L, h_{L-1}^T)      (K, C, B)    class-major, as ManualStep
    loss       p = softmax over the classes              (K, C, B)
    backward   dz_L = dLoss/dz_L                         (K, C, B)    `output_gradient`
               dW_i = bmm(dz_i^T, h_{i-1})               (K, n_i, n_{i-1})
               db_i = sum of dz_i over the batch         (K, n_i)
               dz_{i-1} = bmm(dz_i, W_i) * f'(z_{i-1})   (K, B, n_{i-1})

Members of one seed draw the same batches. When the group holds S seeds with m members
each (in seed-major order, K = S m), the images are gathered once per seed, x (S, B, n_0),
and the first layer, by far the largest, is one product per seed against its m members'
weights side by side, (S, B, n_0) x (S, n_0, m n_1); its weight gradient likewise. With
m = 1 (every member its own seed) that is the per-member product above.

Every operation is batched over members and never mixes them, so one member's numbers
(even nan) never reach another's. On one CPU thread each member's slice of these products
comes out bit for bit as ManualStep's ``mm`` (MKL computes every output the same way
whatever the batch or the width; tests/sweep/test_vectorised.py trains members against
single runs of the manual engine), and so do the gradients. The batch-mean loss, a metric
only, is summed in another order than ``F.nll_loss`` sums it: equal to float32 rounding.
The gradients are written into a (K, P) buffer laid out as `StackedMLP`'s parameters.

Everything runs in ``torch.inference_mode()``: no autograd graph, as in ManualStep.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mlplab.engines.manual import activation_gradient
from mlplab.models import ACTIVATION_FUNCTIONS
from mlplab.sweep.stacked import StackedMLP, layer_views

# Losses whose gradient goes through the softmax (dz = p (dp - <dp, p>)), as in ManualStep.
SOFTMAX_LOSSES = ("quadratic", "ccql", "mse")


class BatchedStep:
    """Forward, loss and backward of K stacked MLPs on K batches: ``step(x, labels) -> (logits, losses)``.

    Args:
        model: the stacked parameters (read through their current views at every call).
        activation: one of `mlplab.choices.ACTIVATIONS`.
        loss: one of `mlplab.choices.LOSSES`, with ``beta`` for ccql and ``label_smoothing`` for
            cross_entropy and nll (as `mlplab.losses.build_loss` takes them).
        per_seed: m, the members per seed: consecutive runs of m members share their images.
    """

    def __init__(self, model: StackedMLP, activation: str, loss: str, beta: float = 1.0, per_seed: int = 1,
                 label_smoothing: float = 0.0) -> None:
        self.model = model
        self.per_seed = per_seed
        self.loss, self.beta, self.label_smoothing = loss, beta, label_smoothing
        self.activate = ACTIVATION_FUNCTIONS[activation]
        self.activation_gradient = activation_gradient(activation)
        self.grads = torch.zeros_like(model.flat)  # dW_1, db_1, ..., dW_L, db_L of every member, (K, P)
        self.weight_grads, self.bias_grads = layer_views(self.grads, model.widths)

    def __call__(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Gradients into `grads`; returns the logits (K, C, B), class-major, and each member's batch-mean loss (K,).

        Args:
            x: (S, B, n_0) each seed's images, flattened (S = K when every member has its own seed).
            labels: (K, B) int64, each member's.
        """
        with torch.inference_mode():
            z, h = self.forward(x)
            loss, dz = self.output_gradient(z[-1], labels)
            self.backward(z, h, dz)
        return z[-1], loss

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Pre-activations ``z`` (z_1..z_{L-1} (K, B, n_i), z_L^T (K, C, B)) and layer inputs ``h`` (h_0 = x ..)."""
        weights, biases = self.model.weights, self.model.biases
        z: list[Tensor] = []
        h = [x]
        for i, (W, b) in enumerate(zip(weights[:-1], biases[:-1])):
            # z_i = h_{i-1} W_i^T + b_i, (K, B, n_i); the first layer from each seed's images
            z.append(self._first_layer(x) if i == 0 else torch.baddbmm(b.unsqueeze(1), h[-1], W.transpose(1, 2)))
            h.append(self.activate(z[-1]))  # h_i = f(z_i)
        # z_L^T = W_L h_{L-1}^T + b_L, (K, C, B): class-major, as ManualStep keeps it.
        z.append(torch.baddbmm(biases[-1].unsqueeze(2), weights[-1], self._per_member(h[-1]).transpose(1, 2)))
        return z, h

    def _first_layer(self, x: Tensor) -> Tensor:
        """z_1 = x W_1^T + b_1 for every member, (K, B, n_1), from each seed's images x (S, B, n_0)."""
        W, b = self.model.weights[0], self.model.biases[0]
        if self.per_seed == 1:
            return torch.baddbmm(b.unsqueeze(1), x, W.transpose(1, 2))
        seeds, count, size = x.shape[0], self.per_seed, W.shape[1]
        # Each seed's m members side by side: (S, n_0, m n_1); the product gives (S, B, m n_1).
        z = torch.baddbmm(b.reshape(seeds, 1, count * size), x, W.reshape(seeds, count * size, -1).transpose(1, 2))
        return z.view(seeds, -1, count, size).transpose(1, 2).reshape(seeds * count, -1, size)  # (K, B, n_1)

    def _per_member(self, h: Tensor) -> Tensor:
        """``h``, the input of a layer: (K, B, n) already, or the seeds' images (S, B, n_0) of a one-layer net."""
        if self.per_seed == 1 or len(self.model.weights) > 1:
            return h
        return h.repeat_interleave(self.per_seed, dim=0)

    def output_gradient(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Each member's batch-mean loss (K,) and dLoss/dz_L^T (K, C, B), as ``ManualStep.output_gradient`` has them.

        - cross_entropy, nll: dz = (p - e_y) / B.
        - quadratic, ccql, mse: dLoss/dp as ManualStep states it, then back through the softmax.
        """
        count = labels.shape[1]
        log_p = torch.log_softmax(logits, dim=1)  # (K, C, B)
        picked = log_p.gather(1, labels.unsqueeze(1)).squeeze(1)  # log p_y, (K, B)
        if self.loss not in SOFTMAX_LOSSES:
            loss = picked.sum(dim=1).div_(-count)  # mean of -log p_y
            smoothing = self.label_smoothing
            if smoothing:  # target q = (1 - e) e_y + e / C, in ManualStep's order: p - e / C, then + (e - 1) at y
                loss = (1 - smoothing) * loss - smoothing * log_p.mean(dim=(1, 2))
                p = log_p.exp_().sub_(smoothing / log_p.shape[1])
                dz = p.scatter_add_(1, labels.unsqueeze(1), self._minus_ones(labels, p.dtype, smoothing - 1))
                return loss, dz.div_(count)  # (p - q) / B
            dz = log_p.exp_().scatter_add_(1, labels.unsqueeze(1), self._minus_ones(labels, log_p.dtype))
            return loss, dz.div_(count)  # (p - e_y) / B
        p = log_p.exp_()
        residual = p.clone().scatter_add_(1, labels.unsqueeze(1), self._minus_ones(labels, p.dtype))  # p - e_y
        squares = residual.square().sum(dim=1)  # ||r||^2 per sample, (K, B)
        if self.loss == "mse":
            size = residual.shape[1] * count
            loss, dp = residual.square().sum(dim=(1, 2)) / size, residual * (2.0 / size)
        elif self.loss == "quadratic":
            loss, dp = 0.5 * squares.mean(dim=1), residual / count
        else:  # ccql
            correct = residual.gather(1, labels.unsqueeze(1))  # p_y - 1, (K, 1, B)
            loss = 0.5 * (squares + self.beta * correct.squeeze(1).square()).mean(dim=1)
            dp = residual.scatter_add(1, labels.unsqueeze(1), self.beta * correct) / count
        dz = p * (dp - (dp * p).sum(dim=1, keepdim=True))  # back through the softmax
        return loss, dz

    def backward(self, z: list[Tensor], h: list[Tensor], dz: Tensor) -> None:
        """From dLoss/dz_L^T (K, C, B) down to the first layer, writing dW_i and db_i into `grads`."""
        weights = self.model.weights
        last = len(weights) - 1
        if last == 0 and self.per_seed > 1:  # logistic regression: the output layer is the first
            self._first_weight_gradient(dz.transpose(1, 2), h[0])
            torch.sum(dz, dim=2, out=self.bias_grads[0])
            return
        torch.bmm(dz, h[last], out=self.weight_grads[last])  # dW_L = dz_L^T h_{L-1}, (K, C, n_{L-1})
        torch.sum(dz, dim=2, out=self.bias_grads[last])  # db_L, (K, C)
        if last == 0:
            return
        dz = self.activation_gradient(torch.bmm(dz.transpose(1, 2), weights[last]), z[last - 1], h[last])
        for i in range(last - 1, -1, -1):  # dz: (K, B, n_i)
            if i == 0:
                self._first_weight_gradient(dz, h[0])
            else:
                torch.bmm(dz.transpose(1, 2), h[i], out=self.weight_grads[i])  # dW_i = dz_i^T h_{i-1}
            torch.sum(dz, dim=1, out=self.bias_grads[i])  # db_i
            if i > 0:  # dz_{i-1} = (dz_i W_i) * f'(z_{i-1})
                dz = self.activation_gradient(torch.bmm(dz, weights[i]), z[i - 1], h[i])

    def _first_weight_gradient(self, dz: Tensor, x: Tensor) -> None:
        """dW_1 = dz_1^T x into `grads`, from dz_1 (K, B, n_1) and each seed's images x (S, B, n_0)."""
        if self.per_seed == 1:
            torch.bmm(dz.transpose(1, 2), x, out=self.weight_grads[0])
            return
        seeds, size = x.shape[0], dz.shape[2]
        # Each seed's m members stacked: (S, m n_1, B) x (S, B, n_0) -> (S, m n_1, n_0).
        stacked = dz.reshape(seeds, self.per_seed, -1, size).transpose(2, 3).reshape(seeds, self.per_seed * size, -1)
        self.weight_grads[0].copy_(torch.bmm(stacked, x).view(self.weight_grads[0].shape))

    def _minus_ones(self, labels: Tensor, dtype: torch.dtype, value: float = -1.0) -> Tensor:
        """``value`` (-1) for every sample, (K, 1, B) of ``dtype``, expanded from one scalar: what p - e_y subtracts."""
        minus_one = torch.full((1, 1, 1), value, dtype=dtype, device=labels.device)
        return minus_one.expand(labels.shape[0], 1, labels.shape[1])
