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
early_stopping             ``fit(val_data=...)`` on eval_set, else on a stratified validation_fraction
                           of the data; the best validation epoch's weights are restored at the end
beta_1, beta_2, epsilon    Adam's (and AdamW's) ``betas`` and ``eps``
warm_start                 continue from ``model_`` with a new optimizer, as scikit-learn does
verbose                    scikit-learn's lines (``Iteration 1, loss = ...``)
sample_weight              each batch's loss is ``sum w_i loss_i / sum w_i``, as in scikit-learn
                           1.7+ (`mlplab.estimator.weights`); equal weights train as none do
partial_fit                one epoch; with early_stopping each call is scored on the kept validation
                           data and, once n_iter_no_change calls pass without improving, training
                           stops (``stopped_``; later calls warn and do nothing)
=========================  =========================================================================

mlplab's own: ``loss`` (a `mlplab.losses` name), ``engine``, ``device``, ``dropout``,
``class_weight`` (as scikit-learn's other classifiers define it: None, "balanced" or a dict;
it multiplies the sample weights) and fit's ``eval_set=(X_val, y_val[, sample_weight_val])``
(an explicit validation set, as LightGBM and XGBoost take it, instead of the
validation_fraction split).

``alpha``: scikit-learn minimises, on each batch of B samples, the mean loss plus
``alpha / (2 B) * sum ||W||^2`` over the weight matrices (intercepts unpenalised). Its
gradient adds ``(alpha / B) W`` to each weight's gradient, which is what PyTorch's
``weight_decay`` adds: so ``weight_decay = alpha / batch_size`` on the weights and 0 on the
biases. That is exact for every full batch; the last, partial batch of b < B samples gets
``alpha / B`` where scikit-learn uses ``alpha / b``. For adamw the decay is decoupled
(``W -= lr * weight_decay * W``), not an L2 penalty. With sample weights scikit-learn's
penalty is ``alpha / (2 sum w_i)`` over the batch's weights; mlplab divides by the batch's
expected total weight, ``weight_decay = alpha / (B * mean w)`` (exact for a full-data batch
and for equal weights).

Known differences: two classes get two softmax outputs (``coefs_[-1]`` has two columns;
scikit-learn uses one logistic unit); weights start Glorot-uniform with zero biases
(scikit-learn also draws the biases, and uses a smaller bound for logistic);
``loss_curve_`` holds the data loss without the L2 term; Adam adds epsilon to the
bias-corrected sqrt(v) (PyTorch) rather than the raw one; ``partial_fit(X, y, classes,
sample_weight)`` keeps mlplab's and SGDClassifier's order where scikit-learn's MLP (1.7+)
puts sample_weight before classes (pass both by name); partial_fit supports early_stopping,
which scikit-learn's refuses; no multilabel targets, no sparse X.
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
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted

try:
    from sklearn.utils.validation import validate_data  # scikit-learn >= 1.6
except ImportError:  # older releases have it as a method

    def validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


from mlplab.choices import ACTIVATIONS, ENGINES, LOSSES, OPTIMIZERS
from mlplab.config import OptimConfig
from mlplab.data.batches import Batches, epoch_seed
from mlplab.data.loading import TensorSplit
from mlplab.device import model_device, resolve_device
from mlplab.errors import MlplabError
from mlplab.estimator.convergence import Convergence
from mlplab.estimator.data import Samples, as_tensor, unpack_eval_set
from mlplab.estimator.weights import WeightedBatches, check_sample_weight, class_weight_factors, uniform
from mlplab.losses import LossFunction, build_loss
from mlplab.models import MLP
from mlplab.optim import build_optimizer
from mlplab.threads import ThreadGovernor, model_work
from mlplab.training.loop import fit

EVAL_BATCH = 4096  # rows per forward pass in predict and validation


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
        early_stopping: stop when the validation accuracy stalls, and keep the best epoch's weights. The
            validation data is fit's ``eval_set``, else a held-out validation_fraction of the data; for
            partial_fit see there.
        validation_fraction: the held-out share for early stopping without an eval_set.
        beta_1: Adam's decay rate of the gradient's running mean (adam, adamw).
        beta_2: Adam's decay rate of the squared gradient's running mean (adam, adamw).
        epsilon: Adam's stabiliser, added to the denominator (adam, adamw).
        n_iter_no_change: epochs without a tol improvement before stopping.
        loss: the training loss: cross_entropy, nll, quadratic, ccql or mse (`mlplab.losses`).
        engine: how gradients are computed: auto, autograd, manual or scratch (`mlplab.engines`).
            Weighted training (sample weights or class weights that differ) needs autograd, which
            auto then takes.
        device: auto (cuda, then mps, then cpu), cpu, cuda or mps. The model trains and predicts
            there; every result comes back as NumPy arrays. Asking for an accelerator PyTorch
            cannot see is a ValueError at fit.
        dropout: the probability of zeroing each hidden unit's output (after its activation; never
            the inputs or the output layer) in every training step, the kept ones scaled by
            1 / (1 - dropout) (``torch.nn.Dropout``). Only training drops units: predict,
            predict_proba, score and the validation score use the whole net (eval mode), so they
            are deterministic. The masks come from torch's generator seeded by random_state (the
            caller's torch RNG is left as it was). The manual engine has no dropout: with
            dropout > 0, engine='auto' trains with autograd.
        threads: CPU threads to train with; None chooses them for the machine's load and the
            work, re-checked as it trains (`mlplab.threads`; ``history_.threads`` says what was
            chosen and why), unless you set ``torch.set_num_threads`` yourself. scikit-learn's
            own estimators take NumPy's BLAS threads as they find them.
        class_weight: None (every class weighs 1), "balanced" (class c weighs
            ``n_samples / (n_classes * count of c)``, from the y given to fit) or a dict
            {class label: weight}, a class left out weighing 1 (scikit-learn's
            ``compute_class_weight``). Each sample's loss is multiplied by its class's weight (and by its
            sample_weight). Training only: the validation score is not class-weighted.

    Attributes (after fit): ``classes_``, ``n_features_in_`` (and ``feature_names_in_``),
    ``model_`` (the torch `MLP`), ``optimizer_`` (its torch optimizer, which partial_fit goes
    on with), ``coefs_`` and ``intercepts_`` (NumPy copies of its weights, each
    ``(n_in, n_out)``), ``loss_``, ``loss_curve_``, ``best_loss_``, ``validation_scores_``
    (with validation data: early_stopping or an eval_set), ``best_validation_score_``,
    ``stopped_`` (whether early stopping ended training), ``n_iter_`` (epochs of the last
    call), ``t_`` (samples trained on), ``n_layers_``, ``n_outputs_``, ``out_activation_``
    and ``history_`` (the mlplab `History` of the last call).

    Example::

        >>> from mlplab import MLPClassifier
        >>> model = MLPClassifier((64,), class_weight="balanced", early_stopping=True, random_state=0)
        >>> model.fit(X_train, y_train, eval_set=(X_val, y_val)).score(X_test, y_test)
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
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        loss: str = "cross_entropy",
        engine: str = "auto",
        device: str = "auto",
        dropout: float = 0.0,
        threads: int | None = None,
        class_weight: dict | str | None = None,
    ) -> None:
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
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, eval_set: Any = None) -> MLPClassifier:
        """Train for up to ``max_iter`` epochs (from the current weights with ``warm_start``); returns self.

        Args:
            X: (n_samples, n_features) numbers, e.g. 784 pixels per image.
            y: (n_samples,) class labels of any kind scikit-learn takes (ints, strings).
            sample_weight: (n_samples,) weights >= 0, or None for all 1. Each batch's loss is the
                weighted mean ``sum_i w_i loss_i / sum_i w_i`` (w_i times its class_weight), and its
                L2 term ``alpha / (2 sum_i w_i) ||W||^2``, as in scikit-learn (with the batch's expected
                sum of weights, see the module docstring): a weight k counts as k copies of the sample,
                0 as none. Weights that are all 1 train exactly as None does, bit for bit (all equal
                to c: the same, with alpha scaled by 1/c). Samples held out for validation keep their
                weights: the validation accuracy is weighted by them, as scikit-learn's is.
            eval_set: the validation data, ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``:
                scored after every epoch into ``validation_scores_``. With early_stopping=True it decides
                when to stop and whose weights are kept, instead of a validation_fraction of X held out
                (all of X then trains); with early_stopping=False the scores are only recorded.

        Example::

            >>> model = MLPClassifier(early_stopping=True, n_iter_no_change=5, random_state=0)
            >>> model.fit(X_train, y_train, eval_set=(X_val, y_val)).best_validation_score_
        """
        return self._fit(X, y, sample_weight, eval_set, incremental=False)

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None, *, eval_set: Any = None
    ) -> MLPClassifier:
        """One epoch over (X, y), keeping the weights and the optimizer's state; returns self.

        With early_stopping=True every call is scored on validation data: this call's ``eval_set``,
        else the validation data an earlier call gave or held out, else a stratified
        validation_fraction of this call's (X, y), held out once and kept for the later calls.
        When more than ``n_iter_no_change`` calls in a row do not beat the best score by ``tol``
        (fit's rule, with calls for epochs), training stops: the best call's weights are restored,
        ``stopped_`` becomes True, and later calls warn and change nothing, until fit trains anew
        (or early_stopping is set to False). Without early stopping, an ``eval_set`` (kept for later
        calls too) is scored into ``validation_scores_``.

        Args:
            X: (n_samples, n_features) numbers.
            y: (n_samples,) class labels, all among ``classes``.
            classes: every class label; required on the first call.
            sample_weight: (n_samples,) weights >= 0, as for `fit`. class_weight="balanced" is refused
                here, since one call sees only part of y; pass the weights of all of y as a dict.
            eval_set: ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``, as for `fit`.

        Example::

            >>> model = MLPClassifier(early_stopping=True, n_iter_no_change=3, random_state=0)
            >>> for X_chunk, y_chunk in chunks:
            ...     model.partial_fit(X_chunk, y_chunk, classes=[0, 1, 2], eval_set=(X_val, y_val))
            ...     if model.stopped_:
            ...         break
        """
        return self._fit(X, y, sample_weight, eval_set, incremental=True, classes=classes)

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
            parts = [
                functional_call(self.model_, weights, (rows.to(device, torch.float64),)).log_softmax(dim=1)
                for rows in as_tensor(X).split(EVAL_BATCH)
            ]
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

    def _fit(
        self, X: Any, y: Any, sample_weight: Any, eval_set: Any, *, incremental: bool, classes: Any = None
    ) -> MLPClassifier:
        """fit and partial_fit: validate, build or reuse the model and optimizer, run `mlplab.fit` once."""
        hidden = self._check_params()
        first = not hasattr(self, "model_") or not (self.warm_start or incremental)
        X, y = validate_data(self, X, y, reset=first, dtype=np.float32)
        labels = self._encode(y, first, incremental, classes)
        data = Samples(
            "train",
            X,
            labels,
            check_sample_weight(sample_weight, X),
            class_weight_factors(self.class_weight, self.classes_, labels, incremental),
        )
        self._check_engine(data.training_weights())
        validation = self._eval_samples(eval_set) if eval_set is not None else None
        if incremental and self.early_stopping and getattr(self, "stopped_", False):
            self._warn_stopped()  # a no-op, said out loud: the weights are the best ones, kept
            return self
        random = check_random_state(self.random_state)
        # random_state's seed moved on by the samples already trained on: successive calls shuffle differently.
        seed = epoch_seed(int(random.randint(np.iinfo(np.int32).max)), 0 if first else self.t_)
        device = self._device() if first else model_device(self.model_)
        with _value_errors(), _seeded(seed, device):
            if first:
                self._initialize(X.shape[1], hidden, len(self.classes_), device)
            self._train(data, validation, incremental, random, seed)
        return self

    def _warn_stopped(self) -> None:
        """The warning of a partial_fit call made after early stopping ended training."""
        warnings.warn(
            f"partial_fit changed nothing: early stopping ended training after {len(self.loss_curve_)} "
            f"epochs (the validation score did not improve by tol={self.tol} in more than "
            f"n_iter_no_change={self.n_iter_no_change} epochs or calls) and kept the best weights; "
            "call fit to train anew, or set early_stopping=False to go on",
            UserWarning,
            stacklevel=4,
        )

    def _check_params(self) -> list[int]:
        """scikit-learn's parameter validation, with a hint for what mlplab lacks; returns the hidden widths."""
        if self.activation == "identity":
            raise ValueError(
                "activation 'identity' is not available: mlplab's MLP applies one of "
                f"{', '.join(['logistic', *ACTIVATIONS])} (with no activation the layers compose to "
                "one linear map: use hidden_layer_sizes=() for that model)"
            )
        if self.solver == "lbfgs":
            raise ValueError(
                f"solver 'lbfgs' is not available: mlplab trains with minibatch solvers: {', '.join(OPTIMIZERS)}"
            )
        self._validate_params()
        sizes = self.hidden_layer_sizes
        hidden = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if any(not isinstance(size, Integral) or size <= 0 for size in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        if self.engine == "scratch" and self.alpha > 0:
            raise ValueError(
                "engine='scratch' trains one parameter group, so it cannot keep the biases out of "
                "the L2 penalty as scikit-learn does; set alpha=0 or use another engine"
            )
        return [int(size) for size in hidden]

    def _check_engine(self, weights: np.ndarray | None) -> None:
        """Refuse weights that differ with an engine that differentiates the unweighted loss by hand."""
        if self.engine in ("manual", "scratch") and not uniform(weights):
            raise ValueError(
                f"engine={self.engine!r} computes the gradient of the unweighted loss by hand; "
                "training with sample_weight or class_weight needs engine='auto' or 'autograd'"
            )

    def _device(self) -> torch.device:
        """The device a new model goes to; an accelerator PyTorch cannot see is a one-line ValueError."""
        if self.engine == "scratch":
            return torch.device("cpu")  # it computes in NumPy
        if self.device == "cuda" and not torch.cuda.is_available():
            why = (
                f"this PyTorch ({torch.__version__}) is built without CUDA"
                if torch.version.cuda is None
                else "PyTorch sees no CUDA GPU (check the driver and CUDA_VISIBLE_DEVICES)"
            )
            raise ValueError(
                f"device='cuda' was asked for, but {why}; use device='cpu', or device='auto' to take "
                "a GPU when there is one"
            )
        if self.device == "mps" and not torch.backends.mps.is_available():
            raise ValueError(
                "device='mps' was asked for, but this PyTorch has no MPS backend (Apple silicon "
                "only); use device='cpu' or device='auto'"
            )
        return resolve_device(self.device)

    def _encode(self, y: np.ndarray, first: bool, incremental: bool, classes: Any) -> np.ndarray:
        """The labels as (n,) int64 positions in ``classes_``, which the first call sets and later calls check."""
        check_classification_targets(y)
        if incremental and first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        known = unique_labels(classes) if incremental and classes is not None else unique_labels(y)
        if first:
            self.classes_ = known
        elif incremental and classes is not None and not np.array_equal(known, self.classes_):
            raise ValueError(
                f"`classes={list(known)}` is not the same as on last call to partial_fit, was: {list(self.classes_)}"
            )
        elif not incremental and not np.array_equal(known, self.classes_):
            raise ValueError(
                f"warm_start can only be used where `y` has the same classes as in the previous "
                f"call to fit. Previous classes: {list(self.classes_)}, `y` has {list(known)}"
            )
        return self._positions(y, "`y`")

    def _positions(self, y: np.ndarray, what: str) -> np.ndarray:
        """Labels as (n,) int64 positions in ``classes_``; a label that is not a class is a ValueError."""
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(
                f"{what} has classes not in `self.classes_`: {list(unknown)}; `self.classes_` has {list(self.classes_)}"
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _eval_samples(self, eval_set: Any) -> Samples:
        """fit's ``eval_set`` as validation samples, checked as fit checks X, y and sample_weight."""
        X_val, y_val, weights = unpack_eval_set(eval_set)
        X_val, y_val = validate_data(self, X_val, y_val, reset=False, dtype=np.float32)
        check_classification_targets(y_val)
        labels = self._positions(y_val, "eval_set's y")
        return Samples("val", X_val, labels, check_sample_weight(weights, X_val, what="eval_set's sample_weight"))

    def _initialize(self, n_features: int, hidden: list[int], n_classes: int, device: torch.device) -> None:
        """A fresh model (from the seeded RNG) and fresh bookkeeping, as scikit-learn's first call makes them."""
        activation = _ACTIVATION_NAMES.get(self.activation, self.activation)
        output = "log_softmax" if self.loss == "nll" else "logits"  # nll reads log-probabilities
        # Glorot-uniform weights, as scikit-learn draws them (its biases too; here they start at 0).
        self.model_ = MLP(
            n_features,
            hidden,
            n_classes,
            activation=activation,
            output=output,
            dropout=float(self.dropout),
            init="xavier",
        ).to(device)
        self.t_ = 0
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._validation: Samples | None = None  # partial_fit's validation data, kept between calls
        self.stopped_ = False
        self.best_loss_ = None if self.early_stopping else np.inf
        self.validation_scores_: list[float] | None = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None

    def _train(
        self, data: Samples, validation: Samples | None, incremental: bool, random: np.random.RandomState, seed: int
    ) -> None:
        """Batches over the data, the optimizer (partial_fit keeps it), then `mlplab.fit` with `Convergence`."""
        train, val = self._splits(data, validation, incremental, random)
        weights = train.training_weights()
        if weights is not None and not weights.any():
            raise ValueError(
                "every training sample weighs 0 (sample_weight times class_weight); give some "
                "samples of the training data a positive weight"
            )
        batch_size = self._batch_size(len(train))
        if not incremental or not hasattr(self, "optimizer_"):
            self.optimizer_ = self._build_optimizer()
        self._set_decay(batch_size, weights)
        device = model_device(self.model_)
        batches, loss = self._batches(train.to(device), weights, batch_size, seed)
        # What this call tracks that earlier calls may not have: an eval_set without early stopping,
        # or the training loss once early_stopping is set to False.
        if val is not None and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        if not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf
        val_data = val.to(device) if val is not None else None
        convergence = Convergence(self, len(train), val, val_data.images if val_data is not None else None)
        self.n_iter_ = 0
        try:
            self.history_ = fit(
                self.model_,
                batches,
                val_data=Batches(val_data, EVAL_BATCH) if val_data is not None else None,
                loss=loss,
                optimizer=self.optimizer_,
                epochs=1 if incremental else self.max_iter,
                callbacks=[convergence],
                engine=self.engine,
                threads=self.threads,
                progress=False,
            )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        self._finish(convergence, incremental)

    def _splits(
        self, data: Samples, validation: Samples | None, incremental: bool, random: np.random.RandomState
    ) -> tuple[Samples, Samples | None]:
        """This call's training and validation samples; partial_fit keeps the validation samples for later calls.

        The validation samples are the eval_set given; else, in partial_fit, those kept from an
        earlier call; else, with early_stopping, a validation_fraction held out of the data.
        """
        if validation is None and incremental:
            validation = self._validation
        if validation is None and self.early_stopping:
            data, validation = data.split(self.validation_fraction, random)
        self._validation = validation if incremental else None
        return data, validation

    def _finish(self, convergence: Convergence, incremental: bool) -> None:
        """After training: the best epoch's weights restored (fit; partial_fit when stopping), the warnings."""
        self.stopped_ = self.early_stopping and convergence.stopped
        if self.early_stopping and self._best_weights is not None and (self.stopped_ or not incremental):
            self.model_.load_state_dict(self._best_weights)
        if not incremental and not convergence.stopped and self.n_iter_ == self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=5,
            )

    def _batches(
        self, train: TensorSplit, weights: np.ndarray | None, batch_size: int, seed: int
    ) -> tuple[Batches | WeightedBatches, LossFunction]:
        """The training batches and loss: `Batches` and the plain loss, or, for weights that differ, weighted ones."""
        loss = build_loss(self.loss, self.model_.output)
        if uniform(weights):  # equal weights leave every batch's loss a plain mean: train exactly as without them
            return Batches(train, batch_size, shuffle=self.shuffle, seed=seed), loss
        sample_weights = torch.from_numpy(weights).to(train.labels.device, torch.float32)
        batches = WeightedBatches(train, sample_weights, loss, batch_size, shuffle=self.shuffle, seed=seed)
        return batches, batches.loss

    def _batch_size(self, samples: int) -> int:
        """scikit-learn's rule: "auto" is min(200, samples); a larger size is clipped, with a warning."""
        if isinstance(self.batch_size, str):  # "auto": the one string `_validate_params` admits
            return min(200, samples)
        if self.batch_size > samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped", stacklevel=5
            )
        return int(np.clip(self.batch_size, 1, samples))

    def _build_optimizer(self) -> torch.optim.Optimizer:
        """The solver over the model's parameters; with alpha, the weights in a group of their own (`_set_decay`)."""
        layers = self.model_.linears()
        groups: list[Any] = list(self.model_.parameters())  # one group (scratch's and fused SGD's fast path)
        if self.alpha > 0:
            groups = [
                {"params": [layer.weight for layer in layers], "weight_decay": 0.0},
                {"params": [layer.bias for layer in layers], "weight_decay": 0.0},
            ]
        sgd = self.solver == "sgd"
        momentum = self.momentum if sgd else 0.0  # scikit-learn: "only used when solver='sgd'"
        optimizer = build_optimizer(
            groups,
            OptimConfig(
                optimizer=self.solver,
                lr=self.learning_rate_init,
                momentum=momentum,
                nesterov=sgd and self.nesterovs_momentum and momentum > 0,
                scheduler="none",
            ),
        )
        if self.solver in ("adam", "adamw"):
            for group in optimizer.param_groups:
                group.update(betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        return optimizer

    def _set_decay(self, batch_size: int, weights: np.ndarray | None) -> None:
        """alpha as the weights' decay for this call: alpha / (batch_size * mean weight) (see the module docstring).

        Set on every call, so partial_fit's decay follows each call's batch size and weights.
        """
        if len(self.optimizer_.param_groups) != 2:  # built with alpha=0: one group, no decay
            return
        # The mean weight makes the divisor a batch's expected total weight; equal weights give it exactly.
        scale = 1.0 if weights is None else float(weights[0] if uniform(weights) else weights.mean())
        self.optimizer_.param_groups[0]["weight_decay"] = self.alpha / (batch_size * scale)


# scikit-learn's activation names that mlplab spells differently.
_ACTIVATION_NAMES = {"logistic": "sigmoid"}


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (initialisation, dropout) for one call, restoring the caller's stream afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _value_errors() -> Iterator[None]:
    """mlplab's refusals (an engine that cannot train this model) as scikit-learn's ValueError."""
    try:
        yield
    except MlplabError as error:
        raise ValueError(str(error)) from error
