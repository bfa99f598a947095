"""Figures of the 1986 symmetry experiment: the nets' weights, sweeps to solve, error curves, workarounds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlplab.plots.backend import pyplot

POSITIVE, NEGATIVE = "#c0392b", "#2e6db4"  # red and blue, as the weight figures elsewhere
SOLVED, UNSOLVED = "#2ca02c", "#d62728"
LAYER_Y = (0.0, 1.6, 3.0)  # heights of the inputs, the hidden units and the output (input spacing: 1)
# Where along its line (0: the input, 1: the hidden unit) each input weight is written: lines into
# the left hidden unit low, lines into the right one high. Each row then holds six labels
# (1 - t) input spacings apart (0.64 and 0.4) and the rows are 0.24 x 1.6 units apart, where
# one row of twelve (all at t = 0.38) packed the labels edge to edge in the middle.
# Between the inputs and the hidden units each line crosses up to five others, so a label may
# still sit on a crossing: its colour (its line's sign) and white box keep it legible there.
INPUT_LABEL_ROWS = (0.36, 0.6)


def networks(panels: Sequence[tuple[str, dict[str, np.ndarray]]]) -> Any:
    """Draw 6-2-1 networks side by side, each ``(title, {"W1": (2, 6), "b1": (2,), "W2": (2,), "b2": ()})``.

    Line width grows with a weight's size, red is positive and blue negative; every weight
    is written on its line and every bias inside its unit. The input weights are written in two
    rows (`INPUT_LABEL_ROWS`: lines into the left hidden unit low, into the right one high), so
    no two labels overlap; values of 100 or more lose their decimal to stay five characters.

    Example::

        >>> from mlplab.experiments.symmetry import PAPER
        >>> from mlplab.plots import save
        >>> weights = {name: getattr(PAPER, name)[0].numpy() for name in ("W1", "b1", "W2", "b2")}
        >>> save(networks([("The paper's Figure 1", weights)]), "symmetry_weights.png")
    """
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 5.2), squeeze=False)
    for axis, (title, weights) in zip(axes.flat, panels, strict=True):
        _draw_network(axis, {key: np.asarray(value, dtype=float) for key, value in weights.items()})
        axis.set_title(title, fontsize=11)
    axes.flat[0].plot([], [], color=POSITIVE, linewidth=3, label="positive weight")
    axes.flat[0].plot([], [], color=NEGATIVE, linewidth=3, label="negative weight (line width: size)")
    figure.legend(loc="lower center", ncol=2, fontsize=9, frameon=False)
    figure.suptitle("6-2-1 symmetry networks: weights on the lines, biases in the units", fontsize=12)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    return figure


def _draw_network(axis: Any, weights: dict[str, np.ndarray]) -> None:
    inputs = [(x, LAYER_Y[0]) for x in np.linspace(0, 5, 6)]
    hidden = [(1.25, LAYER_Y[1]), (3.75, LAYER_Y[1])]
    output = (2.5, LAYER_Y[2])
    largest = max(float(np.abs(weights["W1"]).max()), float(np.abs(weights["W2"]).max()), 1e-9)
    for j, (hx, hy) in enumerate(hidden):
        for i, (ix, iy) in enumerate(inputs):
            value = weights["W1"][j, i]
            _edge(axis, (ix, iy), (hx, hy), value, largest, label_at=INPUT_LABEL_ROWS[j])
        _edge(axis, (hx, hy), output, weights["W2"][j], largest, label_at=0.5)
    for i, (x, y) in enumerate(inputs):
        _unit(axis, x, y, f"in {i + 1}")
    for j, (x, y) in enumerate(hidden):
        _unit(axis, x, y, f"{weights['b1'][j]:+.1f}")
    _unit(axis, *output, f"{float(weights['b2']):+.1f}")
    axis.set_xlim(-0.6, 5.6)
    axis.set_ylim(-0.45, LAYER_Y[2] + 0.4)
    axis.set_aspect("equal")  # round units
    axis.axis("off")


def _edge(
    axis: Any, start: tuple[float, float], end: tuple[float, float], value: float, largest: float, label_at: float
) -> None:
    color = POSITIVE if value >= 0 else NEGATIVE
    axis.plot(
        [start[0], end[0]],
        [start[1], end[1]],
        color=color,
        linewidth=0.4 + 4.5 * abs(value) / largest,
        alpha=0.75,
        zorder=1,
    )
    x = start[0] + label_at * (end[0] - start[0])
    y = start[1] + label_at * (end[1] - start[1])
    text = f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"  # at most five characters below 10,000
    axis.text(
        x,
        y,
        text,
        fontsize=7.5,
        ha="center",
        va="center",
        color=color,
        zorder=3,
        bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
    )


def _unit(axis: Any, x: float, y: float, text: str) -> None:
    axis.add_patch(pyplot().Circle((x, y), 0.3, facecolor="#f4f4f4", edgecolor="#333333", zorder=2))
    axis.text(x, y, text, ha="center", va="center", fontsize=8, zorder=4)


def sweeps_histogram(
    first_solved: Sequence[int], first_strict: Sequence[int], seeds: int, paper_budget: int, long_budget: int
) -> Any:
    """How many seeds first solved the task after how many sweeps (log-spaced bins), with both budgets marked."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 4.5))
    values = [v for v in (*first_solved, *first_strict) if v > 0]
    low = max(1, min(values)) if values else 1
    bins = np.geomspace(low, long_budget, 30)
    axis.hist(
        [first_solved, first_strict],
        bins=bins,
        color=[SOLVED, "#8c564b"],
        alpha=0.8,
        label=["every output on the right side of 0.5", "every output within 0.2 of its target"],
    )
    axis.set_xscale("log")
    for budget, text in ((paper_budget, "the paper's"), (long_budget, "the long")):
        axis.axvline(budget, color="black", linestyle="--", linewidth=1)
        axis.text(
            budget,
            axis.get_ylim()[1] * 0.95,
            f" {text} {budget:,} sweeps",
            fontsize=9,
            va="top",
            ha="left" if budget == paper_budget else "right",
        )
    axis.set_xlabel("sweeps until solved (log scale; one sweep = one weight change from all 64 cases)")
    axis.set_ylabel("seeds")
    unsolved = seeds - len(first_solved)
    axis.set_title(f"Sweeps to solve, {seeds} seeds ({unsolved} not solved within {long_budget:,} sweeps)", fontsize=11)
    axis.legend(fontsize=9, loc="upper left")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def error_curves(errors: np.ndarray, solved: np.ndarray, paper_budget: int) -> Any:
    """E against the sweep for every seed (green: solved in the end, red: not), with the median of each group."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 4.8))
    sweeps = np.arange(len(errors))
    for mask, color, name in ((solved, SOLVED, "solved"), (~solved, UNSOLVED, "not solved")):
        if mask.any():
            axis.plot(sweeps, errors[:, mask], color=color, alpha=0.12, linewidth=0.6)
            axis.plot(
                sweeps,
                np.median(errors[:, mask], axis=1),
                color=color,
                linewidth=2.2,
                label=f"{name}: {int(mask.sum())} seeds (median in bold)",
            )
    axis.axhline(4.0, color="gray", linestyle=":", linewidth=1.2, label="E = 4: every symmetric case wrong")
    axis.axvline(paper_budget, color="black", linestyle="--", linewidth=1, label=f"the paper's {paper_budget:,} sweeps")
    axis.set_xscale("symlog", linthresh=100)
    axis.set_xlim(0, len(errors) - 1)
    axis.set_yscale("log")
    axis.set_xlabel("sweep (linear to 100, then log scale)")
    axis.set_ylabel("E = 1/2 sum over the 64 cases of (y - d)^2")
    axis.set_title("Error of every seed during training", fontsize=11)
    axis.legend(fontsize=9, loc="lower left")
    axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    return figure


def workaround_bars(
    names: Sequence[str], paper_budget: Sequence[float], long_budget: Sequence[float], budgets: tuple[int, int]
) -> Any:
    """The fraction of seeds solved per configuration, within the paper's budget and the long one."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(10, 4.8))
    positions = np.arange(len(names))
    for offset, values, color, budget in (
        (-0.2, paper_budget, "#1f77b4", budgets[0]),
        (0.2, long_budget, "#ff7f0e", budgets[1]),
    ):
        bars = axis.bar(
            positions + offset, [100 * v for v in values], width=0.4, color=color, label=f"within {budget:,} sweeps"
        )
        axis.bar_label(bars, [f"{100 * v:.0f}" for v in values], fontsize=8, padding=2)
    axis.set_xticks(positions, names, rotation=15, ha="right", fontsize=9)
    axis.set_ylabel("seeds solved (%)")
    axis.set_ylim(0, 125)  # room above the bars for the legend
    axis.set_xlabel("configuration")
    axis.set_title(
        "Which workarounds help: seeds solving the task (all 64 outputs on the right side of 0.5)", fontsize=11
    )
    axis.legend(fontsize=9, loc="upper center", ncol=2)
    axis.set_yticks(range(0, 101, 20))
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure
