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
    """Per checked array: the largest error |analytic - numeric| / max(atol, rtol * |numeric|) (ok when <= 1)."""

    errors: dict[str, float] = field(default_factory=dict)  # "input", "layers.0.W", ...
    max_relative: dict[str, float] = field(default_factory=dict)  # ||analytic - numeric|| / ||numeric||

    @property
    def ok(self) -> bool:
        return all(error <= 1.0 for error in self.errors.values())

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        lines = [f"{name}: relative error {self.max_relative[name]:.2e} ({'ok' if error <= 1 else 'FAILED'})"
                 for name, error in self.errors.items()]
        return "\n".join(lines)


def gradcheck(module: Layer | Sequential | Loss, x: np.ndarray, targets: np.ndarray | None = None, *,
              eps: float = 1e-6, atol: float = 1e-8, rtol: float = 1e-6, seed: int = 0) -> GradcheckResult:
    """Compare ``module``'s backward pass with central differences, for its input and every parameter entry.

    Args:
        module: a layer, a `Sequential` or a loss (then ``targets`` are its targets).
        x: the input batch, float64 (changed during the check and restored).
        eps: the finite-difference step.
        atol, rtol: an entry passes when |analytic - numeric| <= max(atol, rtol * |numeric|).
        seed: for the random projection R of a layer's output.
    """
    if x.dtype != np.float64:
        raise ValueError(f"gradcheck needs float64 inputs (float32 rounding swamps the differences); got {x.dtype}")
    x = np.ascontiguousarray(x)  # perturbed in place, entry by entry, through a flat view
    objective, checked = _objective(module, x, targets, seed)
    result = GradcheckResult()
    for name, value, grad in checked:
        numeric = _central_differences(objective, value, eps)
        scale = np.maximum(atol, rtol * np.abs(numeric))
        result.errors[name] = float(np.max(np.abs(grad - numeric) / scale)) if grad.size else 0.0
        result.max_relative[name] = float(np.linalg.norm(grad - numeric) / max(np.linalg.norm(numeric), 1e-300))
    return result


def _objective(module, x, targets, seed):
    """L as a function of the current arrays, and (name, array, analytic gradient) for x and every parameter."""
    if isinstance(module, Loss):
        def objective() -> float:
            return module.forward(x, targets)

        objective()
        return objective, [("input", x, module.backward().copy())]
    projection = np.random.default_rng(seed).standard_normal(module.forward(x).shape)  # R

    def objective() -> float:
        return float(np.sum(module.forward(x) * projection))

    objective()
    checked = [("input", x, module.backward(projection).reshape(x.shape).copy())]
    checked += [(name, parameter.value, parameter.grad.copy()) for name, parameter in _named_parameters(module)]
    return objective, checked


def _named_parameters(module):
    if isinstance(module, Sequential):
        for index, layer in enumerate(module.layers):
            for parameter in layer.parameters():
                yield f"layers.{index}.{parameter.name}", parameter
    else:
        for parameter in module.parameters():
            yield parameter.name, parameter


def _central_differences(objective, array: np.ndarray, eps: float) -> np.ndarray:
    """(L(a + eps e_i) - L(a - eps e_i)) / 2 eps for every entry i of ``array``, which is left unchanged."""
    if not array.flags.c_contiguous:
        raise ValueError("gradcheck perturbs arrays through a flat view; make them contiguous first")
    numeric = np.zeros(array.shape)
    flat, out = array.reshape(-1), numeric.reshape(-1)  # views: writing flat[i] changes array
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        plus = objective()
        flat[i] = saved - eps
        minus = objective()
        flat[i] = saved
        out[i] = (plus - minus) / (2 * eps)
    return numeric
