"""Charts of a run's numbers: training curves, per-batch loss, confusion matrix, per-class accuracy.

Each function takes plain data (history records, lists, the confusion matrix) and
returns a matplotlib Figure; `mlplab.plots.run` reads them from a run directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlplab.plots.backend import pyplot, short_name

TRAIN, VAL, BEST = "#1f77b4", "#ff7f0e", "#2ca02c"


def training_curves(
    records: Sequence[dict[str, Any]],
    best_epoch: int | None = None,
    loss_name: str = "loss",
    best_by: str = "validation accuracy",
) -> Any:
    """Loss (left) and accuracy (right) per epoch, train and validation, the best epoch (by ``best_by``) marked."""
    plt = pyplot()
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    epochs = [r["epoch"] for r in records]
    for axis, key, scale in ((loss_axis, "loss", 1.0), (accuracy_axis, "accuracy", 100.0)):
        for split, color in (("train", TRAIN), ("val", VAL)):
            values = [r[f"{split}_{key}"] for r in records if r.get(f"{split}_{key}") is not None]
            if len(values) == len(records):  # a split some epoch lacks (no validation data) is not drawn
                axis.plot(
                    epochs,
                    [scale * v for v in values],
                    marker="o",
                    color=color,
                    label="training (mean over the epoch)" if split == "train" else "validation (end of epoch)",
                )
        if best_epoch is not None:
            axis.axvline(
                best_epoch, color=BEST, linestyle="--", linewidth=1.2, label=f"best epoch: {best_epoch} (by {best_by})"
            )
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=9)
        if len(epochs) < 15:
            axis.set_xticks(epochs)
    loss_axis.set_ylabel(f"{loss_name} (mean per image)")
    loss_axis.set_title("Loss")
    accuracy_axis.set_ylabel("accuracy (%)")
    accuracy_axis.set_title("Accuracy")
    has_validation = any(r.get("val_loss") is not None for r in records)
    figure.suptitle(
        "Training curves: a validation curve that turns while training keeps improving is overfitting"
        if has_validation
        else "Training curves (this run has no validation split)",
        fontsize=11,
    )
    figure.tight_layout()
    return figure


def batch_loss_curve(losses: Sequence[float], steps_per_epoch: int | None = None, loss_name: str = "loss") -> Any:
    """Every training batch's loss, a moving average over it, and the epoch boundaries."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(10, 4.2))
    steps = np.arange(1, len(losses) + 1)
    axis.plot(steps, losses, color=TRAIN, alpha=0.35, linewidth=0.7, label="batch loss")
    window = max(1, min(len(losses) // 20, 100))
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        axis.plot(steps[window - 1 :], smooth, color=TRAIN, linewidth=1.8, label=f"mean of the last {window} batches")
    if steps_per_epoch:
        for boundary in range(steps_per_epoch, len(losses), steps_per_epoch):
            axis.axvline(boundary + 0.5, color="gray", linestyle=":", linewidth=1)
        axis.plot([], [], color="gray", linestyle=":", label="end of an epoch")
    axis.set_xlabel("optimizer step (one batch each)")
    axis.set_ylabel(f"{loss_name} (batch mean)")
    axis.set_yscale("log")
    axis.set_title("Loss of every training batch")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=9)
    figure.tight_layout()
    return figure


def confusion_heatmap(confusion: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> Any:
    """The confusion matrix as a heat map with the count in every cell (rows: true class)."""
    plt = pyplot()
    counts = np.asarray(confusion)
    figure, axis = plt.subplots(figsize=(7.5, 6.5))
    image = axis.imshow(counts, cmap="Blues")
    names = [short_name(name) for name in classes]
    axis.set_xticks(
        range(len(names)),
        names,
        rotation=45 if max(map(len, names)) > 2 else 0,
        ha="right" if max(map(len, names)) > 2 else "center",
    )
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    threshold = counts.max() / 2
    for (row, column), count in np.ndenumerate(counts):
        if count:
            axis.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if count > threshold else "black",
            )
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04).set_label("images")
    axis.set_title(title, fontsize=11)
    figure.tight_layout()
    return figure


def per_class_bars(
    accuracies: Sequence[float], classes: Sequence[str], title: str, overall: float | None = None
) -> Any:
    """Each class's accuracy as a bar with its value, and the overall accuracy as a line."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 4.5))
    values = [100 * a for a in accuracies]
    names = [short_name(name) for name in classes]
    bars = axis.bar(names, values, color=TRAIN)
    axis.bar_label(bars, [f"{v:.1f}" for v in values], fontsize=8, padding=2)
    if overall is not None:
        axis.axhline(100 * overall, color=VAL, linestyle="--", label=f"all classes: {100 * overall:.2f}%")
        axis.legend(fontsize=9, loc="lower right")
    low = min(values + [100 * overall] if overall is not None else values)
    axis.set_ylim(max(0.0, low - 10), 100.5)
    axis.set_xlabel("true class")
    axis.set_ylabel("accuracy (% of the class's images)")
    axis.set_title(title, fontsize=11)
    if max(map(len, names)) > 2:
        axis.tick_params(axis="x", labelrotation=30)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure
