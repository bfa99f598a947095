"""Classification losses: (B, C) model outputs and (B,) int64 labels in, the batch mean out.

Every loss is told what the model outputs (``output="logits"`` or ``"log_softmax"``,
the `MLP.output` attribute) so that it can turn outputs into class probabilities
correctly. Probabilities are always ``exp(log_softmax(.))``, never ``softmax`` of raw
exponentials, so large logits cannot overflow. `build_loss` picks one by name (checking
the name and settings it is given); `config_loss` takes them from a `Config`, which has
checked them already.

Notation in the docstrings: p = class probabilities (B, C), y = labels (B,),
e_y = one-hot row of y, mean = mean over the B samples unless stated otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from mlplab.choices import LOSSES, OUTPUTS
from mlplab.config import SMOOTHED_LOSSES, check_output, check_setting, check_smoothing
from mlplab.errors import MlplabError, check_choice

if TYPE_CHECKING:
    from mlplab.config import Config

LossFunction = Callable[[Tensor, Tensor], Tensor]


def _check(outputs: Tensor, targets: Tensor, output: str) -> None:
    """Raise a one-line MlplabError unless outputs is (B, C), targets (B,) int64, output known."""
    check_choice("model output", output, OUTPUTS)
    if targets.dtype != torch.int64:
        raise MlplabError(f"targets must be int64 class indices; got dtype {targets.dtype} (use targets.long())")
    if outputs.dim() != 2 or targets.shape != outputs.shape[:1]:
        raise MlplabError(
            f"losses take outputs of shape (B, C) and targets of shape (B,); "
            f"got {tuple(outputs.shape)} and {tuple(targets.shape)}"
        )


def _residual(outputs: Tensor, targets: Tensor, output: str) -> Tensor:
    """p - e_y, shape (B, C), with p computed stably from the model's outputs."""
    log_probs = outputs if output == "log_softmax" else F.log_softmax(outputs, dim=1)
    probs = log_probs.exp()
    # scatter, not scatter_: torch.func.vmap batches it (the weighted loss of `mlplab.estimator.weights`).
    one_hot = torch.zeros_like(probs).scatter(1, targets.unsqueeze(1), 1.0)
    return probs - one_hot


def cross_entropy(outputs: Tensor, targets: Tensor, *, output: str, label_smoothing: float = 0.0) -> Tensor:
    """Mean of -log p_y; with label smoothing e, mean of -sum_c q_c log p_c with q = (1 - e) e_y + e / C.

    Computed as ``F.cross_entropy(outputs, label_smoothing=e)``, which applies log_softmax
    first. That is also right for log-probability outputs: log_softmax of log-probabilities
    returns them unchanged (their logsumexp is log 1 = 0), so both output kinds are accepted.
    """
    _check(outputs, targets, output)
    return F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)


def nll(outputs: Tensor, targets: Tensor, *, output: str, label_smoothing: float = 0.0) -> Tensor:
    """Mean of -log p_y, reading log p straight from the outputs (needs ``output="log_softmax"``).

    With label smoothing e: (1 - e) times that, plus e times the mean over samples of -mean_c log p_c,
    the same target q = (1 - e) e_y + e / C as `cross_entropy`.
    """
    _check(outputs, targets, output)
    check_output("nll", output)
    loss = F.nll_loss(outputs, targets)
    if label_smoothing == 0:
        return loss
    return (1 - label_smoothing) * loss - label_smoothing * outputs.mean(dim=1).mean()


def quadratic(outputs: Tensor, targets: Tensor, *, output: str) -> Tensor:
    """Quadratic loss QL = 1/2 * mean of ||e_y - p||^2.

    Example: p = [0.3, 0.2, 0.4, 0.1], y = 2 gives 1/2 * (0.09 + 0.04 + 0.36 + 0.01) = 0.25.
    """
    _check(outputs, targets, output)
    residual = _residual(outputs, targets, output)  # (B, C)
    return 0.5 * residual.square().sum(dim=1).mean()


def ccql(outputs: Tensor, targets: Tensor, *, output: str, beta: float = 1.0) -> Tensor:
    """Correct-class quadratic loss: mean of [1/2 * ||e_y - p||^2 + 1/2 * beta * (1 - p_y)^2].

    The quadratic loss plus an extra penalty, weighted by beta >= 0, on the residual of
    the correct class; beta = 0 is the plain quadratic loss.
    """
    _check(outputs, targets, output)
    residual = _residual(outputs, targets, output)  # (B, C)
    correct = residual.gather(1, targets.unsqueeze(1)).squeeze(1)  # (B,) p_y - 1
    return 0.5 * (residual.square().sum(dim=1) + beta * correct.square()).mean()


def mse(outputs: Tensor, targets: Tensor, *, output: str) -> Tensor:
    """Mean squared error between p and e_y over all B*C elements: mean of (p - e_y)^2.

    Equal to 2 / C times the quadratic loss.
    """
    _check(outputs, targets, output)
    return _residual(outputs, targets, output).square().mean()


# Each of `mlplab.choices.LOSSES` as a function.
_FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "cross_entropy": cross_entropy,
    "nll": nll,
    "quadratic": quadratic,
    "ccql": ccql,
    "mse": mse,
}


@dataclass(frozen=True)
class NamedLoss:
    """A built-in loss, by name, bound to the model's output kind: ``loss(outputs, targets)`` is the batch mean.

    Keeps its name and settings readable, so the manual and scratch engines
    (`mlplab.engines.manual`, `mlplab.engines.scratch`) can compute the same loss's
    gradient themselves. Not to be confused with `mlplab.scratch.Loss`, the NumPy engine's
    loss base class.
    """

    name: str
    output: str = "logits"
    beta: float = 1.0  # ccql only
    label_smoothing: float = 0.0  # cross_entropy and nll only

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if self.name == "ccql":
            return ccql(outputs, targets, output=self.output, beta=self.beta)
        if self.name in SMOOTHED_LOSSES:
            return _FUNCTIONS[self.name](outputs, targets, output=self.output, label_smoothing=self.label_smoothing)
        return _FUNCTIONS[self.name](outputs, targets, output=self.output)


def build_loss(
    name: str | LossFunction, output: str = "logits", beta: float = 1.0, label_smoothing: float = 0.0
) -> LossFunction:
    """The loss ``(outputs (B, C), targets (B,) int64) -> mean over the batch`` called ``name``.

    Args:
        name: one of `mlplab.choices.LOSSES`, or a callable ``(outputs, targets) -> scalar``, which is
            returned unchanged (custom losses through the API).
        output: what the model outputs, ``"logits"`` or ``"log_softmax"`` (`MLP.output`).
        beta: weight of the correct-class penalty for ``ccql`` (>= 0); ignored otherwise.
        label_smoothing: e in [0, 1): ``cross_entropy`` and ``nll`` then aim at (1 - e) e_y + e / C
            rather than the one-hot e_y (Szegedy et al. 2016); the other losses refuse it.

    The values come from Python, so they are checked here, by the rules a `Config` checks its own
    with, before any training: unknown names, ``nll`` on logits, label smoothing for another loss.
    A built-in name gives a `NamedLoss`.
    """
    if callable(name):
        return name
    check_choice("loss", name, LOSSES)
    check_choice("model output", output, OUTPUTS)
    check_setting("beta", beta)
    check_setting("label_smoothing", label_smoothing)
    check_output(name, output)
    check_smoothing(name, label_smoothing)
    return _named_loss(name, output, beta, label_smoothing)


def _named_loss(name: str, output: str, beta: float, label_smoothing: float) -> NamedLoss:
    """The `NamedLoss` of settings already checked (by `build_loss`, or by the `Config` they come from)."""
    return NamedLoss(name, output, float(beta) if name == "ccql" else 1.0, float(label_smoothing))


def config_loss(config: Config, loss_fn: LossFunction | str | None = None) -> LossFunction:
    """The loss a config means: its name, the model's output, beta and label smoothing.

    The one place a `Config` becomes a loss: training, the sweep's members, `Run.evaluate` and
    ``mlplab eval`` all take it from here, so a run is always scored with the loss it trained on.
    ``loss_fn`` (a callable or a loss name) replaces the config's loss name; a name from Python
    is checked against the config's other settings by `build_loss`, the config's own is not.
    """
    model, train = config.model, config.train
    if loss_fn is not None:
        return build_loss(loss_fn, model.output, train.beta, train.label_smoothing)
    return _named_loss(train.loss, model.output, train.beta, train.label_smoothing)
