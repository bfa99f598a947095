"""Optimizers in NumPy: SGD (momentum, Nesterov, weight decay) and Adam / AdamW, updating in place.

Each takes the network's `Parameter` list (value and gradient arrays) and, on ``step()``,
moves every value against its gradient. The updates are PyTorch's, equation for equation,
and the per-parameter state uses PyTorch's names (``momentum_buffer``; ``step``,
``exp_avg``, ``exp_avg_sq``), so a torch optimizer's state can be handed over as arrays
(see `mlplab.engines.scratch`). g is a gradient, w a parameter value, t the step count.
"""

from __future__ import annotations

import numpy as np

from mlplab.scratch.layers import Parameter

State = dict[str, np.ndarray]


class SGD:
    """Stochastic gradient descent: w <- w - lr * v.

        g = dLoss/dw + weight_decay * w           (the L2 penalty's gradient)
        v = momentum * v + g                      (v = g when momentum is 0)
        v' = g + momentum * v if nesterov else v
        w = w - lr * v'

    Args:
        parameters: the network's parameters (``network.parameters()``).
        lr: learning rate; may be changed between steps (schedules).
        momentum, weight_decay, nesterov: as in ``torch.optim.SGD``.
        state: one dict per parameter holding ``momentum_buffer`` (updated in place);
            default: zeros, which is PyTorch's first step (v = g) exactly.
    """

    def __init__(
        self,
        parameters: list[Parameter],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        state: list[State] | None = None,
    ) -> None:
        if lr <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"SGD needs lr > 0, momentum >= 0, weight_decay >= 0; got {lr}, {momentum}, {weight_decay}"
            )
        if nesterov and momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        self.parameters = list(parameters)
        self.lr, self.momentum, self.weight_decay, self.nesterov = lr, momentum, weight_decay, nesterov
        self.state = (
            state
            if state is not None
            else [{"momentum_buffer": np.zeros_like(p.value)} if momentum else {} for p in self.parameters]
        )

    def step(self) -> None:
        """Update every parameter in place from its current gradient."""
        for (_, w, g), state in zip(self.parameters, self.state, strict=True):
            if self.weight_decay:
                g = g + self.weight_decay * w
            if self.momentum:
                v = state["momentum_buffer"]
                v *= self.momentum
                v += g
                g = g + self.momentum * v if self.nesterov else v
            w -= self.lr * g


class Adam:
    """Adam (Kingma & Ba), and AdamW with ``decoupled=True``:

        w = w * (1 - lr * weight_decay)           (AdamW: decay the weights directly)
        g = dLoss/dw + weight_decay * w           (Adam: weight decay as an L2 gradient)
        m = beta1 m + (1 - beta1) g               (running mean of g)
        s = beta2 s + (1 - beta2) g^2             (running mean of g^2)
        w = w - lr / (1 - beta1^t) * m / (sqrt(s / (1 - beta2^t)) + eps)

    The divisions by 1 - beta^t undo the zero start of m and s (bias correction).

    Args:
        parameters: the network's parameters.
        lr, betas, eps, weight_decay: as in ``torch.optim.Adam`` (defaults too).
        decoupled: AdamW's weight decay instead of Adam's.
        state: one dict per parameter with ``step`` (a 0-d array), ``exp_avg`` (m) and
            ``exp_avg_sq`` (s), updated in place; default: zeros.
    """

    def __init__(
        self,
        parameters: list[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        state: list[State] | None = None,
    ) -> None:
        if lr <= 0 or weight_decay < 0 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(
                f"Adam needs lr > 0, betas in [0, 1), weight_decay >= 0; got {lr}, {betas}, {weight_decay}"
            )
        self.parameters = list(parameters)
        self.lr, self.betas, self.eps, self.weight_decay, self.decoupled = lr, betas, eps, weight_decay, decoupled
        self.state = (
            state
            if state is not None
            else [
                {
                    "step": np.zeros((), dtype=np.float32),
                    "exp_avg": np.zeros_like(p.value),
                    "exp_avg_sq": np.zeros_like(p.value),
                }
                for p in self.parameters
            ]
        )

    def step(self) -> None:
        """Update every parameter in place from its current gradient."""
        beta1, beta2 = self.betas
        for (_, w, g), state in zip(self.parameters, self.state, strict=True):
            state["step"] += 1
            t = float(state["step"])
            if self.weight_decay and self.decoupled:
                w *= 1 - self.lr * self.weight_decay
            elif self.weight_decay:
                g = g + self.weight_decay * w
            m, s = state["exp_avg"], state["exp_avg_sq"]
            m += (1 - beta1) * (g - m)  # = beta1 m + (1 - beta1) g
            s *= beta2
            s += (1 - beta2) * g * g
            denominator = np.sqrt(s) / np.sqrt(1 - beta2**t) + self.eps
            w -= (self.lr / (1 - beta1**t)) * m / denominator


def AdamW(
    parameters: list[Parameter],
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    state: list[State] | None = None,
) -> Adam:
    """Adam with decoupled weight decay (PyTorch's AdamW, whose default weight_decay is 0.01)."""
    return Adam(parameters, lr, betas, eps, weight_decay, decoupled=True, state=state)
