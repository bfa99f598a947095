"""The symmetry experiment's settings, apart from the code (no torch import: the CLI builds its flags from them)."""

from __future__ import annotations

from dataclasses import dataclass

from mlplab.choices import SYMMETRY_ACTIVATIONS, SYMMETRY_OPTIMIZERS, SYMMETRY_SCHEDULERS
from mlplab.config import Bounds, check_fields, setting
from mlplab.errors import MlplabError

MAX_SEEDS = 100_000  # networks at once: their error curves alone are 4 bytes x seeds x (long_sweeps + 1)
MAX_SWEEPS = 1_000_000


@dataclass
class SymmetryConfig:
    """One configuration of the experiment; the defaults are the paper's. Every field is a flag of
    `mlplab experiment symmetry`, with its range."""

    seeds: int = setting(
        100, "networks trained at once, seeded first_seed, first_seed + 1, ...", bounds=Bounds(1, MAX_SEEDS)
    )
    first_seed: int = setting(0, "seed of the first network; the others follow", bounds=Bounds(0, 2**32 - 1))
    sweeps: int = setting(
        1425,
        "the paper's budget of sweeps, one weight change per sweep through all 64 cases",
        bounds=Bounds(1, MAX_SWEEPS),
    )
    long_sweeps: int = setting(
        20_000, "a longer budget, to see which failures are only slow", bounds=Bounds(1, MAX_SWEEPS)
    )
    eps: float = setting(0.1, "learning rate epsilon", bounds=Bounds(0, 1000, low_open=True))
    alpha: float = setting(0.9, "momentum alpha, for --optimizer sgd", bounds=Bounds(0, 1, high_open=True))
    init_range: float = setting(
        0.3, "initial weights and biases uniform in [-r, r]", bounds=Bounds(0, 100, low_open=True)
    )
    activation: str = setting(
        "logistic", "hidden units: logistic (the paper) or tanh; the output is logistic", choices=SYMMETRY_ACTIVATIONS
    )
    optimizer: str = setting(
        "sgd",
        "sgd (the paper's rule: dw = -eps dE/dw + alpha dw_prev) or adam with lr eps",
        choices=SYMMETRY_OPTIMIZERS,
    )
    scheduler: str = setting(
        "none",
        "none, cosine (eps to 0 over the long budget) or exponential (eps x gamma per sweep)",
        choices=SYMMETRY_SCHEDULERS,
    )
    gamma: float = setting(0.9999, "per-sweep decay for --scheduler exponential", bounds=Bounds(0, 1, low_open=True))

    def check(self) -> None:
        """Raise a one-line MlplabError for any setting the experiment cannot take."""
        check_fields(self)
        if self.long_sweeps < self.sweeps:
            raise MlplabError(f"long_sweeps must be at least sweeps ({self.sweeps}); got {self.long_sweeps}")

    def total_sweeps(self) -> int:
        return max(self.sweeps, self.long_sweeps)

    def bytes_needed(self) -> int:
        """Memory one training of this config holds, roughly: each seed's error curve (float32, one value
        per sweep), its 17 weights with their gradients and optimizer state, and its 64 cases' activations
        (float64)."""
        return self.seeds * (4 * (self.total_sweeps() + 1) + 8 * (17 * 6 + 64 * 12))
