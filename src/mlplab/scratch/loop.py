"""Training and evaluating a scratch network on NumPy arrays: the labs' loop, with nothing hidden.

    for x, y in batches:                    (B, 784) images, (B,) labels
        outputs = network.forward(x)        (B, C)
        loss = loss_fn.forward(outputs, y)  batch mean
        network.backward(loss_fn.backward(), input_grad=False)
        optimizer.step()

No zero_grad: each backward pass overwrites every dW and db.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from mlplab.scratch.losses import Loss
from mlplab.scratch.network import Sequential


def batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, rng: np.random.Generator | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(x, y)`` mini-batches in order, or shuffled by ``rng``; the last may be smaller, none is dropped."""
    order = rng.permutation(len(labels)) if rng is not None else None
    for start in range(0, len(labels), batch_size):
        if order is None:
            yield images[start : start + batch_size], labels[start : start + batch_size]
        else:
            index = order[start : start + batch_size]
            yield images[index], labels[index]


def train_step(network: Sequential, loss_fn: Loss, optimizer, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Forward, loss, backward, optimizer step on one batch; returns the outputs (B, C) and the batch-mean loss."""
    outputs = network.forward(x)
    loss = loss_fn.forward(outputs, y)
    network.backward(loss_fn.backward(), input_grad=False)
    optimizer.step()
    return outputs, loss


def train_epoch(
    network: Sequential, loss_fn: Loss, optimizer, data: Iterable[tuple[np.ndarray, np.ndarray]]
) -> dict[str, float]:
    """One pass of `train_step` over ``data``; returns the exact mean loss and accuracy (weighted by batch size)."""
    total_loss, correct, count = 0.0, 0, 0
    for x, y in data:
        outputs, loss = train_step(network, loss_fn, optimizer, x, y)
        total_loss += loss * len(y)
        correct += int(np.sum(outputs.argmax(axis=1) == y))
        count += len(y)
    return {"loss": total_loss / count, "accuracy": correct / count}


def evaluate(
    network: Sequential, loss_fn: Loss, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000
) -> dict[str, float]:
    """Mean loss and accuracy over every sample (no gradients are computed)."""
    total_loss, correct = 0.0, 0
    for x, y in batches(images, labels, batch_size):
        outputs = network.forward(x)
        total_loss += loss_fn.forward(outputs, y) * len(y)
        correct += int(np.sum(outputs.argmax(axis=1) == y))
    return {"loss": total_loss / len(labels), "accuracy": correct / len(labels)}
