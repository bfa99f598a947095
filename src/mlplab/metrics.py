"""Exact metrics: sums weighted by batch size, divided by the number of samples at the end; `evaluate`.

`evaluate` scores any model on any batches (loss, accuracy, per-class accuracy, confusion matrix)
with these meters; `fit` validates and tests with it, and a saved run (`mlplab.runs`) is scored by it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from mlplab.device import model_device
from mlplab.errors import MlplabError
from mlplab.losses import build_loss
from mlplab.models import MLP
from mlplab.threads import ThreadGovernor, model_work

LossFn = Callable[[Tensor, Tensor], Tensor]
Batches = Iterable[tuple[Tensor, Tensor]]


class AverageMeter:
    """Mean of per-batch averages, weighted by batch size: exact, not a mean of means.

    ``update(value, n)`` takes the *mean* over a batch of ``n`` samples; `avg` is the sum
    of value*n over the sum of n. Values may be 0-d tensors: they are kept as they are and
    summed once when `avg` is read, so the training loop never waits for the device.
    """

    def __init__(self) -> None:
        self._values: list[float | Tensor] = []
        self._counts: list[int] = []

    def update(self, value: float | Tensor, n: int = 1) -> None:
        """Add a batch whose mean is ``value`` over ``n`` samples."""
        if isinstance(value, Tensor):
            # detach only what autograd tracks: the call costs ~1 µs, a tenth of a batch-4 step's bookkeeping
            self._values.append(value.detach() if value.requires_grad else value)
        else:
            self._values.append(float(value))
        self._counts.append(int(n))

    @property
    def count(self) -> int:
        """Number of samples seen."""
        return sum(self._counts)

    @property
    def sum(self) -> float:
        """Sum over samples (value*n summed over batches), in float64."""
        if not self._values:
            return 0.0
        values = self.values()
        return float(torch.tensor(values, dtype=torch.float64) @ torch.tensor(self._counts, dtype=torch.float64))

    @property
    def avg(self) -> float:
        """The mean over all samples so far (nan before the first update)."""
        return self.sum / self.count if self._counts else float("nan")

    def values(self) -> list[float]:
        """The per-batch values as floats, in order."""
        tensors = [v for v in self._values if isinstance(v, Tensor)]
        if tensors and len(tensors) == len(self._values):
            return torch.stack(tensors).double().cpu().tolist()  # one device sync for all
        return [float(v) for v in self._values]


def correct_count(outputs: Tensor, labels: Tensor) -> Tensor:
    """Number of rows whose arg-max equals the label, as a 0-d int64 tensor."""
    return (outputs.argmax(dim=1) == labels).sum()


def accuracy(outputs: Tensor, labels: Tensor) -> float:
    """Fraction of rows of ``outputs`` (B, C) whose arg-max equals ``labels`` (B,)."""
    return correct_count(outputs, labels).item() / labels.numel()


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """(C, C) int64 counts; row = true class, column = predicted class."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: Tensor) -> list[float]:
    """Recall of each true class from a confusion matrix (nan for a class with no samples)."""
    totals = confusion.sum(dim=1)
    hits = confusion.diagonal()
    return [hit / total if total else float("nan") for hit, total in zip(hits.tolist(), totals.tolist(), strict=True)]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    loss_fn: LossFn | None = None,
    num_classes: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Loss, accuracy, per-class accuracy and confusion matrix over every sample of ``batches``, in eval mode.

    Args:
        model: the network (its mode is left in eval).
        batches: any iterable of ``(images, labels)``; nothing is dropped.
        loss_fn: the loss to average; default cross-entropy on the model's outputs.
        num_classes: the size of the confusion matrix; default the model's number of outputs.
        threads: CPU threads to compute with; default chosen for the machine's load (`mlplab.threads`).
    """
    device = model_device(model)
    work = model_work(model, getattr(batches, "batch_size", None))
    with ThreadGovernor(threads, work=work, device=device.type, recheck=False):
        return _evaluate_pass(model, batches, loss_fn or default_loss(model), num_classes, device)


def _evaluate_pass(
    model: nn.Module, batches: Batches, loss_fn: LossFn, num_classes: int | None, device: torch.device
) -> dict[str, Any]:
    """The body of `evaluate`."""
    model.eval()
    loss_meter = AverageMeter()
    predictions, targets = [], []
    for images, labels in batches:
        if images.device != device:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        outputs = model(images)
        loss_meter.update(loss_fn(outputs, labels), labels.shape[0])
        predictions.append(outputs.argmax(dim=1))
        targets.append(labels)
        num_classes = num_classes or outputs.shape[1]
    if not targets:
        raise MlplabError("nothing to evaluate: the batches are empty")
    assert num_classes is not None  # set by the loop, which ran at least once
    confusion = confusion_matrix(torch.cat(predictions), torch.cat(targets), num_classes).cpu()
    return {
        "loss": loss_meter.avg,
        "accuracy": int(confusion.trace()) / loss_meter.count,
        "count": loss_meter.count,
        "per_class_accuracy": per_class_accuracy(confusion),
        "confusion": confusion.tolist(),
    }


def default_loss(model: nn.Module) -> LossFn:
    """Cross-entropy that knows what ``model`` outputs (an `MLP`'s ``output``; logits for anything else)."""
    return build_loss("cross_entropy", model.output if isinstance(model, MLP) else "logits")
