"""The linear-regression experiment's figure: SGD's loss curve against least squares, and the coefficients found."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlplab.plots.backend import pyplot
from mlplab.plots.charts import TRAIN, VAL

# A `mlplab.experiments.linreg.LinregResult`: the experiment draws with this module, not the other way round.
LinregResult = Any

TRUE = "#7f7f7f"


def loss_curve(result: LinregResult) -> Any:
    """SGD's whole-data MSE per epoch on a log scale with the least-squares MSE dashed (left); every coefficient
    (right)."""
    plt = pyplot()
    figure, (curve_axis, coefficient_axis) = plt.subplots(1, 2, figsize=(12, 4.6), width_ratios=(3, 2))
    _draw_curve(curve_axis, result)
    _draw_coefficients(coefficient_axis, result)
    config = result.config
    figure.suptitle(
        f"Linear regression by mini-batch SGD vs least squares: N = {config.samples} samples, "
        f"P = {config.features} features, noise std {config.noise:g}, batch {config.batch_size}, "
        f"lr {config.lr:g}, seed {config.seed}",
        fontsize=11,
    )
    figure.tight_layout()
    return figure


def _draw_curve(axis: Any, result: LinregResult) -> None:
    epochs = np.arange(len(result.sgd_mse))  # 0 is before the first step
    final = result.sgd_mse[-1]
    axis.plot(
        epochs,
        result.sgd_mse,
        color=TRAIN,
        linewidth=1.8,
        label=f"SGD: MSE over all samples after each epoch (last {final:.6f})",
    )
    axis.axhline(
        result.least_squares_mse,
        color=VAL,
        linestyle="--",
        linewidth=1.5,
        label=f"least squares (closed form, the optimum): {result.least_squares_mse:.6f}",
    )
    # The two lines above merge once SGD converges; their gap, on the same log axis, shows how
    # fast it closes (a straight line: geometric convergence) and where SGD's noise stops it.
    gap = np.asarray(result.sgd_mse) - result.least_squares_mse
    shown = gap > 0  # rounding can put SGD a hair under the optimum; a log axis cannot draw that
    axis.plot(
        epochs[shown],
        gap[shown],
        color=TRAIN,
        linestyle=":",
        linewidth=1.5,
        label=f"gap: SGD minus least squares (last {final - result.least_squares_mse:.2g}, "
        f"{100 * result.excess:+.2g}%)",
    )
    axis.set_yscale("log")
    axis.set_xlim(0, epochs[-1])
    axis.set_xlabel("epoch (0: before training)")
    axis.set_ylabel("mean squared error (log scale)")
    axis.set_title("Loss per epoch: SGD against the optimum", fontsize=10)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=9)


def _draw_coefficients(axis: Any, result: LinregResult) -> None:
    names = [f"w{i}" for i in range(len(result.true_weights))] + ["b"]
    columns = (
        ("true (generated the data)", TRUE, [*result.true_weights, result.true_bias]),
        ("least squares", VAL, [*result.least_squares_weights, result.least_squares_bias]),
        ("SGD", TRAIN, [*result.sgd_weights, result.sgd_bias]),
    )
    true_values = np.asarray(columns[0][2])
    positions = np.arange(len(names))
    width = 0.27
    for index, (label, color, values) in enumerate(columns):
        if index:  # how far each estimate lands from the truth, in units of y per unit of x
            label += f" (largest error {np.max(np.abs(np.asarray(values) - true_values)):.2g})"
        axis.bar(positions + (index - 1) * width, values, width, color=color, label=label)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_xticks(
        positions, names, fontsize=10 if len(names) <= 8 else 8, rotation=0 if len(names) <= 12 else 90
    )  # w10, w11, ... would run together
    axis.set_xlabel("coefficient (w: weights, b: bias)")
    axis.set_ylabel("value (units of y per unit of x; b: units of y)")
    axis.set_title("Coefficients: true and estimated", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
