"""`MLPClassifier` on a device: tensors go there, NumPy comes back; dropout acts in training only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import blobs
from mlplab.estimator import MLPClassifier

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def _blobs(n=300, validation=90):
    return blobs(n, validation, spread=2.0)


def _fit_everything(device):
    """A model trained on ``device`` with every path that moves data: weights, an eval_set, early stopping."""
    X, y, X_val, y_val = _blobs()
    weights = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    model = MLPClassifier((16,), max_iter=10, learning_rate_init=0.01, early_stopping=True, random_state=0,
                          device=device)
    return model.fit(X, y, sample_weight=weights, eval_set=(X_val, y_val, np.ones(90))), X, y


def _assert_numpy_results(model, X):
    probabilities = model.predict_proba(X)
    assert type(probabilities) is np.ndarray and probabilities.dtype == np.float64
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert type(model.predict(X)) is np.ndarray and type(model.predict_log_proba(X)) is np.ndarray
    assert all(type(array) is np.ndarray for array in model.coefs_ + model.intercepts_)
    assert all(isinstance(score, float) for score in model.validation_scores_)


def test_device_cpu_trains_and_answers_in_numpy():
    model, X, y = _fit_everything("cpu")
    assert {parameter.device.type for parameter in model.model_.parameters()} == {"cpu"}
    _assert_numpy_results(model, X)
    assert model.score(X, y) > 0.9


def test_cuda_that_pytorch_cannot_see_is_a_one_line_value_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    X, y, _, _ = _blobs()
    with pytest.raises(ValueError, match="device='cuda' was asked for, but .*; use device='cpu'") as raised:
        MLPClassifier((4,), device="cuda", max_iter=1).fit(X, y)
    assert "\n" not in str(raised.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_cuda_trains_there_and_answers_in_numpy():
    model, X, y = _fit_everything("cuda")
    assert {parameter.device.type for parameter in model.model_.parameters()} == {"cuda"}
    _assert_numpy_results(model, X)
    on_cpu, _, _ = _fit_everything("cpu")
    # Different kernels round differently; the two models should still agree on nearly every sample.
    assert (model.predict(X) == on_cpu.predict(X)).mean() > 0.97
    model.partial_fit(X, y)  # goes on where the model is
    assert next(model.model_.parameters()).device.type == "cuda"


def test_dropout_acts_in_training_only():
    X, y, _, _ = _blobs()
    model = MLPClassifier((32,), dropout=0.5, max_iter=5, random_state=0, device="cpu").fit(X, y)
    first = model.predict_proba(X)
    np.testing.assert_array_equal(first, model.predict_proba(X))  # no masks when predicting: eval mode
    rows = torch.from_numpy(X.astype(np.float32))
    model.model_.train()  # the same net with masks drawn, as in training, answers differently
    assert not np.allclose(model.model_(rows).softmax(dim=1).detach().numpy(), first, atol=1e-3)
    without = MLPClassifier((32,), dropout=0.0, max_iter=5, random_state=0, device="cpu").fit(X, y)
    assert not np.array_equal(without.coefs_[0], model.coefs_[0])  # it changed the training
