"""Loss, accuracy and confusion matrices of K stacked members on one split, every sample counted.

`mlplab.evaluate` runs one model over a split in batches and averages exactly (each batch's
mean loss weighted by its size, summed in float64). Here every member sees the same images,
so the first layer of all K members is one matrix product, x (N, n_0) against the K weight
matrices side by side (K n_1, n_0); the later layers are batched products per member. The
losses are the built-in losses' formulas (`mlplab.losses`) on the outputs the model would
give (logits, or log-probabilities for ``output="log_softmax"``); predictions are the arg-max
of those outputs, as ``evaluate`` takes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mlplab.models import ACTIVATION_FUNCTIONS
from mlplab.sweep.stacked import layer_views


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
    for W, b in zip(weights[1:], biases[1:]):
        z = torch.baddbmm(b.unsqueeze(1), activate(z), W.transpose(1, 2))  # (K, N, n_i)
    return torch.log_softmax(z, dim=2) if output == "log_softmax" else z


def batch_losses(outputs: Tensor, labels: Tensor, loss: str, output: str, beta: float = 1.0,
                 label_smoothing: float = 0.0) -> Tensor:
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
def evaluate_stacked(flat: Tensor, widths: tuple[int, ...], images: Tensor, labels: Tensor, *, batch_size: int,
                     activation: str, output: str, loss: str, beta: float = 1.0,
                     label_smoothing: float = 0.0) -> StackedScores:
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
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        outputs = stacked_outputs(flat, widths, x, activation, output)  # (K, n, C)
        loss_sum += batch_losses(outputs, y, loss, output, beta, label_smoothing).double() * len(y)  # batch mean x batch size
        cells = offsets + (y * classes).unsqueeze(0) + outputs.argmax(dim=2)  # (K, n): k C^2 + y C + prediction
        hits += torch.bincount(cells.flatten(), minlength=len(hits))
    confusion = hits.view(count, classes, classes)
    return StackedScores(loss=loss_sum / len(labels), correct=confusion.diagonal(dim1=1, dim2=2).sum(dim=1),
                         count=len(labels), confusion=confusion)
