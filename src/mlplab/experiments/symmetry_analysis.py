"""What the symmetry networks learned: the paper's weight structure, and what the failures converge to.

The paper's solution (Figure 1): in each hidden unit, mirror-image inputs (1 and 6, 2 and
5, 3 and 4) have weights equal in size and opposite in sign, so every symmetric input
gives the unit net input 0 (just its bias); and the three pairs' sizes stand in the
ratio 1:2:4, so every asymmetric input gives a non-zero sum (the sizes act like binary
place values). `structure` measures both on any weights.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mlplab.experiments.symmetry import Training, cases

MIRROR_PAIRS = ((0, 5), (1, 4), (2, 3))
ANTISYMMETRY_TOLERANCE = 0.1  # |w_i + w_mirror| at most 10% of the pair's mean size
RATIO_TOLERANCE = 0.2  # each measured ratio within 20% of 2 and 4


@dataclass
class Structure:
    """The paper's structure in each network (S networks, H = 2 hidden units)."""

    antisymmetry: Tensor  # (S, H, 3): |w_i + w_mirror| / mean(|w_i|, |w_mirror|) per pair; 0 is perfect
    ratios: Tensor  # (S, H, 2): the pair sizes, sorted, divided by the smallest: (2, 4) is the paper's
    matches: Tensor  # (S,) bool: both hidden units antisymmetric within tolerance and ratios near 1:2:4


def structure(W1: Tensor) -> Structure:
    """Measure mirror antisymmetry and the 1:2:4 ratio in first-layer weights W1 (S, H, 6)."""
    left = W1[..., [i for i, _ in MIRROR_PAIRS]]  # (S, H, 3)
    right = W1[..., [j for _, j in MIRROR_PAIRS]]
    size = (left.abs() + right.abs()) / 2
    antisymmetry = (left + right).abs() / size.clamp_min(1e-12)
    ordered = size.sort(dim=-1).values
    ratios = ordered[..., 1:] / ordered[..., :1].clamp_min(1e-12)
    target = torch.tensor([2.0, 4.0], dtype=ratios.dtype)
    ratio_ok = ((ratios / target - 1).abs() <= RATIO_TOLERANCE).all(dim=-1)
    unit_ok = (antisymmetry <= ANTISYMMETRY_TOLERANCE).all(dim=-1) & ratio_ok
    return Structure(antisymmetry, ratios, unit_ok.all(dim=-1))


def failure_kind(outputs: Tensor) -> str:
    """What an unsolved network does, in words, from its 64 outputs (on the right side of 0.5 or not)."""
    _, d = cases(outputs.dtype)
    wrong = (outputs - d).abs() >= 0.5
    wrong_symmetric, wrong_other = int(wrong[d == 1].sum()), int(wrong[d == 0].sum())
    if wrong_symmetric == 8 and wrong_other == 0:
        return "answers 'not symmetric' for every input (the 8 symmetric ones wrong)"
    return f"{wrong_symmetric} of 8 symmetric and {wrong_other} of 56 asymmetric inputs wrong"


def summarize(training: Training) -> dict[str, Any]:
    """The numbers the report gives for one configuration (builtins only)."""
    config = training.config
    solved_at, strict_at = training.solved_at, training.strict_at
    count = len(solved_at)
    within = {"paper_budget": config.sweeps, "long_budget": config.long_sweeps}
    fractions = {
        name: {"solved": _fraction(solved_at, budget), "strict": _fraction(strict_at, budget)}
        for name, budget in within.items()
    }
    solved_ever = (solved_at >= 0).nonzero().squeeze(1)
    found = structure(training.weights.W1[solved_ever])
    unsolved = (solved_at < 0).nonzero().squeeze(1)
    final_errors = training.errors[-1]
    return {
        "config": dict(vars(config)),
        "seeds": count,
        "seconds": training.seconds,
        "within": {name: {"sweeps": within[name], **fractions[name]} for name in within},
        "sweeps_to_solve": sorted(int(s) for s in solved_at[solved_at >= 0]),
        "sweeps_to_solve_strict": sorted(int(s) for s in strict_at[strict_at >= 0]),
        "structure": {
            "checked": len(solved_ever),
            "matching": int(found.matches.sum()),
            "fraction": float(found.matches.double().mean()) if len(solved_ever) else None,
            "patterns": _patterns(found.ratios.flatten(0, 1)) if len(solved_ever) else {},
            "median_ratios": [float(r) for r in found.ratios.flatten(0, 1).median(dim=0).values]
            if len(solved_ever)
            else None,
            "ratio_quartiles": _quartiles(found.ratios.flatten(0, 1)) if len(solved_ever) else None,
        },
        "unsolved": {
            "count": len(unsolved),
            "kinds": dict(Counter(failure_kind(training.outputs[i]) for i in unsolved)),
            "final_error": sorted(round(float(final_errors[i]), 4) for i in unsolved),
            **_trap(training, unsolved),
        },
        "solved_final_error_median": float(final_errors[solved_ever].median()) if len(solved_ever) else None,
    }


def _trap(training: Training, unsolved: Tensor) -> dict[str, float | None]:
    """Medians over the unsolved seeds of what describes the trap: output bias, largest output, input weights."""
    if len(unsolved) == 0:
        return {"output_bias_median": None, "largest_output_median": None, "largest_input_weight_median": None}
    weights = training.weights
    return {
        "output_bias_median": float(weights.b2[unsolved].median()),
        "largest_output_median": float(training.outputs[unsolved].max(dim=1).values.median()),
        "largest_input_weight_median": float(weights.W1[unsolved].abs().amax(dim=(1, 2)).median()),
    }


def _fraction(first: Tensor, budget: int) -> float:
    return float(((first >= 0) & (first <= budget)).double().mean())


def _patterns(ratios: Tensor) -> dict[str, int]:
    """How many hidden units have each ratio of pair sizes, rounded to halves: {"1:2:4": 120, "1:1.5:2": 50}."""
    rounded = (ratios * 2).round() / 2
    return dict(Counter(f"1:{a:g}:{b:g}" for a, b in rounded.tolist()).most_common())


def _quartiles(ratios: Tensor) -> list[list[float]]:
    """[[q1, q3] of the middle/smallest ratio, [q1, q3] of the largest/smallest ratio]."""
    q = torch.quantile(ratios.double(), torch.tensor([0.25, 0.75], dtype=torch.float64), dim=0)  # (2, 2)
    return [[float(q[0, k]), float(q[1, k])] for k in range(ratios.shape[1])]
