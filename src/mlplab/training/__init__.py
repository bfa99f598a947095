"""Training: the loop and the callbacks that act on it.

Modules, in the order a run uses them:
    runner      a `Config` to objects (`prepare`) and to a trained run (`train`)
    loop        `fit` and `train_epoch`: any model, any batches, any loss and optimizer
    callbacks   `EarlyStopping`
    weights     after every step: `MaxNorm`, and `WeightAverage` (an EMA of the weights)
    progress    `ProgressBar`, the callback that shows training as it goes; `TrainingBar`, one bar over it all
    tracking    TensorBoard and Weights & Biases callbacks
    pretrained  `pretrained` (``mlplab.pretrained``): a preset's run, trained once on first use and kept
                in the user's cache, for ``mlplab predict`` and ``serve`` with no run given

What it builds on: `mlplab.metrics` (exact meters, `evaluate`), `mlplab.runs` (the `Callback`
interface and `FitState`, history, checkpoints, the run directory and its writer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab.lazy import lazy_names

# Names imported on first use: the CLI imports the callbacks module, and starts without torch.
_EXPORTS = {
    "Callback": "mlplab.runs.state",
    "FitState": "mlplab.runs.state",
    "EarlyStopping": "callbacks",
    "ProgressBar": "progress",
    "MaxNorm": "weights",
    "WeightAverage": "weights",
    "load_checkpoint": "mlplab.runs.checkpoint",
    "save_checkpoint": "mlplab.runs.checkpoint",
    "History": "mlplab.runs.history",
    "evaluate": "mlplab.metrics",
    "fit": "loop",
    "train_epoch": "loop",
    "AverageMeter": "mlplab.metrics",
    "accuracy": "mlplab.metrics",
    "confusion_matrix": "mlplab.metrics",
    "per_class_accuracy": "mlplab.metrics",
    "Setup": "runner",
    "prepare": "runner",
    "train": "runner",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mlplab.metrics import AverageMeter as AverageMeter
    from mlplab.metrics import accuracy as accuracy
    from mlplab.metrics import confusion_matrix as confusion_matrix
    from mlplab.metrics import evaluate as evaluate
    from mlplab.metrics import per_class_accuracy as per_class_accuracy
    from mlplab.runs.checkpoint import load_checkpoint as load_checkpoint
    from mlplab.runs.checkpoint import save_checkpoint as save_checkpoint
    from mlplab.runs.history import History as History
    from mlplab.runs.state import Callback as Callback
    from mlplab.runs.state import FitState as FitState
    from mlplab.training.callbacks import EarlyStopping as EarlyStopping
    from mlplab.training.loop import fit as fit
    from mlplab.training.loop import train_epoch as train_epoch
    from mlplab.training.progress import ProgressBar as ProgressBar
    from mlplab.training.runner import Setup as Setup
    from mlplab.training.runner import prepare as prepare
    from mlplab.training.runner import train as train
    from mlplab.training.weights import MaxNorm as MaxNorm
    from mlplab.training.weights import WeightAverage as WeightAverage


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
