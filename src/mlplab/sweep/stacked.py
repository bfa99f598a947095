"""K MLPs of the same widths as one program: their stacked parameters, their training step, their evaluation.

`StackedMLP` holds every parameter of every member in a (K, P) buffer. Row k is member k's
parameters in the order of ``MLP.parameters()`` (W_1 row-major, b_1, W_2, b_2, ...), so
``parameters_to_vector(model.parameters())`` is a row and a row loads back into an `MLP`
with ``vector_to_parameters``. Each layer is seen through views of that buffer:

    W_i   (K, n_i, n_{i-1})   the rows' slice for layer i, batch stride P
    b_i   (K, n_i)

``torch.bmm(..., out=W_i view)`` writes straight into such a view, so the gradients fill a
(K, P) buffer of the same layout, and the optimizer updates all layers of all members with
a few operations on whole buffers (`mlplab.sweep.optimizers`). Two buffers are kept: the
update writes the new parameters into the spare one, which is checked for non-finite
members before it becomes current (`StackedMLP.swap`); a member that diverged keeps its
last finite parameters (`mlplab.sweep.trainer`).

`BatchedStep` is the manual engine's training step (`mlplab.engines.manual.ManualStep`) with
a member dimension, each member on its own batch (K = members, B = batch, C = classes):

    forward    h_0 = x                                   (K, B, n_0)  each member's own images
               z_i = baddbmm(b_i, h_{i-1}, W_i^T)        (K, B, n_i)  layers i = 1..L-1
               h_i = f(z_i)
               z_L^T = baddbmm(b_L, W_L, h_{L-1}^T)      (K, C, B)    class-major, as ManualStep
    loss       p = softmax over the classes              (K, C, B)
    backward   dz_L = dLoss/dz_L                         (K, C, B)    `BatchedStep.output_gradient`
               dW_i = bmm(dz_i^T, h_{i-1})               (K, n_i, n_{i-1})
               db_i = sum of dz_i over the batch         (K, n_i)
               dz_{i-1} = bmm(dz_i, W_i) * f'(z_{i-1})   (K, B, n_{i-1})

Members of one seed draw the same batches. When the group holds S seeds with m members
each (in seed-major order, K = S m), the images are gathered once per seed, x (S, B, n_0),
and the first layer, by far the largest, is one product per seed against its m members'
weights side by side, (S, B, n_0) x (S, n_0, m n_1); its weight gradient likewise.

Every operation is batched over members and never mixes them, so one member's numbers
(even nan) never reach another's. On one CPU thread with MKL each member's slice of these
products comes out bit for bit as ManualStep's ``mm`` (the probe ``batched_products`` of
`mlplab.torch_internals`), and so do the gradients; the batch-mean loss, a metric only, is
summed in another order than ``F.nll_loss`` sums it: equal to float32 rounding.

`evaluate_stacked` scores every member on a split: all K see the same images, so the first
layer of all members is one matrix product, x (N, n_0) against the K weight matrices side by
side (K n_1, n_0); the losses are `mlplab.losses`' formulas, the means exact as
`mlplab.evaluate` takes them (each batch's mean weighted by its size, summed in float64).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils import parameters_to_vector

from mlplab.models import ACTIVATION_FUNCTIONS, MLP, parameter_count  # P, scalars per member
from mlplab.torch_internals import activation_gradient

# Losses whose gradient goes through the softmax (dz = p (dp - <dp, p>)), as in ManualStep.
SOFTMAX_LOSSES = ("quadratic", "ccql", "mse")


def parameter_sizes(widths: Sequence[int]) -> list[int]:
    """Numbers in each parameter tensor, in the order of ``MLP.parameters()``: n_1 n_0, n_1, n_2 n_1, n_2, ..."""
    return [size for a, b in zip(widths[:-1], widths[1:], strict=True) for size in (a * b, b)]


def layer_views(flat: Tensor, widths: Sequence[int]) -> tuple[list[Tensor], list[Tensor]]:
    """The weight views (K, n_i, n_{i-1}) and bias views (K, n_i) of a (K, P) buffer."""
    count = flat.shape[0]
    weights, biases, start = [], [], 0
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        weights.append(flat[:, start : start + n_out * n_in].view(count, n_out, n_in))
        start += n_out * n_in
        biases.append(flat[:, start : start + n_out])
        start += n_out
    return weights, biases


class StackedMLP:
    """The parameters of K MLPs of widths ``widths`` as (K, P) buffers, with per-layer views.

    Args:
        widths: layer widths, input to output, e.g. (784, 16, 32, 24, 10).
        count: K, the number of members.
        dtype, device: of every buffer.
    """

    def __init__(
        self, widths: Sequence[int], count: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> None:
        self.widths = tuple(widths)
        self.count = count
        size = parameter_count(self.widths)
        self._buffers = [torch.zeros(count, size, dtype=dtype, device=device) for _ in range(2)]
        self._views = [layer_views(buffer, self.widths) for buffer in self._buffers]
        self._current = 0

    @classmethod
    def from_models(
        cls, models: Sequence[MLP], dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> StackedMLP:
        """Stack the parameters of ``models`` (all of the same widths), converted to ``dtype`` exactly."""
        stacked = cls(models[0].widths, len(models), dtype, device)
        for row, model in zip(stacked.flat, models, strict=True):
            if model.widths != stacked.widths:
                raise ValueError(f"stacked models must share their widths; got {model.widths} and {stacked.widths}")
            row.copy_(parameters_to_vector(model.parameters()).detach())
        return stacked

    @property
    def flat(self) -> Tensor:
        """The current parameters, (K, P)."""
        return self._buffers[self._current]

    @property
    def spare(self) -> Tensor:
        """The other buffer, (K, P): where an update writes the next parameters."""
        return self._buffers[1 - self._current]

    @property
    def weights(self) -> list[Tensor]:
        """W_1 .. W_L of the current buffer, each (K, n_i, n_{i-1})."""
        return self._views[self._current][0]

    @property
    def biases(self) -> list[Tensor]:
        """b_1 .. b_L of the current buffer, each (K, n_i)."""
        return self._views[self._current][1]

    def swap(self) -> None:
        """Make the spare buffer current (after an update wrote it)."""
        self._current = 1 - self._current


class BatchedStep:
    """Forward, loss and backward of K stacked MLPs on K batches: ``step(x, labels) -> (logits, losses)``.

    Args:
        model: the stacked parameters (read through their current views at every call).
        activation: one of `mlplab.choices.ACTIVATIONS`.
        loss: one of `mlplab.choices.LOSSES`, with ``beta`` for ccql and ``label_smoothing`` for
            cross_entropy and nll (as `mlplab.losses.build_loss` takes them).
        per_seed: m, the members per seed: consecutive runs of m members share their images.
    """

    def __init__(
        self,
        model: StackedMLP,
        activation: str,
        loss: str,
        beta: float = 1.0,
        per_seed: int = 1,
        label_smoothing: float = 0.0,
    ) -> None:
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
        for i, (W, b) in enumerate(zip(weights[:-1], biases[:-1], strict=True)):
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


@dataclass
class StackedScores:
    """What `evaluate_stacked` measured for each member."""

    loss: Tensor  # (K,) float64: the mean loss over every sample
    correct: Tensor  # (K,) int64: samples whose arg-max is the label
    count: int  # samples evaluated
    confusion: Tensor  # (K, C, C) int64: row = true class, column = predicted class

    @property
    def accuracy(self) -> Tensor:
        """(K,) float64: correct / count."""
        return self.correct.double() / self.count


def stacked_outputs(flat: Tensor, widths: tuple[int, ...], x: Tensor, activation: str, output: str) -> Tensor:
    """Every member's outputs on the shared inputs ``x`` (N, n_0): (K, N, C) logits or log-probabilities."""
    weights, biases = layer_views(flat, widths)
    count, samples = flat.shape[0], x.shape[0]
    activate = ACTIVATION_FUNCTIONS[activation]
    # First layer for all members at once: (N, n_0) x (n_0, K n_1) -> (N, K, n_1) -> (K, N, n_1).
    first = F.linear(x, weights[0].reshape(-1, widths[0]), biases[0].reshape(-1))
    z = first.view(samples, count, widths[1]).transpose(0, 1)
    for W, b in zip(weights[1:], biases[1:], strict=True):
        z = torch.baddbmm(b.unsqueeze(1), activate(z), W.transpose(1, 2))  # (K, N, n_i)
    return torch.log_softmax(z, dim=2) if output == "log_softmax" else z


def batch_losses(
    outputs: Tensor, labels: Tensor, loss: str, output: str, beta: float = 1.0, label_smoothing: float = 0.0
) -> Tensor:
    """Each member's mean loss over a batch, (K,), from its outputs (K, N, C) (as `stacked_outputs` gives them)
    and the labels (N,): the formulas of `mlplab.losses`."""
    index = labels.view(1, -1, 1).expand(outputs.shape[0], -1, 1)  # each sample's label, for every member
    if loss == "cross_entropy" or output == "logits":
        log_p = torch.log_softmax(outputs, dim=2)  # F.cross_entropy normalises whatever it is given
    else:
        log_p = outputs
    if loss in ("cross_entropy", "nll"):
        nll = -log_p.gather(2, index).squeeze(2).mean(dim=1)  # mean of -log p_y
        if not label_smoothing:
            return nll
        return (1 - label_smoothing) * nll - label_smoothing * log_p.mean(dim=(1, 2))  # target (1 - e) e_y + e / C
    residual = log_p.exp().scatter_add(2, index, torch.full_like(index, -1, dtype=outputs.dtype))  # p - e_y
    if loss == "mse":
        return residual.square().mean(dim=(1, 2))
    squares = residual.square().sum(dim=2)  # ||p - e_y||^2 per sample, (K, N)
    if loss == "quadratic":
        return 0.5 * squares.mean(dim=1)
    correct = residual.gather(2, index).squeeze(2)  # p_y - 1
    return 0.5 * (squares + beta * correct.square()).mean(dim=1)  # ccql


@torch.inference_mode()
def evaluate_stacked(
    flat: Tensor,
    widths: tuple[int, ...],
    images: Tensor,
    labels: Tensor,
    *,
    batch_size: int,
    activation: str,
    output: str,
    loss: str,
    beta: float = 1.0,
    label_smoothing: float = 0.0,
) -> StackedScores:
    """Score every member (rows of ``flat``, (K, P)) on a whole split, in batches of ``batch_size``.

    Args:
        images: (N, n_0) the split's images, flattened, in the parameters' dtype.
        labels: (N,) int64.
        batch_size: images per batch (the evaluation batch size; nothing is dropped).
        activation, output, loss, beta, label_smoothing: the members' shared model and loss settings.
    """
    count, classes = flat.shape[0], widths[-1]
    loss_sum = torch.zeros(count, dtype=torch.float64, device=flat.device)
    hits = torch.zeros(count * classes * classes, dtype=torch.int64, device=flat.device)
    offsets = torch.arange(count, device=flat.device).unsqueeze(1) * (classes * classes)  # (K, 1)
    for start in range(0, len(labels), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        outputs = stacked_outputs(flat, widths, x, activation, output)  # (K, n, C)
        loss_sum += batch_losses(outputs, y, loss, output, beta, label_smoothing).double() * len(
            y
        )  # batch mean x batch size
        cells = offsets + (y * classes).unsqueeze(0) + outputs.argmax(dim=2)  # (K, n): k C^2 + y C + prediction
        hits += torch.bincount(cells.flatten(), minlength=len(hits))
    confusion = hits.view(count, classes, classes)
    return StackedScores(
        loss=loss_sum / len(labels),
        correct=confusion.diagonal(dim1=1, dim2=2).sum(dim=1),
        count=len(labels),
        confusion=confusion,
    )
