"""Experiment trackers: training callbacks that mirror a run into TensorBoard or Weights & Biases.

Both are optional extras, imported when a tracker is built (at the start of `fit`, before
any data loads), so ``import mlplab`` never needs them and a missing one fails at once.
Trackers are the one place allowed to keep live training state (the model, for weight
histograms); everything else they log is the plain per-epoch record and the final metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplab.config import Config, to_dict
from mlplab.errors import MlplabError, one_line
from mlplab.runs.state import Callback, FitState


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
    """The scalars logged per epoch: loss and accuracy (train, and val when there is a split) and lr."""
    scalars = {"loss/train": record["train_loss"], "accuracy/train": record["train_accuracy"]}
    if record["val_loss"] is not None:
        scalars.update({"loss/val": record["val_loss"], "accuracy/val": record["val_accuracy"]})
    scalars["lr"] = record["lr"]
    return scalars


def final_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalars logged once at the end: test loss, accuracy and per-class accuracy."""
    scalars = {"test/loss": metrics["test_loss"], "test/accuracy": metrics["test_accuracy"]}
    scalars.update({f"test_per_class/{name}": value for name, value in metrics["per_class_accuracy"].items()})
    return scalars


def _missing_extra(flag: str, extra: str) -> MlplabError:
    return MlplabError(f'--{flag} needs the {extra} package: pip install "mlplab[{extra}]"')


class TensorBoardLogger(Callback):
    """Writes per-epoch scalars, weight and bias histograms, and test metrics into RUN_DIR/tensorboard."""

    def __init__(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing_extra("tensorboard", "tensorboard") from None
        self._writer_class = SummaryWriter
        self.writer: Any = None
        self.model: Any = None
        self.epochs = 0

    def on_fit_start(self, state: FitState) -> None:
        self.writer = self._writer_class(str(_run_dir(state, "--tensorboard") / "tensorboard"))
        self.model = state.model

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        epoch = self.epochs = record["epoch"]  # global step = epoch, so resumed runs line up
        for tag, value in epoch_scalars(record).items():
            self.writer.add_scalar(tag, value, epoch)
        for name, parameter in self.model.named_parameters():  # layers.0.weight, layers.0.bias, ...
            self.writer.add_histogram(f"weights/{name}", parameter.detach().cpu(), epoch)

    def on_fit_end(self, state: FitState) -> None:
        if state.metrics is not None:
            for tag, value in final_scalars(state.metrics).items():
                self.writer.add_scalar(tag, value, state.metrics["epochs"])
        self.close()

    def close(self) -> None:
        """Flush and close the event file; safe to call twice or before the fit started."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class WandbLogger(Callback):
    """Logs per-epoch scalars to a Weights & Biases run and the test metrics to its summary.

    The mode comes from the environment: online after ``wandb login``, or ``WANDB_MODE=offline``
    to write RUN_DIR/wandb/offline-run-* for a later ``wandb sync``.
    """

    def __init__(self, project: str, config: Config | None = None) -> None:
        try:
            import wandb
        except ImportError:
            raise _missing_extra("wandb", "wandb") from None
        self._wandb = wandb
        self.project = project
        self.config = config
        self.run: Any = None

    def on_fit_start(self, state: FitState) -> None:
        run_dir = _run_dir(state, "--wandb")
        try:
            self.run = self._wandb.init(
                project=self.project,
                dir=str(run_dir),
                name=run_dir.name,
                config=to_dict(self.config) if self.config is not None else None,
                # fit may be called several times in one process (notebooks, tests): one wandb run per fit.
                reinit="finish_previous",
            )
        except self._wandb.errors.Error as error:
            # Usually no API key on a machine without a terminal: a hint instead of wandb's traceback.
            reason = one_line(error, limit=None)
            raise MlplabError(
                f"--wandb could not start a run ({reason}); to log without an account or network, "
                "set WANDB_MODE=offline and `wandb sync` the run later"
            ) from error

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        self.run.log(epoch_scalars(record), step=record["epoch"])

    def on_fit_end(self, state: FitState) -> None:
        if state.metrics is not None:
            self.run.summary.update(final_scalars(state.metrics))
        self.run.finish()
        self.run = None

    def close(self) -> None:
        """Finish the run if training stopped early, marking it failed."""
        if self.run is not None:
            self.run.finish(exit_code=1)
            self.run = None


def _run_dir(state: FitState, flag: str) -> Path:
    """The run directory trackers write into: fit must have one."""
    if state.run_dir is None:
        raise MlplabError(f"{flag} logs into the run directory: give fit a run_dir")
    return state.run_dir


def trackers(config: Config) -> list[TensorBoardLogger | WandbLogger]:
    """The trackers ``config`` asks for (--tensorboard, --wandb); a missing extra fails here."""
    chosen: list[TensorBoardLogger | WandbLogger] = []
    if config.train.tensorboard:
        chosen.append(TensorBoardLogger())
    if config.train.wandb:
        chosen.append(WandbLogger(config.train.wandb_project, config))
    return chosen
