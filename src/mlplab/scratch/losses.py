"""Losses in NumPy: ``forward(outputs, targets) -> batch-mean loss``, then ``backward() -> dLoss/d(outputs)``.

Targets are class labels (B,) ints, or for `MSE` also an array shaped like the outputs.
e_y is the one-hot row of label y, p = softmax(z) the class probabilities, B the batch
size, C the number of classes. Every loss is a mean over the batch, as in PyTorch, so
every gradient carries a 1/B.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from mlplab.scratch.layers import Softmax, log_softmax


def one_hot(labels: np.ndarray, num_classes: int, dtype: DTypeLike = np.float64) -> np.ndarray:
    """e_y for each label: (B,) ints -> (B, C) zeros with a 1 at each row's label."""
    encoded = np.zeros((len(labels), num_classes), dtype=dtype)
    encoded[np.arange(len(labels)), labels] = 1
    return encoded


class Loss:
    """The interface: ``forward(outputs, targets) -> float``, then ``backward() -> dLoss/d(outputs)``."""

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return self.forward(outputs, targets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SoftmaxCrossEntropy(Loss):
    """Loss = mean of -log p_y with log p = log_softmax(z); dz = (p - e_y) / B.

    Softmax and cross-entropy are one layer because together their gradient is that
    simple and stable: no division by a tiny p_y ever happens. Given log-probabilities
    instead of logits it computes the same loss (log_softmax leaves them unchanged).
    """

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        log_p = log_softmax(outputs)  # (B, C)
        self.rows, self.targets = np.arange(len(targets)), targets
        self.p = np.exp(log_p)  # kept for backward
        return float(-np.mean(log_p[self.rows, targets]))

    def backward(self) -> np.ndarray:
        dz = self.p.copy()
        dz[self.rows, self.targets] -= 1  # p - e_y
        return dz / len(self.targets)


class NLL(Loss):
    """Loss = mean of -log p_y, reading log-probabilities (a `LogSoftmax` output); d(log p) = -e_y / B."""

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        self.shape, self.dtype = outputs.shape, outputs.dtype
        self.rows, self.targets = np.arange(len(targets)), targets
        return float(-np.mean(outputs[self.rows, targets]))

    def backward(self) -> np.ndarray:
        grad = np.zeros(self.shape, dtype=self.dtype)
        grad[self.rows, self.targets] = -1.0 / len(self.targets)  # only log p_y enters the loss
        return grad


class MSE(Loss):
    """Loss = mean over all B*C entries of (o - t)^2; do = 2 (o - t) / (B C).

    ``targets`` is an array shaped like the outputs, or class labels (B,), read as e_y.
    """

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        if targets.shape != outputs.shape:
            targets = one_hot(targets, outputs.shape[1], outputs.dtype)
        self.residual = outputs - targets  # (B, C)
        return float(np.mean(self.residual**2))

    def backward(self) -> np.ndarray:
        return 2.0 * self.residual / self.residual.size


class Quadratic(Loss):
    """Loss = mean of 1/2 (||p - e_y||^2 + beta (p_y - 1)^2), reading probabilities p (a `Softmax` output).

    beta = 0 is the labs' quadratic loss; beta > 0 the correct-class quadratic loss
    (ccql), which weighs the correct class's residual more. dp = (p - e_y + beta (p_y - 1) e_y) / B.
    """

    def __init__(self, beta: float = 0.0) -> None:
        self.beta = beta

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        self.rows, self.targets = np.arange(len(targets)), targets
        self.residual = outputs - one_hot(targets, outputs.shape[1], outputs.dtype)  # p - e_y, (B, C)
        correct = self.residual[self.rows, targets]  # p_y - 1, (B,)
        return float(0.5 * np.mean(np.sum(self.residual**2, axis=1) + self.beta * correct**2))

    def backward(self) -> np.ndarray:
        dp = self.residual.copy()
        dp[self.rows, self.targets] *= 1.0 + self.beta  # the correct class's residual counts 1 + beta times
        return dp / len(self.targets)

    def __repr__(self) -> str:
        return f"Quadratic(beta={self.beta:g})"


class OnSoftmax(Loss):
    """A loss of the probabilities p = softmax(outputs): Softmax's backward rule applied to the loss's gradient."""

    def __init__(self, loss: Loss) -> None:
        self.loss, self.softmax = loss, Softmax()

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return self.loss.forward(self.softmax.forward(outputs), targets)

    def backward(self) -> np.ndarray:
        return self.softmax.backward(self.loss.backward())

    def __repr__(self) -> str:
        return f"OnSoftmax({self.loss!r})"


def loss_for(name: str, beta: float = 1.0) -> Loss:
    """The scratch loss behind one of mlplab's loss names, applied to the network's outputs.

    ``cross_entropy`` -> SoftmaxCrossEntropy; ``nll`` -> NLL (the network must end in
    LogSoftmax); ``quadratic``, ``ccql`` and ``mse`` -> Quadratic(0), Quadratic(beta) and
    MSE against e_y, all on softmax probabilities (softmax of log-probabilities is p too).
    """
    losses = {
        "cross_entropy": SoftmaxCrossEntropy,
        "nll": NLL,
        "quadratic": lambda: OnSoftmax(Quadratic(0.0)),
        "ccql": lambda: OnSoftmax(Quadratic(beta)),
        "mse": lambda: OnSoftmax(MSE()),
    }
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(losses)}")
    return losses[name]()
