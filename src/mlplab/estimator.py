"""`MLPClassifier`: scikit-learn's estimator interface over `mlplab.fit`.

A drop-in for ``sklearn.neural_network.MLPClassifier``: the same parameter names, methods
and learned attributes, trained by mlplab (an `MLP`, `Batches` over tensors, a fused torch
optimizer, the hand-written backprop engine). Each scikit-learn parameter and its mlplab
meaning:

=========================  =========================================================================
scikit-learn               mlplab
=========================  =========================================================================
hidden_layer_sizes         ``MLP(hidden=...)``; ``()`` is logistic regression
activation                 ``MLP(activation=...)``: relu, tanh, logistic (= sigmoid), and mlplab's
                           gelu, leaky_relu, elu; no identity
solver                     the torch optimizer: sgd, adam, and mlplab's adamw, rmsprop, adagrad; no lbfgs
alpha                      ``weight_decay = alpha / batch_size`` on the weights, none on the biases
batch_size                 ``Batches(batch_size=...)``; "auto" is min(200, n_samples)
learning_rate, power_t     sgd only, as in scikit-learn; set by the callback after each epoch:
                           invscaling ``lr = learning_rate_init / (t_ + 1) ** power_t`` (t_ samples
                           seen), adaptive ``lr / 5`` when tol is not met (stopping below 1e-6)
learning_rate_init         the optimizer's ``lr``
max_iter                   ``fit(epochs=max_iter)``; partial_fit trains one epoch
shuffle                    ``Batches(shuffle=...)``
random_state               one seed for initialisation, dropout, the validation split and batch order
tol, n_iter_no_change      stop (``state.stop``) after n_iter_no_change epochs without the training
                           loss falling (or, with early_stopping, the validation accuracy rising) by tol
momentum                   SGD momentum (sgd only)
nesterovs_momentum         SGD ``nesterov`` (sgd with momentum > 0; the same update as scikit-learn's)
early_stopping             ``fit(val_data=...)`` on a stratified validation_fraction of the data;
                           the best validation epoch's weights are restored at the end
beta_1, beta_2, epsilon    Adam's (and AdamW's) ``betas`` and ``eps``
warm_start                 continue from ``model_`` with a new optimizer, as scikit-learn does
verbose                    scikit-learn's lines (``Iteration 1, loss = ...``)
=========================  =========================================================================

mlplab's own: ``loss`` (a `mlplab.losses` name), ``engine``, ``device`` and ``dropout``.

``alpha``: scikit-learn minimises, on each batch of B samples, the mean loss plus
``alpha / (2 B) * sum ||W||^2`` over the weight matrices (intercepts unpenalised). Its
gradient adds ``(alpha / B) W`` to each weight's gradient, which is what PyTorch's
``weight_decay`` adds: so ``weight_decay = alpha / batch_size`` on the weights and 0 on the
biases. That is exact for every full batch; the last, partial batch of b < B samples gets
``alpha / B`` where scikit-learn uses ``alpha / b``. For adamw the decay is decoupled
(``W -= lr * weight_decay * W``), not an L2 penalty.

Known differences: two classes get two softmax outputs (``coefs_[-1]`` has two columns;
scikit-learn uses one logistic unit); weights start Glorot-uniform with zero biases
(scikit-learn also draws the biases, and uses a smaller bound for logistic);
``loss_curve_`` holds the data loss without the L2 term; Adam adds epsilon to the
bias-corrected sqrt(v) (PyTorch) rather than the raw one; no sample_weight, no multilabel
targets, no sparse X.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
except ImportError:
    raise ImportError('mlplab.MLPClassifier needs scikit-learn: pip install "mlplab[sklearn]"') from None
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted

try:
    from sklearn.utils.validation import validate_data  # scikit-learn >= 1.6
except ImportError:  # older releases have it as a method
    def validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)

from mlplab.choices import ENGINES, OPTIMIZERS
from mlplab.config import OptimConfig
from mlplab.data.batches import Batches, epoch_seed
from mlplab.data.loading import TensorSplit
from mlplab.errors import MlplabError
from mlplab.losses import LOSSES, build_loss
from mlplab.models import ACTIVATIONS, MLP
from mlplab.optim import build_optimizer
from mlplab.runs.state import Callback, FitState
from mlplab.threads import ThreadGovernor, model_work
from mlplab.device import resolve_device
from mlplab.training.loop import fit, model_device

EVAL_BATCH = 4096  # rows per forward pass in predict and validation
SMALLEST_ADAPTIVE_LR = 1e-6  # scikit-learn's adaptive schedule stops below this rate


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier, scikit-learn's ``MLPClassifier`` trained by `mlplab.fit`.

    Args:
        hidden_layer_sizes: hidden layer widths, input to output.
        activation: relu, tanh, logistic (= sigmoid), sigmoid, gelu, leaky_relu or elu.
        solver: sgd, adam, adamw, rmsprop or adagrad.
        alpha: scikit-learn's L2 penalty (see the module docstring for the mapping).
        batch_size: samples per batch; "auto" is min(200, n_samples).
        learning_rate: constant, invscaling or adaptive (sgd only).
        learning_rate_init: the initial learning rate.
        power_t: invscaling's exponent.
        max_iter: the most epochs fit trains.
        shuffle: reshuffle the samples every epoch.
        random_state: int, RandomState or None: drives initialisation, dropout, the split and the batch order.
        tol: the improvement that counts (training loss, or validation accuracy with early_stopping).
        verbose: print the loss (and validation score) after every epoch.
        warm_start: fit continues from the current weights.
        momentum: SGD momentum, in [0, 1).
        nesterovs_momentum: Nesterov's momentum (sgd).
        early_stopping: hold out validation_fraction of the data and stop when its accuracy stalls.
        validation_fraction: the held-out share for early stopping.
        beta_1, beta_2, epsilon: Adam's moment decay rates and stabiliser (adam, adamw).
        n_iter_no_change: epochs without a tol improvement before stopping.
        loss: the training loss: cross_entropy, nll, quadratic, ccql or mse (`mlplab.losses`).
        engine: how gradients are computed: auto, autograd, manual or scratch (`mlplab.engines`).
        device: auto (cuda, then mps, then cpu), cpu, cuda or mps.
        dropout: probability of zeroing a hidden activation while training.
        threads: CPU threads to train with; None chooses them for the machine's load and the
            work, re-checked as it trains (`mlplab.threads`; ``history_.threads`` says what was
            chosen and why), unless you set ``torch.set_num_threads`` yourself. scikit-learn's
            own estimators take NumPy's BLAS threads as they find them.

    Attributes (after fit): ``classes_``, ``n_features_in_`` (and ``feature_names_in_``),
    ``model_`` (the torch `MLP`), ``optimizer_`` (its torch optimizer, which partial_fit goes
    on with), ``coefs_`` and ``intercepts_`` (NumPy copies of its weights, each
    ``(n_in, n_out)``), ``loss_``, ``loss_curve_``, ``best_loss_``, ``validation_scores_``,
    ``best_validation_score_``, ``n_iter_`` (epochs of the last call), ``t_`` (samples
    trained on), ``n_layers_``, ``n_outputs_``, ``out_activation_`` and ``history_`` (the
    mlplab `History` of the last call).
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"logistic", *ACTIVATIONS})],
        "solver": [StrOptions(set(OPTIMIZERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="left")],  # at 1 no gradient is ever forgotten
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "loss": [StrOptions(set(LOSSES))],
        "engine": [StrOptions(set(ENGINES))],
        "device": [StrOptions({"auto", "cpu", "cuda", "mps"})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "threads": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *, solver: str = "adam",
                 alpha: float = 0.0001, batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: bool = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, loss: str = "cross_entropy",
                 engine: str = "auto", device: str = "auto", dropout: float = 0.0, threads: int | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.loss = loss
        self.engine = engine
        self.device = device
        self.dropout = dropout
        self.threads = threads

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train for up to ``max_iter`` epochs (from the current weights with ``warm_start``); returns self.

        Args:
            X: (n_samples, n_features) numbers, e.g. 784 pixels per image.
            y: (n_samples,) class labels of any kind scikit-learn takes (ints, strings).
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), keeping the weights and the optimizer's state; returns self.

        Args:
            X: (n_samples, n_features) numbers.
            y: (n_samples,) class labels, all among ``classes``.
            classes: every class label; required on the first call.
        """
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """(n_samples, n_classes) log-probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        # Computed in float64 (MPS has none: there on the CPU). A sample's result then does not
        # depend on the rows batched with it: float32 matrix products round differently with the
        # batch's layout, by about 1e-7, which scikit-learn's invariance checks catch.
        device = model_device(self.model_)
        device = torch.device("cpu") if device.type == "mps" else device
        weights = {name: tensor.to(device, torch.float64) for name, tensor in self.model_.state_dict().items()}
        self.model_.eval()
        work = model_work(self.model_, min(EVAL_BATCH, len(X)))
        with torch.no_grad(), ThreadGovernor(self.threads, work=work, device=device.type, recheck=False):
            parts = [functional_call(self.model_, weights, (rows.to(device, torch.float64),)).log_softmax(dim=1)
                     for rows in _tensor(X).split(EVAL_BATCH)]
        return torch.cat(parts).cpu().numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n_samples, n_classes) class probabilities, columns in the order of ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """(n_samples,) the most probable class label of each sample."""
        log_probabilities = self.predict_log_proba(X)  # first: it raises NotFittedError before fit
        return self.classes_[np.argmax(log_probabilities, axis=1)]

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices, input to output, each (n_in, n_out) as scikit-learn lays them out (copies)."""
        return [layer.weight.detach().cpu().numpy().T.copy() for layer in self.model_.linears()]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The bias vectors, input to output, each (n_out,) (copies)."""
        return [layer.bias.detach().cpu().numpy().copy() for layer in self.model_.linears()]

    @property
    def n_layers_(self) -> int:
        """Layers counting input and output, as scikit-learn counts them."""
        return len(self.model_.widths)

    @property
    def n_outputs_(self) -> int:
        """Output units: one per class (also for two classes)."""
        return self.model_.widths[-1]

    @property
    def out_activation_(self) -> str:
        """The output activation: softmax, for any number of classes."""
        return "softmax"

    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None) -> MLPClassifier:
        """fit and partial_fit: validate, build or reuse the model and optimizer, run `mlplab.fit` once."""
        hidden = self._check_params()
        first = not hasattr(self, "model_") or not (self.warm_start or incremental)
        X, y = validate_data(self, X, y, reset=first, dtype=np.float32)
        labels = self._encode(y, first, incremental, classes)
        random = check_random_state(self.random_state)
        # random_state's seed moved on by the samples already trained on: successive calls shuffle differently.
        seed = epoch_seed(int(random.randint(np.iinfo(np.int32).max)), 0 if first else self.t_)
        with _value_errors():
            device = resolve_device("cpu" if self.engine == "scratch" else self.device) if first \
                else model_device(self.model_)
            with _seeded(seed, device):
                if first:
                    self._initialize(X.shape[1], hidden, len(self.classes_), device)
                self._train(X, labels, incremental, random, seed)
        return self

    def _check_params(self) -> list[int]:
        """scikit-learn's parameter validation, with a hint for what mlplab lacks; returns the hidden widths."""
        if self.activation == "identity":
            raise ValueError("activation 'identity' is not available: mlplab's MLP applies one of "
                             f"{', '.join(['logistic', *ACTIVATIONS])} (with no activation the layers compose to "
                             "one linear map: use hidden_layer_sizes=() for that model)")
        if self.solver == "lbfgs":
            raise ValueError(f"solver 'lbfgs' is not available: mlplab trains with minibatch solvers: "
                             f"{', '.join(OPTIMIZERS)}")
        self._validate_params()
        sizes = self.hidden_layer_sizes
        hidden = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if any(not isinstance(size, Integral) or size <= 0 for size in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        if self.engine == "scratch" and self.alpha > 0:
            raise ValueError("engine='scratch' trains one parameter group, so it cannot keep the biases out of "
                             "the L2 penalty as scikit-learn does; set alpha=0 or use another engine")
        return [int(size) for size in hidden]

    def _encode(self, y: np.ndarray, first: bool, incremental: bool, classes: Any) -> np.ndarray:
        """The labels as (n,) int64 positions in ``classes_``, which the first call sets and later calls check."""
        check_classification_targets(y)
        if incremental and first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        known = unique_labels(classes) if incremental and classes is not None else unique_labels(y)
        if first:
            self.classes_ = known
        elif incremental and classes is not None and not np.array_equal(known, self.classes_):
            raise ValueError(f"`classes={list(known)}` is not the same as on last call to partial_fit, "
                             f"was: {list(self.classes_)}")
        elif not incremental and not np.array_equal(known, self.classes_):
            raise ValueError(f"warm_start can only be used where `y` has the same classes as in the previous "
                             f"call to fit. Previous classes: {list(self.classes_)}, `y` has {list(known)}")
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"`y` has classes not in `self.classes_`: {list(unknown)}; "
                             f"`self.classes_` has {list(self.classes_)}")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _initialize(self, n_features: int, hidden: list[int], n_classes: int, device: torch.device) -> None:
        """A fresh model (from the seeded RNG) and fresh bookkeeping, as scikit-learn's first call makes them."""
        activation = _ACTIVATION_NAMES.get(self.activation, self.activation)
        output = "log_softmax" if self.loss == "nll" else "logits"  # nll reads log-probabilities
        # Glorot-uniform weights, as scikit-learn draws them (its biases too; here they start at 0).
        self.model_ = MLP(n_features, hidden, n_classes, activation=activation, output=output,
                          dropout=float(self.dropout), init="xavier").to(device)
        self.t_ = 0
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        self._best_weights: dict[str, torch.Tensor] | None = None
        self.best_loss_ = None if self.early_stopping else np.inf
        self.validation_scores_: list[float] | None = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None

    def _train(self, X: np.ndarray, labels: np.ndarray, incremental: bool, random: np.random.RandomState,
               seed: int) -> None:
        """Batches over the data, the optimizer (partial_fit keeps it), then `mlplab.fit` with `_Convergence`."""
        train, val = self._splits(X, labels, random)
        batch_size = self._batch_size(len(train))
        if not incremental or not hasattr(self, "optimizer_"):
            self.optimizer_ = self._build_optimizer(batch_size)
        device = model_device(self.model_)
        convergence = _Convergence(self, samples=len(train))
        self.n_iter_ = 0
        try:
            self.history_ = fit(
                self.model_, Batches(train.to(device), batch_size, shuffle=self.shuffle, seed=seed),
                val_data=Batches(val.to(device), EVAL_BATCH) if val is not None else None,
                loss=build_loss(self.loss, self.model_.output), optimizer=self.optimizer_,
                epochs=1 if incremental else self.max_iter, callbacks=[convergence], engine=self.engine,
                threads=self.threads, progress=False)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        if self.early_stopping and self._best_weights is not None:
            self.model_.load_state_dict(self._best_weights)
        if not incremental and not convergence.stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)

    def _splits(self, X: np.ndarray, labels: np.ndarray,
                random: np.random.RandomState) -> tuple[_Split, _Split | None]:
        """The training data, and with early_stopping a stratified validation share held out of it."""
        if not self.early_stopping:
            return _Split("train", X, labels), None
        X_train, X_val, y_train, y_val = train_test_split(X, labels, random_state=random,
                                                          test_size=self.validation_fraction, stratify=labels)
        if len(y_val) < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                             "your dataset.")
        return _Split("train", X_train, y_train), _Split("val", X_val, y_val)

    def _batch_size(self, samples: int) -> int:
        """scikit-learn's rule: "auto" is min(200, samples); a larger size is clipped, with a warning."""
        if self.batch_size == "auto":
            return min(200, samples)
        if self.batch_size > samples:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                          stacklevel=5)
        return int(np.clip(self.batch_size, 1, samples))

    def _build_optimizer(self, batch_size: int) -> torch.optim.Optimizer:
        """The solver over the model's parameters, with alpha as weight decay on the weights only."""
        layers = self.model_.linears()
        decay = self.alpha / batch_size  # see the module docstring
        groups: list[Any] = list(self.model_.parameters())  # one group (scratch's and fused SGD's fast path)
        if decay > 0:
            groups = [{"params": [layer.weight for layer in layers], "weight_decay": decay},
                      {"params": [layer.bias for layer in layers], "weight_decay": 0.0}]
        sgd = self.solver == "sgd"
        momentum = self.momentum if sgd else 0.0  # scikit-learn: "only used when solver='sgd'"
        optimizer = build_optimizer(groups, OptimConfig(optimizer=self.solver, lr=self.learning_rate_init,
                                                        momentum=momentum,
                                                        nesterov=sgd and self.nesterovs_momentum and momentum > 0,
                                                        scheduler="none"))
        if self.solver in ("adam", "adamw"):
            for group in optimizer.param_groups:
                group.update(betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        return optimizer


# scikit-learn's activation names that mlplab spells differently.
_ACTIVATION_NAMES = {"logistic": "sigmoid"}


class _Split:
    """Samples and their encoded labels as NumPy arrays, until they move to the training device."""

    def __init__(self, name: str, X: np.ndarray, labels: np.ndarray) -> None:
        self.name, self.X, self.labels = name, X, labels

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> TensorSplit:
        """The split as mlplab's `TensorSplit` on ``device``: (n, n_features) float32 and (n,) int64."""
        return TensorSplit(_tensor(self.X).to(device), torch.from_numpy(self.labels).to(device), self.name)


class _Convergence(Callback):
    """scikit-learn's per-epoch bookkeeping, written into the estimator's learned attributes.

    After each epoch: the loss curve and counters; the tol test on the training loss, or
    with early stopping on the validation accuracy (keeping the best weights); the sgd
    learning-rate schedules; and, after n_iter_no_change epochs without improvement, either
    a fifth of the rate (adaptive) or the end of training (``state.stop``).
    """

    def __init__(self, estimator: MLPClassifier, samples: int) -> None:
        self.estimator = estimator
        self.samples = samples  # training samples per epoch
        self.stopped = False  # whether training ended before max_iter

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        estimator = self.estimator
        estimator.n_iter_ += 1
        estimator.t_ += self.samples
        estimator.loss_ = record["train_loss"]
        estimator.loss_curve_.append(estimator.loss_)
        self._say(f"Iteration {estimator.n_iter_}, loss = {estimator.loss_:.8f}")
        improved = self._validation_improved(state, record) if estimator.early_stopping else self._loss_improved()
        estimator._no_improvement_count = 0 if improved else estimator._no_improvement_count + 1
        if estimator.solver == "sgd" and estimator.learning_rate == "invscaling":
            _set_lr(state.optimizer, estimator.learning_rate_init / (estimator.t_ + 1) ** estimator.power_t)
        if estimator._no_improvement_count > estimator.n_iter_no_change:
            state.stop = self.stopped = self._stop_or_slow_down(state.optimizer)
            if state.stop:
                what = "validation accuracy" if estimator.early_stopping else "training loss"
                state.stop_reason = f"no better {what} by tol={estimator.tol} in {estimator.n_iter_no_change} epochs"

    def _loss_improved(self) -> bool:
        estimator = self.estimator
        improved = estimator.loss_ <= estimator.best_loss_ - estimator.tol
        estimator.best_loss_ = min(estimator.best_loss_, estimator.loss_)
        return improved

    def _validation_improved(self, state: FitState, record: dict[str, Any]) -> bool:
        estimator = self.estimator
        score = record["val_accuracy"]  # scikit-learn's validation score: accuracy
        estimator.validation_scores_.append(score)
        self._say(f"Validation score: {score:f}")
        improved = score >= estimator.best_validation_score_ + estimator.tol
        if score > estimator.best_validation_score_:
            estimator.best_validation_score_ = score
            weights = state.model.state_dict()
            estimator._best_weights = {name: tensor.detach().clone() for name, tensor in weights.items()}
        return improved

    def _stop_or_slow_down(self, optimizer: torch.optim.Optimizer) -> bool:
        """Whether to stop; the adaptive schedule divides the rate by 5 instead, until it is tiny."""
        estimator = self.estimator
        watched = "Validation score" if estimator.early_stopping else "Training loss"
        message = f"{watched} did not improve more than tol={estimator.tol:f} for {estimator.n_iter_no_change} " \
                  "consecutive epochs."
        lr = optimizer.param_groups[0]["lr"]
        if estimator.solver != "sgd" or estimator.learning_rate != "adaptive":
            self._say(message + " Stopping.")
            return True
        if lr <= SMALLEST_ADAPTIVE_LR:
            self._say(message + " Learning rate too small. Stopping.")
            return True
        _set_lr(optimizer, lr / 5)
        estimator._no_improvement_count = 0
        self._say(message + f" Setting learning rate to {lr / 5:f}")
        return False

    def _say(self, line: str) -> None:
        if self.estimator.verbose:
            print(line)  # scikit-learn's verbose contract: the caller asked for these lines


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _tensor(X: np.ndarray) -> torch.Tensor:
    """An array as a CPU tensor: shared, unless it is read-only (a memmap) or not in C order."""
    if not (X.flags.writeable and X.flags.c_contiguous):
        X = np.array(X, order="C")
    return torch.from_numpy(X)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (initialisation, dropout) for one call, restoring the caller's stream afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _value_errors() -> Iterator[None]:
    """mlplab's refusals (an engine that cannot train this model, no CUDA) as scikit-learn's ValueError."""
    try:
        yield
    except MlplabError as error:
        raise ValueError(str(error)) from error
