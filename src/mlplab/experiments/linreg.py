"""Linear regression on synthetic data: mini-batch SGD against the closed-form least-squares optimum.

The lab's exercise: fit ``y = X w + b`` with ``torch.nn.Linear`` and mini-batch SGD on
the mean squared error, and compare its loss curve with the least-squares solution,
which is the exact minimiser of the same loss on the same data. Everything is float64:
the two MSEs are compared to a fraction of a percent, and float32's rounding (about 1e-7
of each term, summed over a thousand rows and twelve thousand steps) should play no
part in that comparison.

PyTorch is imported inside the functions that use it: the CLI builds its flags from
`LinregConfig` on every `mlplab` command, and importing torch costs about 1.5 s.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlplab.config import Bounds, check_fields, setting
from mlplab.errors import MlplabError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class LinregConfig:
    """The synthetic data and the SGD recipe; every field is a flag of `mlplab experiment linreg`."""

    samples: int = setting(1000, "rows of synthetic data, N", bounds=Bounds(2, 100_000_000))
    features: int = setting(5, "input features, P", bounds=Bounds(1, 10_000))
    noise: float = setting(
        0.1, "standard deviation of the Gaussian noise added to y (units of y)", bounds=Bounds(0, 1_000_000)
    )
    seed: int = setting(0, "drives the data, SGD's initial weights and its shuffling", bounds=Bounds(0, 2**32 - 1))
    batch_size: int = setting(8, "rows per SGD step", bounds=Bounds(1, 100_000_000))
    lr: float = setting(1e-3, "SGD learning rate", bounds=Bounds(0, 1_000_000, low_open=True))
    epochs: int = setting(100, "passes of SGD over the data", bounds=Bounds(1, 1_000_000))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.samples < self.features + 1:
            # [X, 1] has features + 1 columns: fewer rows leave least squares without a unique solution.
            raise MlplabError(
                f"samples must be at least features + 1 = {self.features + 1} for a unique "
                f"least-squares fit; got {self.samples}"
            )

    def bytes_needed(self) -> int:
        """Memory the experiment holds, roughly, float64: X and the design [X, 1], lstsq's copy and work of
        it, the targets, noise and predictions, and the loss curve."""
        return 8 * (self.samples * (4 * (self.features + 1) + 6) + self.epochs)


@dataclass
class Fit:
    """A fitted line: weights (P,), bias, and its mean squared error over the whole data set."""

    weights: torch.Tensor
    bias: float
    mse: float


@dataclass
class SgdRun:
    """SGD's final fit, its loss curve and how long its epochs took."""

    fit: Fit
    curve: list[float]  # MSE over all samples at epochs 0 (before training), 1, ..., epochs
    # Wall time of the epochs alone, per-epoch evaluations included. Building the optimizer is
    # left out: the first one in a process imports torch._dynamo, about a second once.
    seconds: float


@dataclass
class LinregResult:
    """What `run` found: the SGD loss curve, the least-squares optimum and every coefficient."""

    config: LinregConfig
    sgd_mse: list[float]  # MSE over all samples at epochs 0 (before training), 1, ..., epochs
    least_squares_mse: float
    true_weights: list[float]  # (P,) the weights that generated y
    true_bias: float
    least_squares_weights: list[float]
    least_squares_bias: float
    sgd_weights: list[float]
    sgd_bias: float
    sgd_seconds: float  # wall time of SGD's epochs (see SgdRun.seconds)

    @property
    def excess(self) -> float:
        """SGD's final MSE over the least-squares MSE, minus 1 (0.001 is 0.1% worse)."""
        return self.sgd_mse[-1] / self.least_squares_mse - 1

    def to_dict(self) -> dict[str, Any]:
        """Builtins only, for JSON."""
        data = dataclasses.asdict(self)  # the config too, as a dict of its fields
        data["sgd_excess_over_least_squares"] = self.excess
        return data


def _generator(seed: int, stream: int) -> torch.Generator:
    """A generator for one use of the seed (0: data, 1: SGD), so that the two uses never share draws."""
    import torch

    return torch.Generator().manual_seed(2 * seed + stream)


def make_data(config: LinregConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Features X (N, P) ~ N(0, 1), targets y (N,) = X w + b + noise * N(0, 1), and the true w (P,) and b."""
    import torch

    generator, dtype = _generator(config.seed, stream=0), torch.float64  # float64: see the module docstring
    true_weights = torch.randn(config.features, generator=generator, dtype=dtype)
    true_bias = torch.randn((), generator=generator, dtype=dtype)
    features = torch.randn(config.samples, config.features, generator=generator, dtype=dtype)
    noise = config.noise * torch.randn(config.samples, generator=generator, dtype=dtype)
    targets = features @ true_weights + true_bias + noise
    return features, targets, true_weights, float(true_bias)


def mean_squared_error(features: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, bias: float) -> float:
    """Mean over all N rows of (x . w + b - y)^2."""
    return float(((features @ weights + bias - targets) ** 2).mean())


def least_squares(features: torch.Tensor, targets: torch.Tensor) -> Fit:
    """The exact minimiser of the MSE: ``torch.linalg.lstsq`` on [X, 1], the last column carrying the bias."""
    import torch

    design = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype)], dim=1)  # (N, P + 1)
    solution = torch.linalg.lstsq(design, targets.unsqueeze(1)).solution.squeeze(1)  # (P + 1,)
    weights, bias = solution[:-1], float(solution[-1])
    return Fit(weights, bias, mean_squared_error(features, targets, weights, bias))


def sgd(features: torch.Tensor, targets: torch.Tensor, config: LinregConfig) -> SgdRun:
    """Train ``nn.Linear(P, 1)`` by mini-batch SGD on ``nn.MSELoss``, recording the whole-data MSE every epoch."""
    import torch
    from torch import nn

    from mlplab.threads import ThreadGovernor

    samples, width = features.shape
    generator = _generator(config.seed, stream=1)
    model = nn.Linear(width, 1, dtype=features.dtype)
    with torch.no_grad():  # PyTorch's default U(-1/sqrt(P), 1/sqrt(P)), drawn from our generator, not the global one
        bound = 1 / math.sqrt(width)
        model.weight.uniform_(-bound, bound, generator=generator)
        model.bias.uniform_(-bound, bound, generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    loss_function = nn.MSELoss()  # mean over the batch of (prediction - y)^2
    columns = targets.unsqueeze(1)  # (N, 1), the shape of the model's output

    def whole_data_mse() -> float:
        with torch.no_grad():
            return mean_squared_error(features, targets, model.weight[0], float(model.bias))

    curve = [whole_data_mse()]
    started = time.perf_counter()
    # Batches of 8 rows are too small for a second CPU thread to pay off (see mlplab.threads).
    with ThreadGovernor(work=config.batch_size * (width + 1)) as governor:
        for _ in range(config.epochs):
            model.train()
            order = torch.randperm(samples, generator=generator)  # a fresh shuffle every epoch
            for start in range(0, samples, config.batch_size):  # the last batch may be smaller; none dropped
                batch = order[start : start + config.batch_size]
                optimizer.zero_grad()
                loss = loss_function(model(features[batch]), columns[batch])
                loss.backward()
                optimizer.step()
                governor()
            model.eval()
            curve.append(whole_data_mse())
            if not math.isfinite(curve[-1]):
                raise MlplabError(
                    f"SGD diverged: the MSE is {curve[-1]} after epoch {len(curve) - 1}; lower lr (now {config.lr:g})"
                )
    seconds = time.perf_counter() - started
    return SgdRun(Fit(model.weight.detach()[0].clone(), float(model.bias.detach()), curve[-1]), curve, seconds)


def run(config: LinregConfig) -> LinregResult:
    """Make the data, solve least squares, train SGD, and collect the numbers."""
    from mlplab.memory import check_memory

    check_memory(
        config.bytes_needed(),
        f"--samples {config.samples} with --features {config.features}",
        "use fewer --samples or --features",
    )
    features, targets, true_weights, true_bias = make_data(config)
    exact = least_squares(features, targets)
    trained = sgd(features, targets, config)
    return LinregResult(
        config=config,
        sgd_mse=trained.curve,
        least_squares_mse=exact.mse,
        true_weights=true_weights.tolist(),
        true_bias=true_bias,
        least_squares_weights=exact.weights.tolist(),
        least_squares_bias=exact.bias,
        sgd_weights=trained.fit.weights.tolist(),
        sgd_bias=trained.fit.bias,
        sgd_seconds=trained.seconds,
    )
