"""Finite-difference gradient checks for any scratch layer, network or loss.

The backward pass claims dL/dθ for every input and parameter entry θ. A central
difference measures the same number from the forward pass alone:

    dL/dθ ≈ (L(θ + ε) - L(θ - ε)) / 2ε        error O(ε²)

For a layer or network, L is a random projection of its output, L = sum(y * R), so the
gradient arriving from above is R and every output entry is tested at once. For a loss,
L is the loss. Run it in float64: float32's rounding swamps any ε.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlplab.scratch.layers import Layer
from mlplab.scratch.losses import Loss
from mlplab.scratch.network import Sequential


@dataclass
class GradcheckResult:
    """Per checked array ("input", "layers.0.weight", ...): how far the backward pass is from the differences."""

    errors: dict[str, float] = field(
        default_factory=dict
    )  # max |analytic - numeric| / max(atol, rtol |numeric|); ok <= 1
    relative: dict[str, float] = field(
        default_factory=dict
    )  # ||analytic - numeric|| / ||numeric|| over the checked entries
    entries: dict[str, int] = field(default_factory=dict)  # how many entries were checked

    @property
    def ok(self) -> bool:
        """Whether every checked entry is within tolerance."""
        return all(error <= 1.0 for error in self.errors.values())

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return "\n".join(
            f"{name}: relative error {self.relative[name]:.2e} over {self.entries[name]} entries "
            f"({'ok' if error <= 1 else 'FAILED'})"
            for name, error in self.errors.items()
        )


def gradcheck(
    module: Layer | Sequential | Loss,
    x: np.ndarray,
    targets: np.ndarray | None = None,
    *,
    loss: Loss | None = None,
    eps: float = 1e-6,
    atol: float = 1e-8,
    rtol: float = 1e-6,
    entries: int | None = None,
    seed: int = 0,
) -> GradcheckResult:
    """Compare ``module``'s backward pass with central differences, for its input and every parameter.

    Args:
        module: a layer, a `Sequential` or a loss (then ``targets`` are its targets).
        loss: with a layer or network, check L = loss(module(x), targets) instead of a random projection.
        x: the input batch, float64 (changed during the check and restored).
        eps: the finite-difference step.
        atol, rtol: an entry passes when |analytic - numeric| <= max(atol, rtol * |numeric|).
        entries: check at most this many entries of each array, drawn at random (each
            costs two forward passes); default: all of them.
        seed: for the random projection R of a layer's output and the sampled entries.
    """
    if x.dtype != np.float64:
        raise ValueError(f"gradcheck needs float64 inputs (float32 rounding swamps the differences); got {x.dtype}")
    x = np.ascontiguousarray(x)  # perturbed in place, entry by entry, through a flat view
    objective, checked = _objective(module, x, targets, loss, seed)
    rng = np.random.default_rng(seed)
    result = GradcheckResult()
    for name, value, grad in checked:
        index = (
            np.arange(value.size)
            if entries is None or entries >= value.size
            else np.sort(rng.choice(value.size, entries, replace=False))
        )
        numeric = _central_differences(objective, value, index, eps)
        analytic = grad.reshape(-1)[index]
        scale = np.maximum(atol, rtol * np.abs(numeric))
        result.errors[name] = float(np.max(np.abs(analytic - numeric) / scale)) if index.size else 0.0
        result.relative[name] = float(np.linalg.norm(analytic - numeric) / max(float(np.linalg.norm(numeric)), 1e-300))
        result.entries[name] = int(index.size)
    return result


def _objective(module, x, targets, loss, seed):
    """L as a function of the current arrays, and (name, array, analytic gradient) for x and every parameter."""
    if isinstance(module, Loss):

        def objective() -> float:
            return module.forward(x, targets)

        objective()
        return objective, [("input", x, module.backward().copy())]
    if loss is not None:

        def objective() -> float:
            return loss.forward(module.forward(x), targets)

        objective()
        grad_out = loss.backward()
    else:
        projection = np.random.default_rng(seed).standard_normal(module.forward(x).shape)  # R

        def objective() -> float:
            return float(np.sum(module.forward(x) * projection))

        objective()
        grad_out = projection
    checked = [("input", x, module.backward(grad_out).reshape(x.shape).copy())]
    named = (
        module.named_parameters()
        if isinstance(module, Sequential)
        else [(parameter.name, parameter) for parameter in module.parameters()]
    )
    checked += [(name, parameter.value, parameter.grad.copy()) for name, parameter in named]
    return objective, checked


def _central_differences(objective, array: np.ndarray, index: np.ndarray, eps: float) -> np.ndarray:
    """(L(a + eps e_i) - L(a - eps e_i)) / 2 eps for the flat entries ``index`` of ``array``, left unchanged."""
    if not array.flags.c_contiguous:
        raise ValueError("gradcheck perturbs arrays through a flat view; make them contiguous first")
    flat = array.reshape(-1)  # a view: writing flat[i] changes array
    numeric = np.zeros(len(index))
    for k, i in enumerate(index):
        saved = flat[i]
        flat[i] = saved + eps
        plus = objective()
        flat[i] = saved - eps
        minus = objective()
        flat[i] = saved
        numeric[k] = (plus - minus) / (2 * eps)
    return numeric
