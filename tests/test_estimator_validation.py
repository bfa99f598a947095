"""`MLPClassifier`'s validation data: fit's eval_set, and early stopping in partial_fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from helpers import blobs
from mlplab.estimator import MLPClassifier

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def _blobs(n=300, validation=120):
    return blobs(n, validation, spread=3.0)


def _small(**params):
    """A quick estimator on the CPU: 16 hidden units unless told otherwise."""
    return MLPClassifier(**{"hidden_layer_sizes": (16,), "random_state": 0, "device": "cpu", **params})


def test_eval_set_is_the_validation_data_of_early_stopping():
    X, y, X_val, y_val = _blobs()
    model = _small(early_stopping=True, n_iter_no_change=2, max_iter=40).fit(X, y, eval_set=(X_val, y_val))
    assert model.t_ == model.n_iter_ * 300  # nothing of X held out
    assert model.validation_scores_ == model.history_.column("val_accuracy")  # scored on the eval_set
    assert model.best_validation_score_ == max(model.validation_scores_)
    # The weights kept are the best epoch's: they score that on the eval_set.
    assert model.score(X_val, y_val) == pytest.approx(model.best_validation_score_, abs=1.5 / 120)
    one_epoch = _small(early_stopping=True, max_iter=1).fit(X, y, eval_set=(X_val, y_val))
    assert one_epoch.validation_scores_ == [accuracy_score(y_val, one_epoch.predict(X_val))]


def test_eval_set_drives_when_early_stopping_stops():
    X, y, X_val, y_val = _blobs()
    honest = _small(early_stopping=True, n_iter_no_change=3, max_iter=60).fit(X, y, eval_set=(X_val, y_val))
    # Labels no model can learn: the first epoch's accuracy is never beaten by much, so it stops sooner.
    hopeless = np.random.RandomState(0).permutation(y_val)
    stalled = _small(early_stopping=True, n_iter_no_change=3, max_iter=60, tol=0.05).fit(
        X, y, eval_set=(X_val, hopeless))
    assert stalled.n_iter_ == 5 < honest.n_iter_  # 1 + n_iter_no_change + 1 epochs
    assert stalled.validation_scores_ == stalled.history_.column("val_accuracy") and stalled.stopped_


def test_eval_set_without_early_stopping_is_only_recorded():
    X, y, X_val, y_val = _blobs()
    plain = _small(max_iter=8).fit(X, y)
    scored = _small(max_iter=8).fit(X, y, eval_set=(X_val, y_val))
    for ours, theirs in zip(scored.coefs_, plain.coefs_, strict=True):
        np.testing.assert_array_equal(ours, theirs)  # scoring changes no training step
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None
    assert len(scored.validation_scores_) == scored.n_iter_ == 8
    assert scored.best_validation_score_ == max(scored.validation_scores_)
    assert scored.validation_scores_[-1] == accuracy_score(y_val, scored.predict(X_val))  # the last epoch's weights
    assert scored.best_loss_ == min(scored.loss_curve_) and not scored.stopped_


def test_eval_set_weights_weigh_the_validation_accuracy():
    X, y, X_val, y_val = _blobs()
    weights = np.random.RandomState(2).randint(0, 4, 120).astype(float)
    model = _small(max_iter=2).fit(X, y, eval_set=(X_val, y_val, weights))
    expected = accuracy_score(y_val, model.predict(X_val), sample_weight=weights)
    assert model.validation_scores_[-1] == pytest.approx(expected, rel=1e-12)
    assert expected != accuracy_score(y_val, model.predict(X_val))  # the weights matter here
    listed = _small(max_iter=2).fit(X, y, eval_set=[(X_val, y_val, weights)])  # LightGBM's spelling
    assert listed.validation_scores_ == model.validation_scores_


def test_held_out_validation_is_weighted_by_the_sample_weights():
    X, y, _, _ = _blobs()
    weights = np.where(y == 2, 0.0, 1.0)  # class 2 weighs nothing, in training and in the held-out score
    model = _small(early_stopping=True, max_iter=1, validation_fraction=0.2).fit(X, y, sample_weight=weights)
    unweighted = _small(early_stopping=True, max_iter=1, validation_fraction=0.2).fit(X, y)
    assert model.t_ == unweighted.t_ == 240
    # Without class 2 counted, the model need only tell 0 from 1 on the held-out samples.
    assert model.validation_scores_[0] > unweighted.validation_scores_[0]


@pytest.mark.parametrize("eval_set, message", [
    ("val.csv", "eval_set must be \\(X_val, y_val\\) or \\(X_val, y_val, sample_weight_val\\); got str"),
    ((np.zeros((4, 5)),), "got tuple of 1 items"),
    ([(np.zeros((4, 5)), [0, 1, 2, 0])] * 2, "takes one validation set; got a list of 2"),
    ((np.zeros((4, 3)), [0, 1, 2, 0]), "X has 3 features"),
    ((np.zeros((4, 5)), [0, 1, 2]), "inconsistent numbers of samples"),
    ((np.zeros((4, 5)), [0, 1, 2, 9]), "eval_set's y has classes not in `self.classes_`: \\[(np.int64\\()?9"),
    ((np.zeros((4, 5)), [0, 1, 2, 0], [1, -1, 1, 1]), "eval_set's sample_weight has negative values"),
])
def test_bad_eval_set_is_a_one_line_value_error(eval_set, message):
    X, y, _, _ = _blobs()
    with pytest.raises(ValueError, match=message) as raised:
        _small(max_iter=1).fit(X, y, eval_set=eval_set)
    assert "\n" not in str(raised.value)


def test_partial_fit_early_stopping_stops_after_n_iter_no_change_calls():
    X, y, _, _ = _blobs(1200, 0)
    chunks = [(X[i:i + 300], y[i:i + 300]) for i in range(0, 1200, 300)]
    # tol=1: no call after the first improves by tol, so the 4th call (1 + 2 + 1) stops training, as fit's epochs.
    model = _small(early_stopping=True, tol=1.0, n_iter_no_change=2, solver="sgd", learning_rate_init=0.05)
    weights_after = []
    for X_chunk, y_chunk in chunks:
        model.partial_fit(X_chunk, y_chunk, classes=[0, 1, 2])
        weights_after.append(model.coefs_[0])
    assert model.stopped_ and len(model.validation_scores_) == 4 == len(model.loss_curve_)
    assert model.t_ == 270 + 3 * 300  # a tenth of the first call held out, once, then every sample trains
    best = int(np.argmax(model.validation_scores_))  # the first best, as fit keeps it
    np.testing.assert_array_equal(model.coefs_[0], weights_after[best])  # its weights restored
    assert model.best_validation_score_ == model.validation_scores_[best]
    with pytest.warns(UserWarning, match="partial_fit changed nothing: early stopping ended training"):
        model.partial_fit(X[:300], y[:300])
    np.testing.assert_array_equal(model.coefs_[0], weights_after[best])
    assert model.t_ == 1170 and len(model.validation_scores_) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.set_params(early_stopping=False).partial_fit(X[:300], y[:300])  # trains on, as asked
    assert model.t_ == 1470 and not model.stopped_


def test_partial_fit_scores_every_call_on_its_eval_set_and_keeps_it():
    X, y, X_val, y_val = _blobs(900, 150)
    model = _small(early_stopping=True, n_iter_no_change=50, solver="sgd", learning_rate_init=0.05)
    model.partial_fit(X[:300], y[:300], classes=[0, 1, 2], eval_set=(X_val, y_val))
    assert model.t_ == 300  # nothing held out: the eval_set validates
    for start in (300, 600):
        model.partial_fit(X[start:start + 300], y[start:start + 300])  # scored on the kept eval_set
        latest = model.validation_scores_[-1]
        assert latest == model.history_.column("val_accuracy")[-1]
    assert len(model.validation_scores_) == 3 and not model.stopped_
    # Before stopping, partial_fit leaves the latest weights (training goes on from them), not the best.
    assert model.score(X_val, y_val) == pytest.approx(latest, abs=1.5 / 150)


def test_partial_fit_without_early_stopping_records_an_eval_set_only():
    X, y, X_val, y_val = _blobs()
    model = _small(tol=100.0, n_iter_no_change=1)  # the training loss never improves by tol
    for _ in range(4):
        model.partial_fit(X, y, classes=[0, 1, 2], eval_set=(X_val, y_val))
    assert len(model.validation_scores_) == 4 and not model.stopped_ and model.t_ == 4 * 300
