"""mlplab: train, inspect and understand multilayer perceptrons on MNIST-family data.

The everyday names, imported on first use (``import mlplab`` itself loads no torch)::

    data       MNIST, FashionMNIST, KMNIST (torchvision-style datasets), load_data, Batches
    models     MLP
    losses     the labs' losses (cross_entropy, nll, quadratic, ccql, mse), as ``mlplab.losses``
    training   fit (any nn.Module), train_epoch, evaluate, Callback, EarlyStopping, ProgressBar, Schedule,
               Steering (pause, stop, change the lr or momentum while fit trains), History, AverageMeter, accuracy, confusion_matrix, per_class_accuracy
    notebooks  LivePlot (training curves redrawn as a notebook trains); the labs: ``mlplab notebooks DIR``
    regularise Augmentation (random affine and elastic distortions, stroke width, blur; per batch), WeightAverage,
               MaxNorm
    configs    Config, from_preset, train (a Config to a run directory, as ``mlplab train`` does)
    runs       Run, open_run, load_model, save_checkpoint, load_checkpoint;
               pretrained (a preset's model, trained once on first use and kept in the user's cache)
    digits     your own images: Run.predict(images), ``mlplab.digits.to_mnist`` (any image -> an MNIST 28x28)
    sklearn    MLPClassifier (scikit-learn's estimator interface)
    sweep      K MLPs of one shape trained as one batched program (``mlplab.sweep.train_vectorised``)
    tune       Optuna studies over configs (``mlplab.tune.tune``; the ``tune`` extra)
    threads    how many CPU threads training takes: chosen for the machine's load (``mlplab.threads``)
    studio     a live training page for a class (``mlplab studio``; ``mlplab.studio.create_studio_app``)

A first run::

    import mlplab
    history = mlplab.train(mlplab.Config())          # 784-512-10 on MNIST, about 98.3%
    run = mlplab.open_run(history.run_dir)
    model = run.model()                               # the best epoch, in eval mode

Training your own module::

    train = mlplab.Batches(mlplab.load_data().train, batch_size=64, shuffle=True)
    history = mlplab.fit(my_module, train, loss=my_loss, optimizer=my_optimizer, epochs=3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab._version import __version__
from mlplab.lazy import lazy_names

# name -> the module that defines it
_EXPORTS = {
    "MNIST": "mlplab.data",
    "FashionMNIST": "mlplab.data",
    "KMNIST": "mlplab.data",
    "load_data": "mlplab.data",
    "Batches": "mlplab.data",
    "MLP": "mlplab.models",
    "fit": "mlplab.training.loop",
    "train_epoch": "mlplab.training.loop",
    "evaluate": "mlplab.metrics",
    "Callback": "mlplab.runs.state",
    "FitState": "mlplab.runs.state",
    "EarlyStopping": "mlplab.training.callbacks",
    "Steering": "mlplab.training.steering",
    "WeightAverage": "mlplab.training.weights",
    "MaxNorm": "mlplab.training.weights",
    "Augmentation": "mlplab.augment",
    "ProgressBar": "mlplab.training.progress",
    "LivePlot": "mlplab.plots.live",
    "Schedule": "mlplab.optim",
    "History": "mlplab.runs.history",
    "AverageMeter": "mlplab.metrics",
    "accuracy": "mlplab.metrics",
    "confusion_matrix": "mlplab.metrics",
    "per_class_accuracy": "mlplab.metrics",
    "Config": "mlplab.config",
    "from_preset": "mlplab.config",
    "load_config": "mlplab.config",
    "train": "mlplab.training.runner",
    "Run": "mlplab.runs",
    "open_run": "mlplab.runs",
    "load_model": "mlplab.runs",
    "pretrained": "mlplab.training.pretrained",
    "save_checkpoint": "mlplab.runs.checkpoint",
    "load_checkpoint": "mlplab.runs.checkpoint",
    "MLPClassifier": "mlplab.estimator",
    "MlplabError": "mlplab.errors",
}
_MODULES = (
    "losses",
    "data",
    "models",
    "engines",
    "training",
    "runs",
    "metrics",
    "scratch",
    "config",
    "choices",
    "digits",
    "sweep",
    "tune",
    "augment",
    "threads",
)

__all__ = sorted([*_EXPORTS, *_MODULES])

if TYPE_CHECKING:
    from mlplab import (
        augment,
        choices,
        config,
        data,
        digits,
        engines,
        losses,
        metrics,
        models,
        runs,
        scratch,
        sweep,
        threads,
        training,
        tune,
    )
    from mlplab.augment import Augmentation
    from mlplab.config import Config, from_preset, load_config
    from mlplab.data import KMNIST, MNIST, Batches, FashionMNIST, load_data
    from mlplab.errors import MlplabError
    from mlplab.estimator import MLPClassifier
    from mlplab.metrics import AverageMeter, accuracy, confusion_matrix, evaluate, per_class_accuracy
    from mlplab.models import MLP
    from mlplab.optim import Schedule
    from mlplab.plots.live import LivePlot
    from mlplab.runs.checkpoint import load_checkpoint, save_checkpoint
    from mlplab.runs.history import History
    from mlplab.runs.reader import Run, load_model, open_run
    from mlplab.runs.state import Callback, FitState
    from mlplab.training.callbacks import EarlyStopping
    from mlplab.training.loop import fit, train_epoch
    from mlplab.training.pretrained import pretrained
    from mlplab.training.progress import ProgressBar
    from mlplab.training.runner import train
    from mlplab.training.steering import Steering
    from mlplab.training.weights import MaxNorm, WeightAverage


__getattr__, __dir__ = lazy_names(
    __name__, {**_EXPORTS, **{name: f"mlplab.{name}" for name in _MODULES}}, globals(), [*__all__, "__version__"]
)
