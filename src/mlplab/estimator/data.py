"""The samples `mlplab.MLPClassifier` trains and validates on, until they move to the training device.

`Samples` holds a call's X, its labels (positions in ``classes_``) and its weights: the
``sample_weight`` given (or None) and the ``class_weight`` factors (or None), kept apart
because training multiplies them while validation scores with the sample weights alone, as
scikit-learn's ``MLPClassifier`` does. `Samples.split` holds out the early-stopping share;
`unpack_eval_set` reads fit's ``eval_set``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from mlplab.data.loading import TensorSplit
from mlplab.estimator.weights import combine


class Samples:
    """Samples as NumPy arrays: (n, n_features) float32 X, (n,) int64 labels, (n,) float64 weights or None.

    Args:
        name: ``train`` or ``val`` (the `TensorSplit` name).
        X, labels: the samples and their positions in ``classes_``.
        weights: the caller's sample weights (``sample_weight``, or eval_set's third item); None: all 1.
        factors: each sample's ``class_weight``; None: all 1. Training only.
    """

    def __init__(
        self,
        name: str,
        X: np.ndarray,
        labels: np.ndarray,
        weights: np.ndarray | None = None,
        factors: np.ndarray | None = None,
    ) -> None:
        self.name, self.X, self.labels, self.weights, self.factors = name, X, labels, weights, factors

    def __len__(self) -> int:
        return len(self.labels)

    def training_weights(self) -> np.ndarray | None:
        """The weights each sample's loss is multiplied by: sample weight times class weight (None: all 1)."""
        return combine(self.weights, self.factors)

    def take(self, rows: np.ndarray, name: str) -> Samples:
        """The samples at ``rows``, in that order."""

        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[rows]

        return Samples(name, self.X[rows], self.labels[rows], pick(self.weights), pick(self.factors))

    def split(self, fraction: float, random: np.random.RandomState) -> tuple[Samples, Samples]:
        """(train, val): a stratified share ``fraction`` held out, as scikit-learn's early stopping holds it out.

        The held-out samples keep their sample weights (their accuracy is weighted by them) but not
        their class weights, which shape the training loss only.
        """
        train_rows, val_rows = train_test_split(
            np.arange(len(self)), random_state=random, test_size=fraction, stratify=self.labels
        )
        if len(val_rows) < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
            )
        val = self.take(val_rows, "val")
        val.factors = None
        if val.weights is not None and not val.weights.any():
            raise ValueError(
                "every sample held out for validation has sample_weight 0; pass eval_set, raise "
                "validation_fraction or change random_state"
            )
        return self.take(train_rows, "train"), val

    def to(self, device: torch.device) -> TensorSplit:
        """The samples as mlplab's `TensorSplit` on ``device``: (n, n_features) float32 and (n,) int64."""
        return TensorSplit(as_tensor(self.X).to(device), torch.from_numpy(self.labels).to(device), self.name)


def unpack_eval_set(eval_set: Any) -> tuple[Any, Any, Any]:
    """``(X_val, y_val, sample_weight_val or None)`` from fit's ``eval_set``.

    Takes ``(X_val, y_val)``, ``(X_val, y_val, sample_weight_val)``, or either inside a list of one
    (LightGBM's and XGBoost's spelling); anything else is a ValueError saying what to pass.
    """
    if isinstance(eval_set, list) and eval_set and all(isinstance(item, tuple) for item in eval_set):
        if len(eval_set) > 1:
            raise ValueError(
                f"eval_set takes one validation set; got a list of {len(eval_set)} (pass one (X_val, y_val) tuple)"
            )
        eval_set = eval_set[0]
    if not isinstance(eval_set, (tuple, list)) or len(eval_set) not in (2, 3):
        raise ValueError(
            "eval_set must be (X_val, y_val) or (X_val, y_val, sample_weight_val); got "
            f"{type(eval_set).__name__}" + (f" of {len(eval_set)} items" if hasattr(eval_set, "__len__") else "")
        )
    X_val, y_val, *weights = eval_set
    return X_val, y_val, weights[0] if weights else None


def as_tensor(X: np.ndarray) -> torch.Tensor:
    """An array as a CPU tensor: shared, unless it is read-only (a memmap) or not in C order."""
    if not (X.flags.writeable and X.flags.c_contiguous):
        X = np.array(X, order="C")
    return torch.from_numpy(X)
