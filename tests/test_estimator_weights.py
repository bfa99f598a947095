"""`MLPClassifier`'s sample_weight and class_weight against their definitions.

The definitions are scikit-learn's: a batch's loss is sum_i w_i loss_i / sum_i w_i, its L2 term
alpha / (2 sum_i w_i) ||W||^2; a weight k counts as k copies of a sample, 0 as none; class_weight
multiplies the sample weights ("balanced": n_samples / (n_classes * np.bincount(y))).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler
from sklearn.utils import shuffle
from sklearn.utils.class_weight import compute_sample_weight

from mlplab.choices import LOSSES
from mlplab.estimator import MLPClassifier
from mlplab.estimator.data import Samples
from mlplab.estimator.weights import WeightedLoss
from mlplab.losses import build_loss

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def _blobs(n=90, seed=0, centers=3):
    X, y = make_blobs(n, n_features=4, centers=centers, cluster_std=2.0, random_state=seed)
    return StandardScaler().fit_transform(X), y


def _small(**params):
    """A quick estimator on the CPU: 8 hidden units, 5 epochs, unless told otherwise."""
    return MLPClassifier(**{"hidden_layer_sizes": (8,), "random_state": 0, "device": "cpu", "max_iter": 5, **params})


def _parameters(model):
    return model.coefs_ + model.intercepts_


def _assert_same(first, second):
    """Bit for bit the same weights and biases."""
    for ours, theirs in zip(_parameters(first), _parameters(second), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("params", [dict(), dict(alpha=0.1, batch_size=32, solver="sgd"), dict(dropout=0.2)])
def test_weights_of_one_train_bit_for_bit_as_no_weights(params):
    X, y = _blobs()  # 30 samples of each class
    plain = _small(**params).fit(X, y)
    _assert_same(plain, _small(**params).fit(X, y, sample_weight=np.ones(len(y))))
    _assert_same(plain, _small(**params).fit(X, y, sample_weight=1.0))  # a number: every sample's weight
    _assert_same(plain, _small(class_weight={0: 1.0, 1: 1, 2: 1.0}, **params).fit(X, y))
    _assert_same(plain, _small(class_weight="balanced", **params).fit(X, y))  # balanced data: all 1
    assert _small(**params).fit(X, y, sample_weight=np.ones(len(y))).loss_curve_ == plain.loss_curve_


def test_equal_weights_change_only_alphas_scale():
    X, y = _blobs()
    _assert_same(_small(alpha=0).fit(X, y), _small(alpha=0).fit(X, y, sample_weight=np.full(len(y), 3.0)))
    # alpha / (2 sum w) ||W||^2: weights of 4 quarter the penalty, as repeating every sample 4 times would.
    _assert_same(_small(alpha=0.1, solver="sgd").fit(X, y),
                 _small(alpha=0.4, solver="sgd").fit(X, y, sample_weight=np.full(len(y), 4.0)))


def test_scaling_every_weight_scales_only_alpha():
    X, y = _blobs()
    weights = np.random.RandomState(0).randint(1, 5, len(y)).astype(float)
    # A power of two scales exactly, so the weighted means are the same bits.
    _assert_same(_small(alpha=0).fit(X, y, sample_weight=weights),
                 _small(alpha=0).fit(X, y, sample_weight=4 * weights))
    _assert_same(_small(alpha=0.1).fit(X, y, sample_weight=weights),
                 _small(alpha=0.4).fit(X, y, sample_weight=4 * weights))
    assert not np.array_equal(_small(alpha=0).fit(X, y, sample_weight=weights).coefs_[0],
                              _small(alpha=0).fit(X, y).coefs_[0])  # the weights do act


@pytest.mark.parametrize("name", LOSSES)
def test_weighted_loss_is_the_weighted_mean_of_each_samples_loss(name):
    output = "log_softmax" if name == "nll" else "logits"
    loss = build_loss(name, output)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    outputs = logits.log_softmax(dim=1) if output == "log_softmax" else logits
    labels = torch.tensor([0, 3, 1, 1, 2, 0])
    weights = torch.tensor([0.5, 2.0, 0.0, 1.0, 3.0, 1.5], dtype=torch.float64)
    weighted = WeightedLoss(loss)
    assert weighted(outputs, labels) == loss(outputs, labels)  # no weights fed: the plain mean
    each = torch.stack([loss(outputs[i:i + 1], labels[i:i + 1]) for i in range(6)])  # loss_i, one at a time
    weighted.weights = weights
    value = weighted(outputs, labels)
    torch.testing.assert_close(value, (weights * each).sum() / weights.sum(), rtol=1e-12, atol=0)
    (gradient,) = torch.autograd.grad(value, logits)
    assert torch.equal(gradient[2], torch.zeros(4, dtype=torch.float64))  # weight 0: no gradient at all
    if name == "cross_entropy":  # d/dz of sum w_i (-log p_y) / sum w = w_i (p_i - e_y) / sum w
        expected = weights[:, None] * (logits.softmax(dim=1) - F.one_hot(labels, 4)) / weights.sum()
        torch.testing.assert_close(gradient, expected, rtol=1e-12, atol=1e-15)


def test_a_batch_of_weight_zero_has_loss_and_gradient_zero():
    logits = torch.randn(3, 2, requires_grad=True)
    weighted = WeightedLoss(build_loss("cross_entropy"))
    weighted.weights = torch.zeros(3)
    value = weighted(logits, torch.tensor([0, 1, 1]))
    (gradient,) = torch.autograd.grad(value, logits)
    assert value.item() == 0.0 and not gradient.any()


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_an_integer_weight_equals_repeating_the_sample(solver):
    # scikit-learn's check_sample_weight_equivalence_on_dense_data, data and all; the batch holds all
    # the data (batch_size "auto" = all of n <= 200), as with full-batch SGD without momentum.
    rng = np.random.RandomState(42)
    X, y, weights = rng.rand(15, 30), rng.randint(0, 3, size=15), rng.randint(0, 5, size=15)
    X_weighted, y_weighted, shuffled_weights = shuffle(X, y, weights, random_state=0)
    params = dict(hidden_layer_sizes=(20,), max_iter=30, solver=solver, momentum=0.0, alpha=0.01,
                  learning_rate_init=0.1 if solver == "sgd" else 0.01)
    repeated = _small(**params).fit(X.repeat(weights, axis=0), y.repeat(weights))
    weighted = _small(**params).fit(X_weighted, y_weighted, sample_weight=shuffled_weights)
    # Equal to float32 precision: the two sum the same terms in different orders (2e-7 measured).
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(_parameters(weighted), _parameters(repeated), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-5)


def test_samples_of_weight_zero_have_no_influence():
    X, y = _blobs(80)
    noise = np.random.RandomState(1)
    extra = noise.normal(size=(20, 4))  # 20 samples of weight 0
    weights = np.r_[np.ones(80), np.zeros(20)]
    params = dict(batch_size=16, alpha=0.01)  # minibatches, shuffled: the zeros share batches with the rest
    first = _small(**params).fit(np.r_[X, extra], np.r_[y, noise.randint(0, 3, 20)], sample_weight=weights)
    other = _small(**params).fit(np.r_[X, 10 * extra], np.r_[y, noise.randint(0, 3, 20)], sample_weight=weights)
    _assert_same(first, other)  # their features and labels change nothing, bit for bit
    # In one batch of all the data, they train as if they were not there (to float32 precision).
    alone = _small(max_iter=10).fit(X, y)
    with_zeros = _small(max_iter=10).fit(np.r_[X, extra], np.r_[y, np.zeros(20, int)], sample_weight=weights)
    for ours, theirs in zip(_parameters(with_zeros), _parameters(alone), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_class_weight_balanced_equals_compute_sample_weight():
    X, y = _blobs(120)
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:10], np.flatnonzero(y == 2)[:25]]
    X, y = X[keep], y[keep]  # 40, 10 and 25 samples
    balanced = _small(class_weight="balanced").fit(X, y)
    _assert_same(balanced, _small().fit(X, y, sample_weight=compute_sample_weight("balanced", y)))
    assert not np.array_equal(balanced.coefs_[0], _small().fit(X, y).coefs_[0])


def test_class_weight_dict_weighs_missing_classes_one_and_multiplies_sample_weight():
    X, y = _blobs()
    labels = np.array(["cat", "dog", "eel"])[y]
    weights = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    by_class = _small(class_weight={"dog": 3.0}).fit(X, labels, sample_weight=weights)
    _assert_same(by_class, _small().fit(X, labels, sample_weight=weights * np.where(labels == "dog", 3.0, 1.0)))
    # partial_fit takes both too; its first call is fit's first epoch.
    one_call = _small(class_weight={"dog": 3.0}).partial_fit(X, labels, classes=["cat", "dog", "eel"],
                                                              sample_weight=weights)
    _assert_same(one_call, _small(class_weight={"dog": 3.0}, max_iter=1).fit(X, labels, sample_weight=weights))
    assert not np.array_equal(one_call.coefs_[0], _small(max_iter=1).fit(X, labels).coefs_[0])


def test_class_weight_balanced_raises_the_recall_of_a_rare_class():
    X, y = make_blobs(660, n_features=2, centers=[[0, 0], [1.5, 0]], cluster_std=1.0, random_state=0)
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:60]]  # 330 against 60, overlapping
    X, y = X[keep], y[keep]
    params = dict(hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.01)
    plain = _small(**params).fit(X, y).predict(X)
    balanced = _small(class_weight="balanced", **params).fit(X, y).predict(X)
    rare = y == 1
    assert (balanced[rare] == 1).mean() > (plain[rare] == 1).mean() + 0.1


def test_held_out_validation_samples_keep_their_weights_but_not_class_weights():
    labels = np.repeat([0, 1], 10)
    samples = Samples("train", np.arange(20, dtype=np.float32)[:, None], labels, np.arange(20.0) + 1,
                      np.where(labels == 1, 5.0, 1.0))
    train, val = samples.split(0.2, np.random.RandomState(0))
    assert len(train) == 16 and sorted(val.labels) == [0, 0, 1, 1]  # stratified
    np.testing.assert_array_equal(val.weights, val.X[:, 0] + 1)  # each sample's own weight
    assert val.factors is None and train.factors is not None
    np.testing.assert_array_equal(train.training_weights(), train.weights * np.where(train.labels == 1, 5.0, 1.0))
    zero_held_out = Samples("train", samples.X, labels, np.where(np.isin(np.arange(20), val.X[:, 0]), 0.0, 1.0))
    with pytest.raises(ValueError, match="held out for validation has sample_weight 0"):
        zero_held_out.split(0.2, np.random.RandomState(0))


@pytest.mark.parametrize("call, message", [
    (lambda m, X, y: m.fit(X, y, sample_weight=-np.ones(len(y))), "negative values"),
    (lambda m, X, y: m.fit(X, y, sample_weight=np.ones(len(y) - 1)), "sample_weight.shape"),
    (lambda m, X, y: m.fit(X, y, sample_weight=np.ones((len(y), 2))), "1D array or scalar"),
    (lambda m, X, y: m.fit(X, y, sample_weight=np.r_[np.nan, np.ones(len(y) - 1)]), "NaN"),
    (lambda m, X, y: m.fit(X, y, sample_weight=np.zeros(len(y))), "[Ww]eight.*zero"),  # scikit-learn's or ours
    (lambda m, X, y: m.set_params(class_weight={7: 2.0}).fit(X, y), "labels that are not classes: \\[7\\]"),
    (lambda m, X, y: m.set_params(class_weight={0: -1.0}).fit(X, y), "finite numbers >= 0"),
    (lambda m, X, y: m.set_params(class_weight={0: 0, 1: 0, 2: 0}).fit(X, y), "every training sample weighs 0"),
    (lambda m, X, y: m.set_params(class_weight="heavy").fit(X, y), "'class_weight' parameter"),
    (lambda m, X, y: m.set_params(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2]),
     "not supported for partial_fit"),
    (lambda m, X, y: m.set_params(engine="manual").fit(X, y, sample_weight=np.arange(len(y)) % 3 + 1.0),
     "needs engine='auto' or 'autograd'"),
])
def test_bad_weights_are_one_line_value_errors(call, message):
    X, y = _blobs()
    with pytest.raises(ValueError, match=message) as raised:
        call(_small(), X, y)
    assert "\n" not in str(raised.value)
