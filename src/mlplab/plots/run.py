"""Every figure of a run, drawn from its directory through `mlplab.Run`.

Plots never see live training state. The run's history and test metrics come from its
record (last.pt); the figures of the model itself (first-layer weights, predictions,
mistakes) use the run's **best** checkpoint, as every reader does (see `mlplab.runs.reader`): the
model its test metrics describe. Predictions are made on the test split, loaded as the
run's config says (``data_dir`` overrides where the files are).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlplab.errors import MlplabError
from mlplab.plots import charts, images
from mlplab.plots.backend import save
from mlplab.runs.history import judged_by
from mlplab.runs.reader import Run

FIGURES = ("curves", "batch_loss", "confusion", "per_class", "weights", "predictions", "mistakes")
WEIGHT_UNITS = 16  # hidden units drawn from the first layer of an MLP
PREDICTIONS = 30  # test images in the predictions grid
MISTAKES = 20  # most confident mistakes shown


@dataclass
class RunFigures:
    """What `plot_run` wrote, and what it could not draw and why."""

    written: dict[str, list[Path]] = field(default_factory=dict)  # figure name -> its files (.png, .svg)
    skipped: dict[str, str] = field(default_factory=dict)  # figure name -> reason


def plot_run(
    run_dir: str | Path,
    formats: tuple[str, ...] = ("png",),
    data_dir: str | None = None,
    out_dir: str | Path | None = None,
    weight_units: int = WEIGHT_UNITS,
) -> RunFigures:
    """Write every figure of the run in ``run_dir`` into ``out_dir`` (default ``RUN_DIR/figures``).

    Args:
        run_dir: a directory written by ``mlplab train``.
        formats: file formats, ``png`` and/or ``svg``.
        data_dir: where the dataset's files are, if not where the run found them.
        out_dir: where the figures go.
        weight_units: how many of an MLP's first hidden units to draw the weights of.
    """
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "figures"
    return draw_run(read_run(run_dir), out, formats, data_dir, weight_units)


def draw_run(
    run: Run,
    out: Path,
    formats: tuple[str, ...] = ("png",),
    data_dir: str | None = None,
    weight_units: int = WEIGHT_UNITS,
) -> RunFigures:
    """`plot_run` for a run already read by `read_run`: every figure into the folder ``out``."""
    result = RunFigures()
    if weight_units < 1:
        raise MlplabError(f"the number of hidden units to draw must be at least 1; got {weight_units}")
    for name, draw in figure_drawers(run, data_dir, weight_units).items():
        try:
            figure = draw()
        except SkipFigure as reason:
            result.skipped[name] = str(reason)
            continue
        result.written[name] = save(figure, *(out / f"{name}.{kind}" for kind in formats))
    return result


class SkipFigure(Exception):
    """A figure the run has no data for (e.g. no per-batch losses without --log-batches)."""


def read_run(run_dir: str | Path) -> Run:
    """The finished run in ``run_dir``, opened (`mlplab.Run`); a one-line error if it is not finished."""
    run = Run(run_dir)
    run.checkpoint_path("last")  # a run with no saved epoch is told how to start again
    finished_metrics(run)
    return run


def finished_metrics(run: Run) -> dict[str, Any]:
    """The test metrics of ``run`` (`mlplab.Run.metrics`); a one-line error if it is not finished."""
    metrics = run.metrics
    if metrics is None:
        raise MlplabError(
            f"{run.path} is not a finished run ({run.epochs} epochs saved, no test metrics yet); "
            f"finish it with `mlplab train --resume {run.path}`"
        )
    return metrics


def figure_drawers(run: Run, data_dir: str | None = None, weight_units: int = WEIGHT_UNITS) -> dict[str, Any]:
    """Each figure's drawing function (no arguments, returns a Figure), in `FIGURES` order.

    A function raises `SkipFigure` when the run lacks what it needs; the test split is
    loaded and evaluated once, by the first figure that needs it.
    """
    config, history, metrics = run.config, run.history, finished_metrics(run)
    classes = run.checkpoint()["model_info"]["classes"]
    loss_name = config.train.loss if config else "loss"  # no config: a user-defined model (see mlplab.runs.reader)
    evaluation: dict[str, Any] = {}

    def predictions() -> dict[str, Any]:
        if not evaluation:
            evaluation.update(_evaluate_test_split(run, data_dir))
        return evaluation

    def curves() -> Any:
        best = metrics.get("best") or {}
        return charts.training_curves(history.epochs, best.get("epoch"), loss_name, judged_by(best))

    def batch_loss() -> Any:
        if not history.batch_losses:
            raise SkipFigure("the run logged no per-batch losses: train with --log-batches")
        steps_per_epoch = history.epochs[0]["step"] if history.epochs else None
        return charts.batch_loss_curve(history.batch_losses, steps_per_epoch, loss_name)

    def confusion() -> Any:
        accuracy = 100 * metrics["test_accuracy"]
        return charts.confusion_heatmap(
            metrics["confusion"],
            classes,
            f"Confusion matrix, test split ({metrics['test_count']} images, {accuracy:.2f}% on the diagonal)",
        )

    def per_class() -> Any:
        return charts.per_class_bars(
            list(metrics["per_class_accuracy"].values()),
            classes,
            "Test accuracy per class",
            overall=metrics["test_accuracy"],
        )

    def weights() -> Any:
        if config is None:
            raise SkipFigure(_USER_MODEL)
        weight = run.checkpoint()["model"]["layers.0.weight"].float().numpy()  # (n_1, 784), the best epoch's
        if weight.shape[1] != 784:
            raise SkipFigure(f"first-layer weights have {weight.shape[1]} inputs, not 28x28 = 784")
        if len(config.model.hidden) == 0:  # logistic regression: one template per class
            return images.weight_images(
                weight,
                classes,
                "Weights of each class (logistic regression): red pixels raise its score, blue lower it",
                columns=5,
            )
        count = min(weight_units, len(weight))
        return images.weight_images(
            weight[:count],
            [f"unit {i}" for i in range(count)],
            f"First-layer weights of hidden units 0-{count - 1} (of {len(weight)}): what each unit looks for",
        )

    def predictions_grid() -> Any:
        found = predictions()
        shown = slice(0, PREDICTIONS)
        wrong = int((found["predicted"][shown] != found["labels"][shown]).sum())
        return images.predictions_grid(
            found["images"][shown],
            found["labels"][shown],
            found["predicted"][shown],
            classes,
            f"Predictions on the first {PREDICTIONS} test images ({wrong} wrong, in red)",
        )

    def mistakes() -> Any:
        found = predictions()
        wrong = np.flatnonzero(found["predicted"] != found["labels"])
        order = wrong[np.argsort(-found["confidence"][wrong], kind="stable")][:MISTAKES]
        return images.confident_mistakes(
            found["images"][order],
            found["labels"][order],
            found["predicted"][order],
            found["confidence"][order],
            classes,
            f"The {len(order)} most confident mistakes of {len(wrong)} (predicted class and its probability)",
        )

    return {
        "curves": curves,
        "batch_loss": batch_loss,
        "confusion": confusion,
        "per_class": per_class,
        "weights": weights,
        "predictions": predictions_grid,
        "mistakes": mistakes,
    }


# Why a user-defined model's run has no model figures: its config does not describe the network.
_USER_MODEL = "a user-defined model: its run records no dataset or MLP to rebuild it from"


@torch.no_grad()
def _evaluate_test_split(run: Run, data_dir: str | None) -> dict[str, np.ndarray]:
    """The best model's predicted class and its probability for every test image."""
    from mlplab.data import load_data

    config = run.config
    if config is None:
        raise SkipFigure(_USER_MODEL)
    data_config = replace(config.data, data_dir=data_dir) if data_dir else config.data
    try:
        data = load_data(data_config, seed=config.train.seed)
    except MlplabError as error:
        raise SkipFigure(f"the test images could not be loaded ({error}); pass --data-dir") from None
    model = run.model()
    outputs = torch.cat([model(batch) for batch in data.test.images.split(1000)])
    probabilities = outputs.exp() if model.output == "log_softmax" else outputs.softmax(dim=1)
    confidence, predicted = probabilities.max(dim=1)
    return {
        "images": data.test.images.numpy(),
        "labels": data.test.labels.numpy(),
        "predicted": predicted.numpy(),
        "confidence": confidence.numpy(),
    }
