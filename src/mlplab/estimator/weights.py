"""Sample weights for `mlplab.MLPClassifier`: checked, combined with class weights, fed to the loss.

The objective is scikit-learn's (``MLPClassifier`` since 1.7): on a batch with weights s_i,

    loss = sum_i s_i * loss_i / sum_i s_i   +   alpha / (2 * sum_i s_i) * sum ||W||^2

so a weight k counts like k copies of the sample, a weight 0 like no sample at all, and
multiplying every weight by one number changes only the L2 term (as repeating every sample
does). `class_weight` multiplies each sample's weight by its class's.

mlplab's training loop hands the loss ``(outputs, labels)`` only, and its fast manual engine
differentiates the unweighted loss by hand. So weighted training is `WeightedBatches`: the same
seeded batches as unweighted training (drawn by `mlplab.Batches` over the row numbers), which
give `WeightedLoss` each batch's weights before the step that uses them; autograd differentiates
that loss. Weights that are all equal leave the loss a plain mean: the estimator then trains
without them, bit for bit as with no weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import _check_sample_weight
from torch import Tensor
from torch.func import vmap

from mlplab.data.batches import Batches
from mlplab.data.loading import TensorSplit


def check_sample_weight(sample_weight: Any, X: np.ndarray, what: str = "sample_weight") -> np.ndarray | None:
    """``sample_weight`` as (n_samples,) float64, or None.

    A wrong length or shape, NaN or inf, a negative weight or all weights 0 is a one-line ValueError;
    ``what`` names the argument in it.
    """
    if sample_weight is None:
        return None
    # scikit-learn's own check: a number becomes a constant array; shape, length and finiteness.
    weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
    if (weights < 0).any():
        raise ValueError(f"{what} has negative values; weights must be >= 0 (a weight of 0 leaves a sample out)")
    if not weights.any():
        raise ValueError(f"every {what} is zero; give at least one sample a positive weight")
    return weights


def class_weight_factors(
    class_weight: Any, classes: np.ndarray, labels: np.ndarray, incremental: bool
) -> np.ndarray | None:
    """Each sample's class weight (n_samples,) float64 from ``class_weight``, or None for None.

    Args:
        class_weight: None, "balanced" (``n_samples / (n_classes * np.bincount(y))``) or a dict
            {class label: weight}, where a class left out weighs 1 (`compute_class_weight`).
        classes: the estimator's ``classes_``.
        labels: (n_samples,) positions in ``classes``.
        incremental: partial_fit's call, which sees one batch of the data, so "balanced" is refused.
    """
    if class_weight is None:
        return None
    if isinstance(class_weight, str) and incremental:
        raise ValueError(
            "class_weight='balanced' is not supported for partial_fit, which sees one chunk of the "
            "data at a time; compute the weights on all of y with sklearn.utils.class_weight."
            "compute_class_weight('balanced', classes=classes, y=y) and pass them as a dict"
        )
    if isinstance(class_weight, dict):
        unknown = [label for label in class_weight if label not in set(classes.tolist())]
        if unknown:
            raise ValueError(
                f"class_weight has labels that are not classes: {unknown}; the classes are {classes.tolist()}"
            )
        values = np.asarray(list(class_weight.values()), dtype=np.float64)
        if not (np.isfinite(values).all() and (values >= 0).all()):
            raise ValueError(f"class_weight values must be finite numbers >= 0; got {class_weight}")
    per_class = compute_class_weight(class_weight, classes=classes, y=classes[labels])  # (n_classes,)
    return per_class[labels]


def combine(sample_weight: np.ndarray | None, factors: np.ndarray | None) -> np.ndarray | None:
    """The training weights: sample weights times class weights (either may be None, meaning ones)."""
    if sample_weight is None or factors is None:
        return factors if sample_weight is None else sample_weight
    return sample_weight * factors


def uniform(weights: np.ndarray | None) -> bool:
    """Whether the weights change nothing but the scale: None, or all equal."""
    return weights is None or bool((weights == weights[0]).all())


class WeightedLoss:
    """``loss(outputs, labels)``: the weighted batch mean sum_i s_i loss_i / sum_i s_i of a mean-reducing loss.

    ``weights`` (B,) is set by `WeightedBatches` before each training step; with None (while
    validating) the loss is the plain batch mean. Each sample's loss_i is the given loss on a
    batch of one, vectorised by ``torch.func.vmap`` (one batched call, no Python loop), so any
    `mlplab.losses` loss weighs its samples without a second formula of its own.
    """

    def __init__(self, loss: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.loss = loss
        self.weights: Tensor | None = None
        self._per_sample = vmap(lambda output, label: loss(output.unsqueeze(0), label.unsqueeze(0)))

    def __call__(self, outputs: Tensor, labels: Tensor) -> Tensor:
        if self.weights is None:
            return self.loss(outputs, labels)
        if self.weights.shape != labels.shape:  # a batch that did not come through WeightedBatches
            raise RuntimeError(f"WeightedLoss has {tuple(self.weights.shape)} weights for {tuple(labels.shape)} labels")
        losses = self._per_sample(outputs, labels)  # (B,) loss_i
        # A batch whose weights are all 0 has no gradient (0 / 1), not 0 / 0.
        total = self.weights.sum().clamp_min(torch.finfo(self.weights.dtype).tiny)
        return (self.weights * losses).sum() / total


class WeightedBatches:
    """`mlplab.Batches` of ``(images, labels)`` that hand `loss` each batch's sample weights.

    The batches are drawn by `mlplab.Batches` over the row numbers, so with the same seed they
    hold the same samples in the same order as unweighted training would; the images, labels and
    weights are then gathered by row. Len, ``batch_size`` and ``set_epoch`` are the inner batches'.

    Args:
        split: the training images and labels, on the training device.
        weights: (n,) the samples' weights, on the same device.
        loss: the loss to weigh (`WeightedLoss` wraps it: train with ``batches.loss``).
        batch_size, shuffle, seed: as for `mlplab.Batches`.
    """

    def __init__(
        self,
        split: TensorSplit,
        weights: Tensor,
        loss: Callable[[Tensor, Tensor], Tensor],
        batch_size: int,
        shuffle: bool,
        seed: int,
    ) -> None:
        rows = torch.arange(len(split), device=split.labels.device)
        self.rows = Batches(TensorSplit(split.images, rows, split.name), batch_size, shuffle=shuffle, seed=seed)
        self.labels, self.weights = split.labels, weights
        self.loss = WeightedLoss(loss)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (`mlplab.Batches.set_epoch`)."""
        self.rows.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        try:
            for images, rows in self.rows:
                self.loss.weights = self.weights[rows]  # read by the step about to train on this batch
                yield images, self.labels[rows]
        finally:
            self.loss.weights = None  # what follows (validation) averages plainly


def weighted_accuracy(predictions: np.ndarray, labels: np.ndarray, weights: np.ndarray | None) -> float:
    """The share of correct predictions, each counted with its weight (scikit-learn's ``accuracy_score``)."""
    correct = (predictions == labels).astype(np.float64)
    return float(np.average(correct, weights=weights))
