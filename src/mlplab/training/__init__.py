"""Training and evaluation: the loop, callbacks, exact meters, history, checkpoints and run directories.

Modules, in the order a run uses them:
    runner      a `Config` to objects (`prepare`) and to a trained run (`train`)
    loop        `fit`, `train_epoch`, `evaluate`: any model, any batches, any loss and optimizer
    callbacks   `Callback`, the interface fit calls, and the `FitState` callbacks see
    writer      `RunWriter`, the callback that writes a run directory and resumes it
    rundir      the run directory's files, lock and crash-consistency protocol
    checkpoint  self-describing, checksummed checkpoints
    history     per-epoch records as JSON/CSV
    metrics     exact meters, accuracy, confusion matrices
    tracking    TensorBoard and Weights & Biases callbacks
    device      device and CPU-thread choice
"""

from mlplab.training.callbacks import Callback, FitState
from mlplab.training.checkpoint import load_checkpoint, save_checkpoint
from mlplab.training.history import History
from mlplab.training.loop import evaluate, fit, train_epoch
from mlplab.training.metrics import AverageMeter, accuracy, confusion_matrix, per_class_accuracy
from mlplab.training.runner import Setup, prepare, train

__all__ = [
    "AverageMeter", "Callback", "FitState", "History", "Setup", "accuracy", "confusion_matrix", "evaluate", "fit",
    "load_checkpoint", "per_class_accuracy", "prepare", "save_checkpoint", "train", "train_epoch",
]
