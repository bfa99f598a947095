"""scikit-learn's per-epoch bookkeeping for `mlplab.MLPClassifier`, as an `mlplab.Callback`.

After each epoch (each partial_fit call is one): the loss curve and counters; the validation
score when there is validation data; the tol test on the training loss, or with early
stopping on the validation score (keeping the best weights); the sgd learning-rate
schedules; and after more than n_iter_no_change epochs without improvement either a fifth
of the rate (adaptive) or the end of training (``state.stop``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from mlplab.estimator.data import Samples
from mlplab.estimator.weights import weighted_accuracy
from mlplab.runs.state import Callback, FitState

if TYPE_CHECKING:
    from mlplab.estimator import MLPClassifier

SMALLEST_ADAPTIVE_LR = 1e-6  # scikit-learn's adaptive schedule stops below this rate
EVAL_BATCH = 4096  # rows per forward pass when scoring weighted validation data


class Convergence(Callback):
    """Writes scikit-learn's learned attributes into the estimator as it trains (see the module docstring).

    Args:
        estimator: the `MLPClassifier` being trained.
        samples: training samples per epoch (``t_`` grows by this much).
        validation: the validation samples, or None; with sample weights, the score is their weighted
            accuracy (scikit-learn's), else the loop's own ``val_accuracy``.
        validation_images: those samples' (n, n_features) images on the training device.
    """

    def __init__(
        self,
        estimator: MLPClassifier,
        samples: int,
        validation: Samples | None = None,
        validation_images: Tensor | None = None,
    ) -> None:
        self.estimator = estimator
        self.samples = samples
        self.validation, self.validation_images = validation, validation_images
        self.stopped = False  # whether n_iter_no_change ended training

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        estimator = self.estimator
        estimator.n_iter_ += 1
        estimator.t_ += self.samples
        estimator.loss_ = record["train_loss"]
        estimator.loss_curve_.append(estimator.loss_)
        self._say(f"Iteration {estimator.n_iter_}, loss = {estimator.loss_:.8f}")
        score_improved = self._validation_improved(state, record) if self.validation_images is not None else False
        improved = score_improved if estimator.early_stopping else self._loss_improved()
        estimator._no_improvement_count = 0 if improved else estimator._no_improvement_count + 1
        if estimator.solver == "sgd" and estimator.learning_rate == "invscaling":
            set_lr(state.optimizer, estimator.learning_rate_init / (estimator.t_ + 1) ** estimator.power_t)
        if estimator._no_improvement_count > estimator.n_iter_no_change:
            state.stop = self.stopped = self._stop_or_slow_down(state.optimizer)
            if state.stop:
                what = "validation accuracy" if estimator.early_stopping else "training loss"
                state.stop_reason = f"no better {what} by tol={estimator.tol} in {estimator.n_iter_no_change} epochs"

    def _loss_improved(self) -> bool:
        estimator = self.estimator
        best = estimator.best_loss_
        assert best is not None  # `_train` sets it (to inf) whenever the training loss decides, as here
        improved = estimator.loss_ <= best - estimator.tol
        estimator.best_loss_ = min(best, estimator.loss_)
        return improved

    def _validation_improved(self, state: FitState, record: dict[str, Any]) -> bool:
        """Record the epoch's validation score; keep the weights of the best epoch when they will be restored."""
        estimator = self.estimator
        scores, best = estimator.validation_scores_, estimator.best_validation_score_
        # `_train` starts both whenever it has validation data, the only time this is called.
        assert scores is not None and best is not None
        score = self._score(state.eval_model, record)
        scores.append(score)
        self._say(f"Validation score: {score:f}")
        improved = score >= best + estimator.tol
        if score > best:
            estimator.best_validation_score_ = score
            if estimator.early_stopping:
                weights = state.model.state_dict()
                estimator._best_weights = {name: tensor.detach().clone() for name, tensor in weights.items()}
        return improved

    def _score(self, model: nn.Module, record: dict[str, Any]) -> float:
        """scikit-learn's validation score: accuracy, weighted by the validation samples' weights if they have any."""
        validation, images = self.validation, self.validation_images
        if validation is None or images is None or validation.weights is None:
            return record["val_accuracy"]
        model.eval()  # as the loop validated it: no dropout
        with torch.no_grad():
            predicted = torch.cat([model(rows).argmax(dim=1) for rows in images.split(EVAL_BATCH)])
        return weighted_accuracy(predicted.cpu().numpy(), validation.labels, validation.weights)

    def _stop_or_slow_down(self, optimizer: torch.optim.Optimizer) -> bool:
        """Whether to stop; the adaptive schedule divides the rate by 5 instead, until it is tiny."""
        estimator = self.estimator
        watched = "Validation score" if estimator.early_stopping else "Training loss"
        message = (
            f"{watched} did not improve more than tol={estimator.tol:f} for {estimator.n_iter_no_change} "
            "consecutive epochs."
        )
        lr = optimizer.param_groups[0]["lr"]
        if estimator.solver != "sgd" or estimator.learning_rate != "adaptive":
            self._say(message + " Stopping.")
            return True
        if lr <= SMALLEST_ADAPTIVE_LR:
            self._say(message + " Learning rate too small. Stopping.")
            return True
        set_lr(optimizer, lr / 5)
        estimator._no_improvement_count = 0
        self._say(message + f" Setting learning rate to {lr / 5:f}")
        return False

    def _say(self, line: str) -> None:
        if self.estimator.verbose:
            print(line)  # scikit-learn's verbose contract: the caller asked for these lines


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = lr
