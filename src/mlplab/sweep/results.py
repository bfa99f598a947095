"""What a vectorised sweep returns: per member, the history a single run's `fit` would give, and its weights.

`SweepResult.members[k]` is a `MemberResult`: member k's config, its `History` (one record
per epoch, with the same fields as ``mlplab train``'s history.json, and ``metrics`` the
test metrics of its best epoch), whether and where it diverged, and its weights, which
`MemberResult.model` (or `member_model`) loads into an ordinary `MLP`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor
from torch.nn.utils import vector_to_parameters

from mlplab.config import Config, to_dict
from mlplab.models import MLP
from mlplab.sweep.members import initial_model
from mlplab.runs.history import History

if TYPE_CHECKING:
    from mlplab.sweep.plan import SweepPlan


@dataclass(frozen=True)
class Divergence:
    """Where a member's loss or weights stopped being finite: its updates stopped there."""

    epoch: int  # 1-based
    step: int  # the optimizer step, counted from the start of the run (1-based), that was not applied
    reason: str  # e.g. "the training loss is nan"

    def __str__(self) -> str:
        return f"diverged at epoch {self.epoch}, step {self.step} ({self.reason})"


@dataclass
class MemberResult:
    """One member of a vectorised sweep, as its own run would have ended.

    A diverged member's history holds the epochs before the one it diverged in (a single
    run refuses to record that epoch), ``history.metrics`` is None, and its weights are the
    last finite ones, from before the step that was not applied.
    """

    index: int  # position among the sweep's configs
    config: Config
    history: History
    weights: Tensor  # (P,) the last weights, in the order of MLP.parameters()
    best_weights: Tensor  # (P,) the weights of the best epoch (highest val accuracy, else train accuracy)
    in_features: int
    num_classes: int
    diverged: Divergence | None = None
    halted: str | None = None  # why its training was ended early by an ``on_epoch_end`` hook (`SweepEpoch.halt`)

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The test metrics of the best epoch's weights, as a single run's metrics.json (None if it diverged)."""
        return self.history.metrics

    def model(self, which: str = "last") -> MLP:
        """Member's weights in a new `MLP` (in the sweep's dtype, on the CPU): ``"last"`` or ``"best"`` epoch's."""
        if which not in ("last", "best"):
            raise ValueError(f"which must be 'last' or 'best'; got {which!r}")
        row = self.weights if which == "last" else self.best_weights
        model = initial_model(self.config, self.in_features, self.num_classes).to(row.dtype)
        vector_to_parameters(row.detach().cpu().clone(), model.parameters())
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (builtins only): the config, the history and metrics, and the divergence if any."""
        return {"index": self.index, "config": to_dict(self.config), "history": self.history.to_dict(),
                "metrics": self.metrics, "diverged": None if self.diverged is None else str(self.diverged),
                "halted": self.halted}


@dataclass
class SweepResult:
    """Every member's result, in the order of the configs, and how the sweep ran."""

    members: list[MemberResult]
    plan: SweepPlan  # the plan it followed
    seconds: float  # wall time of the whole sweep, plan included
    extras: dict[str, Any] = field(default_factory=dict)  # threads, dtype, device

    def model(self, index: int, which: str = "last") -> MLP:
        """Member ``index`` as an `MLP` (see `MemberResult.model`)."""
        return self.members[index].model(which)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int) -> MemberResult:
        return self.members[index]


def member_model(result: SweepResult, index: int, which: str = "last") -> MLP:
    """Member ``index`` of a sweep as an ordinary `MLP`, its ``"last"`` or ``"best"`` epoch's weights.

    The model has the member's architecture and the sweep's dtype, is on the CPU and in
    eval mode; ``model(images)`` gives what member ``index`` computes.
    """
    return result.model(index, which)
