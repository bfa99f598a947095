"""Experiment 1 of Rumelhart, Hinton & Williams (1986): a 6-2-1 net learns to detect mirror symmetry.

"Learning representations by back-propagating errors", Nature 323, 533-536. The task:
all 64 binary vectors of 6 bits; the target is 1 for the 8 that read the same from both
ends, else 0. The net: 6 inputs, 2 hidden and 1 output logistic unit, each with a
trainable bias. The error is E = 1/2 sum over the 64 cases of (y - d)^2, summed, not
averaged; the gradient is accumulated over all 64 cases and the weights change once per
sweep: dw(t) = -eps dE/dw + alpha dw(t-1), eps = 0.1, alpha = 0.9 (torch's SGD with
momentum alpha and lr eps is this rule exactly), from weights uniform in [-0.3, 0.3].

Many seeds train at once: every parameter carries a leading seed dimension S, and every
operation is elementwise or a (batched) product over the 64 cases or a unit's inputs, never
across seeds, so each seed trains as it would alone (tests/experiments/test_symmetry.py checks that the
weights come out bit for bit the same). On one CPU thread, 100 seeds x 20,000 sweeps take
about 6 s; a second thread only slows these small products down.
The backward pass is written out (as the labs derive it); shapes: S seeds, P = 64 cases,
H = 2 hidden units, I = 6 inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from mlplab.experiments.symmetry_config import SymmetryConfig
from mlplab.threads import ThreadGovernor

__all__ = [
    "PAPER",
    "SymmetryConfig",
    "Training",
    "Weights",
    "cases",
    "error",
    "forward",
    "gradients",
    "initial_weights",
    "solved",
    "train",
]


def cases(dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """All 64 inputs (64, 6) of 0s and 1s, in binary counting order, and their targets (64,): 1 if symmetric."""
    bits = torch.tensor([[(n >> (5 - i)) & 1 for i in range(6)] for n in range(64)], dtype=dtype)
    targets = (bits == bits.flip(1)).all(dim=1).to(dtype)
    return bits, targets


@dataclass
class Weights:
    """The parameters of S networks: W1 (S, H, I), b1 (S, H), W2 (S, H), b2 (S,)."""

    W1: Tensor
    b1: Tensor
    W2: Tensor
    b2: Tensor

    def tensors(self) -> list[Tensor]:
        return [self.W1, self.b1, self.W2, self.b2]


# The values of the paper's Figure 1: each hidden unit has weights of size 14.2, 7.2 and 3.6
# on the three mirror pairs of inputs, with opposite signs on the two sides of the middle,
# and bias -1.1; both hidden-to-output weights are -8.8 and the output bias is +6.4. Which
# pair carries which size does not change what the net computes (the 1:2:4 sizes encode
# every asymmetric input in a non-zero sum); here the outer pair has 14.2.
PAPER = Weights(
    W1=torch.tensor([[[14.2, 7.2, 3.6, -3.6, -7.2, -14.2], [-14.2, -7.2, -3.6, 3.6, 7.2, 14.2]]], dtype=torch.float64),
    b1=torch.tensor([[-1.1, -1.1]], dtype=torch.float64),
    W2=torch.tensor([[-8.8, -8.8]], dtype=torch.float64),
    b2=torch.tensor([6.4], dtype=torch.float64),
)


def initial_weights(config: SymmetryConfig, dtype: torch.dtype = torch.float64) -> Weights:
    """Each seed's weights drawn from its own generator (seed first_seed + k), uniform in +-init_range."""
    draws = []
    for k in range(config.seeds):
        generator = torch.Generator().manual_seed(config.first_seed + k)
        flat = (torch.rand(2 * 6 + 2 + 2 + 1, generator=generator, dtype=dtype) * 2 - 1) * config.init_range
        draws.append(flat)
    flat = torch.stack(draws)  # (S, 17): W1 row-major, b1, W2, b2
    return Weights(
        flat[:, :12].reshape(-1, 2, 6).clone(), flat[:, 12:14].clone(), flat[:, 14:16].clone(), flat[:, 16].clone()
    )


def forward(weights: Weights, x: Tensor, activation: str = "logistic") -> tuple[Tensor, Tensor]:
    """Hidden activations h (S, P, H) and outputs y (S, P) of every network on the cases x (P, I)."""
    z1 = torch.matmul(x, weights.W1.transpose(1, 2)) + weights.b1[:, None, :]  # z1 = x W1^T + b1, (S, P, H)
    h = torch.sigmoid(z1) if activation == "logistic" else torch.tanh(z1)
    z2 = torch.matmul(h, weights.W2[:, :, None]).squeeze(2) + weights.b2[:, None]  # (S, P)
    return h, torch.sigmoid(z2)


def error(y: Tensor, d: Tensor) -> Tensor:
    """E = 1/2 sum over the cases of (y - d)^2, one per network (S,)."""
    return 0.5 * ((y - d) ** 2).sum(dim=1)


def gradients(
    weights: Weights, x: Tensor, d: Tensor, activation: str = "logistic"
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Outputs y (S, P), E (S,) and dE/d(W1, b1, W2, b2) accumulated over all cases: the backward pass written out.

    dE/dy = y - d;  delta_out = (y - d) y (1 - y)                  (S, P)
    dE/dW2_j = sum_p delta_out h_j;  dE/db2 = sum_p delta_out
    delta_j = delta_out W2_j f'(z1_j), f' = h (1 - h) or 1 - h^2     (S, P, H)
    dE/dW1_ji = sum_p delta_j x_i;  dE/db1_j = sum_p delta_j
    """
    h, y = forward(weights, x, activation)
    delta_out = (y - d) * y * (1 - y)  # (S, P)
    slope = h * (1 - h) if activation == "logistic" else 1 - h * h
    delta = delta_out[:, :, None] * weights.W2[:, None, :] * slope  # (S, P, H)
    dW1 = torch.matmul(delta.transpose(1, 2), x)  # (S, H, P) (P, I)
    dW2 = torch.matmul(delta_out[:, None, :], h).squeeze(1)  # (S, 1, P) (S, P, H)
    return y, error(y, d), [dW1, delta.sum(dim=1), dW2, delta_out.sum(dim=1)]


@dataclass
class Training:
    """What `train` recorded for every seed."""

    config: SymmetryConfig
    weights: Weights  # after the last sweep
    errors: Tensor  # (T + 1, S) float32: E before training and after each sweep
    solved_at: Tensor  # (S,) int64: first sweep after which all 64 outputs are on the right side of 0.5; -1 never
    strict_at: Tensor  # (S,) the same for the stricter test: y > 0.8 for targets 1 and y < 0.2 for targets 0
    outputs: Tensor  # (S, 64) outputs after the last sweep
    seconds: float


def solved(y: Tensor, d: Tensor, margin: float = 0.5) -> Tensor:
    """Per network (S,): every output within ``margin`` of its target (0.5: the right side of 0.5; 0.2: the
    0.2/0.8 test)."""
    return ((y - d).abs() < margin).all(dim=1)


def train(config: SymmetryConfig, weights: Weights | None = None) -> Training:
    """Train ``config.seeds`` networks for ``config.total_sweeps()`` sweeps, all at once."""
    config.check()
    x, d = cases()
    weights = weights if weights is not None else initial_weights(config)
    parameters = weights.tensors()
    optimizer, schedule = _optimizer(config, parameters)
    total, count = config.total_sweeps(), len(weights.b2)
    errors = torch.empty(total + 1, count, dtype=torch.float32)
    solved_at = torch.full((count,), -1, dtype=torch.int64)
    strict_at = torch.full((count,), -1, dtype=torch.int64)
    started = time.perf_counter()
    # 64 patterns through 6-2-1 nets (17 weights): far too little work to split, so one thread.
    with torch.no_grad(), ThreadGovernor(work=count * 64 * 17, recheck=False):
        for sweep in range(total + 1):
            y, errors[sweep], grads = gradients(weights, x, d, config.activation)  # the state after `sweep` sweeps
            for first, margin in ((solved_at, 0.5), (strict_at, 0.2)):
                first[solved(y, d, margin) & (first < 0)] = sweep
            if sweep == total:
                break
            for parameter, grad in zip(parameters, grads, strict=True):
                parameter.grad = grad
            optimizer.step()
            if schedule is not None:
                schedule.step()
    return Training(config, weights, errors, solved_at, strict_at, y, time.perf_counter() - started)


def _optimizer(
    config: SymmetryConfig, parameters: list[Tensor]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The paper's rule (SGD, momentum alpha, lr eps, no dampening) or Adam, and the schedule if any."""
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            parameters, lr=config.eps, momentum=config.alpha, foreach=False
        )
    else:
        optimizer = torch.optim.Adam(parameters, lr=config.eps, foreach=False)
    if config.scheduler == "cosine":
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.total_sweeps())
    if config.scheduler == "exponential":
        return optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.gamma)
    return optimizer, None
