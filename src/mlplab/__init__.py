"""mlplab: train, inspect and understand multilayer perceptrons on MNIST-family data.

The everyday names, imported on first use (``import mlplab`` itself loads no torch)::

    data       MNIST, FashionMNIST, KMNIST (torchvision-style datasets), load_data, Batches
    models     MLP
    losses     the labs' losses (cross_entropy, nll, quadratic, ccql, mse), as ``mlplab.losses``
    training   fit (any nn.Module), train_epoch, evaluate, Callback, EarlyStopping, ProgressBar, Schedule,
               Steering (pause, stop, change the lr or momentum while fit trains), History, AverageMeter,
               accuracy, confusion_matrix, per_class_accuracy
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

from mlplab._version import __version__ as __version__
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
    from mlplab import augment as augment
    from mlplab import choices as choices
    from mlplab import config as config
    from mlplab import data as data
    from mlplab import digits as digits
    from mlplab import engines as engines
    from mlplab import losses as losses
    from mlplab import metrics as metrics
    from mlplab import models as models
    from mlplab import runs as runs
    from mlplab import scratch as scratch
    from mlplab import sweep as sweep
    from mlplab import threads as threads
    from mlplab import training as training
    from mlplab import tune as tune
    from mlplab.augment import Augmentation as Augmentation
    from mlplab.config import Config as Config
    from mlplab.config import from_preset as from_preset
    from mlplab.config import load_config as load_config
    from mlplab.data import KMNIST as KMNIST
    from mlplab.data import MNIST as MNIST
    from mlplab.data import Batches as Batches
    from mlplab.data import FashionMNIST as FashionMNIST
    from mlplab.data import load_data as load_data
    from mlplab.errors import MlplabError as MlplabError
    from mlplab.estimator import MLPClassifier as MLPClassifier
    from mlplab.metrics import AverageMeter as AverageMeter
    from mlplab.metrics import accuracy as accuracy
    from mlplab.metrics import confusion_matrix as confusion_matrix
    from mlplab.metrics import evaluate as evaluate
    from mlplab.metrics import per_class_accuracy as per_class_accuracy
    from mlplab.models import MLP as MLP
    from mlplab.optim import Schedule as Schedule
    from mlplab.plots.live import LivePlot as LivePlot
    from mlplab.runs.checkpoint import load_checkpoint as load_checkpoint
    from mlplab.runs.checkpoint import save_checkpoint as save_checkpoint
    from mlplab.runs.history import History as History
    from mlplab.runs.reader import Run as Run
    from mlplab.runs.reader import load_model as load_model
    from mlplab.runs.reader import open_run as open_run
    from mlplab.runs.state import Callback as Callback
    from mlplab.runs.state import FitState as FitState
    from mlplab.training.callbacks import EarlyStopping as EarlyStopping
    from mlplab.training.loop import fit as fit
    from mlplab.training.loop import train_epoch as train_epoch
    from mlplab.training.pretrained import pretrained as pretrained
    from mlplab.training.progress import ProgressBar as ProgressBar
    from mlplab.training.runner import train as train
    from mlplab.training.steering import Steering as Steering
    from mlplab.training.weights import MaxNorm as MaxNorm
    from mlplab.training.weights import WeightAverage as WeightAverage


__getattr__, __dir__ = lazy_names(
    __name__, {**_EXPORTS, **{name: f"mlplab.{name}" for name in _MODULES}}, globals(), [*__all__, "__version__"]
)
