"""Training and evaluation: the loop, exact meters, history, checkpoints and run directories."""

from mlplab.training.checkpoint import load_checkpoint, save_checkpoint
from mlplab.training.history import History
from mlplab.training.loop import evaluate, fit, train_epoch
from mlplab.training.metrics import AverageMeter, accuracy, confusion_matrix, per_class_accuracy
from mlplab.training.setup import Setup, load_model, prepare

__all__ = [
    "AverageMeter", "History", "Setup", "accuracy", "confusion_matrix", "evaluate", "fit",
    "load_checkpoint", "load_model", "per_class_accuracy", "prepare", "save_checkpoint", "train_epoch",
]
