"""Figures made of 28x28 images: sample grids, predictions, confident mistakes, first-layer weights.

Each function takes plain arrays (images (N, 28, 28) or (N, 1, 28, 28), labels, class
names) and returns a matplotlib Figure; `mlplab.plots.run` reads them from a run
directory. Digits are drawn white on black, as ``imshow(cmap="gray")`` shows MNIST.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlplab.plots.backend import pyplot, short_name

MISTAKE = "#d62728"  # red: a wrong prediction
CORRECT = "#1a7f37"  # green: a right one
CELL = 1.25  # inches per image in a grid: room for a two-line caption at 9 pt
TITLE_CHARACTERS_PER_INCH = 10  # at 12 pt: a grid's title is wrapped to its width


def image_grid(
    images: np.ndarray,
    captions: Sequence[str],
    title: str,
    *,
    colors: Sequence[str] | None = None,
    columns: int | None = None,
    frame: Sequence[bool] | None = None,
    caption_lines: int = 1,
) -> Any:
    """Images in rows with a caption under each; ``frame[i]`` draws a red border around image i."""
    plt = pyplot()
    images = np.asarray(images).reshape(len(images), 28, 28) if len(images) else np.zeros((0, 28, 28))
    count = max(len(images), 1)
    columns = columns or min(count, 10)
    rows = math.ceil(count / columns)
    height = CELL + 0.18 * (caption_lines - 1)
    title = textwrap.fill(title, width=int(columns * CELL * TITLE_CHARACTERS_PER_INCH))  # never cut at the edges
    title_lines = title.count("\n") + 1
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * CELL, rows * height + 0.6 + 0.25 * (title_lines - 1)), squeeze=False
    )
    low, high = (float(images.min()), float(images.max())) if len(images) else (0.0, 1.0)
    for index, axis in _cells(axes, len(images)):
        axis.imshow(images[index], cmap="gray", vmin=low, vmax=high)
        axis.set_xlabel(captions[index], fontsize=9, color=colors[index] if colors else "black", labelpad=2)
        marked = frame is not None and frame[index]
        for spine in axis.spines.values():
            spine.set_color(MISTAKE if marked else "#999999")
            spine.set_linewidth(2.5 if marked else 0.5)
    if not len(images):
        axes.flat[0].text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=axes.flat[0].transAxes)
    figure.suptitle(title, fontsize=12)
    figure.tight_layout()
    return figure


def _cells(axes: Any, count: int) -> list[tuple[int, Any]]:
    """The first ``count`` cells of a grid of axes, without ticks; the cells after them are hidden."""
    used = []
    for index, axis in enumerate(axes.flat):
        axis.set_xticks([])
        axis.set_yticks([])
        if index < count:
            used.append((index, axis))
        else:
            axis.axis("off")
    return used


def sample_grid(images: np.ndarray, labels: np.ndarray, classes: Sequence[str], title: str) -> Any:
    """A grid of images, each captioned with its label."""
    return image_grid(images, [classes[int(label)] for label in labels], title)


def predictions_grid(
    images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, classes: Sequence[str], title: str
) -> Any:
    """Each image captioned "pred P / true T"; mistakes in red with a red frame."""
    wrong = [int(p) != int(t) for p, t in zip(predictions, labels, strict=True)]
    captions = [
        f"pred {short_name(classes[int(p)])}\ntrue {short_name(classes[int(t)])}"
        for p, t in zip(predictions, labels, strict=True)
    ]
    return image_grid(
        images, captions, title, colors=[MISTAKE if w else CORRECT for w in wrong], frame=wrong, caption_lines=2
    )


def confident_mistakes(
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    confidence: np.ndarray,
    classes: Sequence[str],
    title: str,
) -> Any:
    """Misclassified images captioned with the predicted class, its probability and the true class."""
    captions = [
        f"pred {short_name(classes[int(p)])} ({100 * c:.1f}%)\ntrue {short_name(classes[int(t)])}"
        for p, c, t in zip(predictions, confidence, labels, strict=True)
    ]
    return image_grid(images, captions, title, colors=[MISTAKE] * len(captions), caption_lines=2)


def weight_images(weights: np.ndarray, captions: Sequence[str], title: str, columns: int | None = None) -> Any:
    """Rows of a first-layer weight matrix (n, 784) drawn as 28x28 images on one colour scale centred on 0.

    Red is a positive weight (that pixel being bright raises the unit's input), blue a
    negative one, white zero; the shared colour bar gives the scale.
    """
    plt = pyplot()
    weights = np.asarray(weights).reshape(len(weights), 28, 28)
    columns = columns or min(len(weights), 8)
    rows = math.ceil(len(weights) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * CELL + 1.2, rows * CELL + 0.6), squeeze=False)
    limit = float(np.abs(weights).max()) or 1.0  # symmetric limits put 0 at the colour map's white centre
    image = None
    for index, axis in _cells(axes, len(weights)):
        image = axis.imshow(weights[index], cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_xlabel(captions[index], fontsize=9, labelpad=2)
    figure.suptitle(title, fontsize=12)
    figure.tight_layout(rect=(0, 0, 1 - 1.0 / figure.get_figwidth(), 1))
    if image is not None:
        bar_axis = figure.add_axes((1 - 0.85 / figure.get_figwidth(), 0.12, 0.18 / figure.get_figwidth(), 0.7))
        figure.colorbar(image, cax=bar_axis).set_label("weight (per normalised pixel)", fontsize=9)
    return figure
