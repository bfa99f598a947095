"""Training and evaluation: the loop, callbacks, exact meters, history, checkpoints and run directories.

Modules, in the order a run uses them:
    runner      a `Config` to objects (`prepare`) and to a trained run (`train`)
    loop        `fit`, `train_epoch`, `evaluate`: any model, any batches, any loss and optimizer
    callbacks   `Callback`, the interface fit calls, the `FitState` callbacks see, `EarlyStopping`
    weights     after every step: `MaxNorm`, and `WeightAverage` (an EMA of the weights)
    progress    `ProgressBar`, the callback that shows training as it goes
    writer      `RunWriter`, the callback that writes a run directory and resumes it; `write_trained_run`
    rundir      the run directory's files, lock and crash-consistency protocol
    checkpoint  self-describing, checksummed checkpoints
    history     per-epoch records as JSON/CSV
    metrics     exact meters, accuracy, confusion matrices
    tracking    TensorBoard and Weights & Biases callbacks
    device      device and CPU-thread choice
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab.lazy import lazy_names

# Names imported on first use: the CLI imports the callbacks module, and starts without torch.
_EXPORTS = {
    "Callback": "callbacks", "FitState": "callbacks", "EarlyStopping": "callbacks", "ProgressBar": "progress",
    "MaxNorm": "weights", "WeightAverage": "weights",
    "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "History": "history",
    "evaluate": "loop", "fit": "loop", "train_epoch": "loop",
    "AverageMeter": "metrics", "accuracy": "metrics", "confusion_matrix": "metrics", "per_class_accuracy": "metrics",
    "Setup": "runner", "prepare": "runner", "train": "runner",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mlplab.training.callbacks import Callback, EarlyStopping, FitState
    from mlplab.training.weights import MaxNorm, WeightAverage
    from mlplab.training.progress import ProgressBar
    from mlplab.training.checkpoint import load_checkpoint, save_checkpoint
    from mlplab.training.history import History
    from mlplab.training.loop import evaluate, fit, train_epoch
    from mlplab.training.metrics import AverageMeter, accuracy, confusion_matrix, per_class_accuracy
    from mlplab.training.runner import Setup, prepare, train


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
