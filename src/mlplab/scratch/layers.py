"""Layers in NumPy, each with its forward computation and its backward rule side by side.

Every layer works on a batch: rows are samples. ``forward(x)`` returns the output and
keeps what the backward pass needs; ``backward(grad_out)`` takes dLoss/d(output) for that
same batch and returns dLoss/d(input), storing any parameter gradients on the layer
(``dW``, ``db``). Shapes: B samples, n_in inputs, n_out outputs, C classes.

The arrays a layer holds are its parameters; nothing is copied in or out, so a `Linear`
built on views of a ``torch.nn.Linear``'s tensors trains that very layer.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, overload

import numpy as np
from numpy.typing import DTypeLike


class Parameter(NamedTuple):
    """A parameter array and the array its gradient is written into, updated in place by optimizers."""

    name: str  # "W" or "b"
    value: np.ndarray
    grad: np.ndarray


class Layer:
    """The interface: ``forward(x) -> y`` then ``backward(dy) -> dx``; parameters listed by `parameters`."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        """The layer's trainable arrays with their gradients (none for activations)."""
        return []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Linear(Layer):
    """z = x W^T + b, with W (n_out, n_in) and b (n_out,) laid out as in ``torch.nn.Linear``.

    Args:
        W: the weight matrix, used (and updated) in place.
        b: the bias vector, used (and updated) in place.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        if W.ndim != 2 or b.shape != W.shape[:1] or W.dtype != b.dtype:
            raise ValueError(
                f"Linear needs W (n_out, n_in) and b (n_out,) of one dtype; "
                f"got {W.shape} {W.dtype} and {b.shape} {b.dtype}"
            )
        self.W, self.b = W, b
        self.dW = np.zeros_like(W)  # dLoss/dW, (n_out, n_in), written by backward
        self.db = np.zeros_like(b)  # dLoss/db, (n_out,)
        self.x: np.ndarray | None = None  # the last forward's input, (B, n_in)

    @classmethod
    def init(cls, n_in: int, n_out: int, rng: np.random.Generator, dtype: DTypeLike = np.float32) -> Linear:
        """PyTorch's default initialisation: W and b uniform in +-1/sqrt(n_in)."""
        bound = 1.0 / np.sqrt(n_in)
        W = rng.uniform(-bound, bound, size=(n_out, n_in)).astype(dtype)
        b = rng.uniform(-bound, bound, size=n_out).astype(dtype)
        return cls(W, b)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (B, n_in) -> z = x W^T + b (B, n_out)."""
        self.x = x
        z = x @ self.W.T  # (B, n_in) (n_in, n_out)
        z += self.b  # broadcast over the batch
        return z

    @overload
    def backward(self, grad_out: np.ndarray, input_grad: Literal[True] = True) -> np.ndarray: ...
    @overload
    def backward(self, grad_out: np.ndarray, input_grad: bool) -> np.ndarray | None: ...

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dz (B, n_out) -> dx = dz W (B, n_in); stores dW = dz^T x and db = sum over the batch of dz.

        ``input_grad=False`` skips dx (the first layer's input is the data): one matmul less.
        """
        if self.x is None:
            raise RuntimeError("Linear.backward needs a forward pass first: it reads that pass's input")
        np.matmul(grad_out.T, self.x, out=self.dW)  # dW = dz^T x, (n_out, B) (B, n_in)
        np.sum(grad_out, axis=0, out=self.db)  # db_j = sum_b dz_bj, (n_out,)
        return grad_out @ self.W if input_grad else None  # dx = dz W, (B, n_out) (n_out, n_in)

    def parameters(self) -> list[Parameter]:
        return [Parameter("W", self.W, self.dW), Parameter("b", self.b, self.db)]

    def __repr__(self) -> str:
        n_out, n_in = self.W.shape
        return f"Linear({n_in}, {n_out}, dtype={self.W.dtype})"


class ReLU(Layer):
    """h = max(z, 0); dz = dh * [z > 0]."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.positive = x > 0  # (B, n) booleans: where the unit is on
        return np.maximum(x, 0)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self.positive  # the gradient passes where the unit is on, else 0


class Sigmoid(Layer):
    """h = 1 / (1 + e^-z); dz = dh * h (1 - h)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        # The same function as (1 + tanh(z/2)) / 2, which cannot overflow for very negative z.
        self.h = 0.5 * (1.0 + np.tanh(0.5 * x))
        return self.h

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self.h * (1.0 - self.h)


class Tanh(Layer):
    """h = tanh(z); dz = dh * (1 - h^2)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.h = np.tanh(x)
        return self.h

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * (1.0 - self.h * self.h)


class LeakyReLU(Layer):
    """h = z if z > 0 else slope z; dz = dh * (1 if z > 0 else slope). PyTorch's slope is 0.01."""

    def __init__(self, slope: float = 0.01) -> None:
        self.slope = slope

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.positive = x > 0
        return np.where(self.positive, x, self.slope * x)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return np.where(self.positive, grad_out, self.slope * grad_out)


class ELU(Layer):
    """h = z if z > 0 else alpha (e^z - 1); dz = dh * (1 if z > 0 else h + alpha)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.positive = x > 0
        # expm1 of min(z, 0): exact near 0, and no overflow warning from the branch not taken.
        self.h = np.where(self.positive, x, self.alpha * np.expm1(np.minimum(x, 0)))
        return self.h

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return np.where(self.positive, grad_out, grad_out * (self.h + self.alpha))


class Softmax(Layer):
    """p_c = e^{z_c} / sum_k e^{z_k} per row; dz = p * (dp - sum_k dp_k p_k)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.p = softmax(x)  # (B, C), rows sum to 1
        return self.p

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return self.p * (grad_out - np.sum(grad_out * self.p, axis=1, keepdims=True))


class LogSoftmax(Layer):
    """log p_c = z_c - log sum_k e^{z_k} per row; dz = dlogp - p * sum_k dlogp_k."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        log_p = log_softmax(x)  # (B, C)
        self.p = np.exp(log_p)
        return log_p

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out - self.p * np.sum(grad_out, axis=1, keepdims=True)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log p = (z - m) - log sum_k e^{z_k - m}, m = the row maximum: no exponent above 0, so no overflow."""
    shifted = z - np.max(z, axis=1, keepdims=True)  # (B, C), every entry <= 0
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """p = e^{z - m} / sum_k e^{z_k - m} per row, m = the row maximum (stable for any z)."""
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


# The activations the scratch engine has, as Layer classes: all of `mlplab.choices.ACTIVATIONS` but gelu.
ACTIVATION_LAYERS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
}
