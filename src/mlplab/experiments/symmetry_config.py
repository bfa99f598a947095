"""The symmetry experiment's settings, apart from the code (no torch import: the CLI builds its flags from them)."""

from __future__ import annotations

from dataclasses import dataclass

from mlplab.choices import SYMMETRY_ACTIVATIONS, SYMMETRY_OPTIMIZERS, SYMMETRY_SCHEDULERS
from mlplab.errors import MlplabError, check_choice


@dataclass
class SymmetryConfig:
    """One configuration of the experiment; the defaults are the paper's."""

    seeds: int = 100  # networks trained at once, seeded first_seed, first_seed + 1, ...
    first_seed: int = 0
    sweeps: int = 1425  # the paper's budget: one weight change per sweep through all 64 cases
    long_sweeps: int = 20_000  # a longer budget, to see which failures are only slow
    eps: float = 0.1  # learning rate (epsilon)
    alpha: float = 0.9  # momentum (alpha); sgd only
    init_range: float = 0.3  # initial weights and biases uniform in [-init_range, init_range]
    activation: str = "logistic"  # hidden units: logistic (the paper) or tanh; the output is logistic
    optimizer: str = "sgd"  # sgd (the paper's rule) or adam (lr eps)
    scheduler: str = "none"  # none, cosine (eps to 0 over long_sweeps) or exponential (eps * gamma per sweep)
    gamma: float = 0.9999  # per-sweep decay for scheduler=exponential

    def check(self) -> None:
        """Raise a one-line MlplabError for any setting the experiment cannot take."""
        check_choice("activation", self.activation, SYMMETRY_ACTIVATIONS)
        check_choice("optimizer", self.optimizer, SYMMETRY_OPTIMIZERS)
        check_choice("scheduler", self.scheduler, SYMMETRY_SCHEDULERS)
        if self.seeds < 1 or self.sweeps < 1 or self.long_sweeps < self.sweeps:
            raise MlplabError(f"need seeds >= 1 and 1 <= sweeps <= long_sweeps; got {self.seeds}, {self.sweeps}, "
                              f"{self.long_sweeps}")
        if not (self.eps > 0 and self.alpha >= 0 and self.init_range > 0 and 0 < self.gamma <= 1):
            raise MlplabError("need eps > 0, alpha >= 0, init_range > 0 and 0 < gamma <= 1")

    def total_sweeps(self) -> int:
        return max(self.sweeps, self.long_sweeps)
