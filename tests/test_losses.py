"""Losses: hand-computed values, gradients, output kinds, and the errors users can hit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlplab.choices import LOSSES
from mlplab.errors import MlplabError
from mlplab.losses import build_loss


pytestmark = pytest.mark.usefixtures("one_thread")

# Two samples, four classes, given as probabilities; hand-computed values below use these.
PROBS = np.array([[0.3, 0.2, 0.4, 0.1], [0.1, 0.6, 0.2, 0.1]])
LABELS = np.array([2, 1])


def as_outputs(probs: np.ndarray, output: str, dtype=torch.float64) -> torch.Tensor:
    """Model outputs that mean ``probs``: their logs work both as logits and as log-probabilities."""
    log_probs = torch.tensor(np.log(probs), dtype=dtype)
    return log_probs + 1.5 if output == "logits" else log_probs  # softmax ignores the shift


def labels() -> torch.Tensor:
    return torch.tensor(LABELS)


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes)[labels]


@pytest.mark.parametrize("output", ["logits", "log_softmax"])
def test_quadratic_worked_example(output):
    loss = build_loss("quadratic", output)
    outputs = as_outputs(PROBS[:1], output)
    # 1/2 * (0.3^2 + 0.2^2 + 0.6^2 + 0.1^2) = 1/2 * 0.5
    assert loss(outputs, labels()[:1]).item() == pytest.approx(0.25, abs=1e-12)


@pytest.mark.parametrize("output", ["logits", "log_softmax"])
def test_values_against_numpy(output):
    outputs, targets = as_outputs(PROBS, output), labels()
    residual = PROBS - one_hot(LABELS, 4)  # (2, 4)
    correct = residual[np.arange(2), LABELS]  # p_y - 1
    expected = {
        "quadratic": np.mean(0.5 * (residual**2).sum(axis=1)),  # (0.25 + 0.11) / 2 = 0.18
        "ccql": np.mean(0.5 * (residual**2).sum(axis=1) + 0.5 * 2.0 * correct**2),  # beta = 2
        "mse": np.mean(residual**2),  # 0.72 / 8 = 0.09
        "cross_entropy": -np.mean(np.log(PROBS[np.arange(2), LABELS])),
        "nll": -np.mean(np.log(PROBS[np.arange(2), LABELS])),
    }
    assert expected["quadratic"] == pytest.approx(0.18)
    assert expected["ccql"] == pytest.approx(0.18 + 0.5 * (0.36 + 0.16))
    assert expected["mse"] == pytest.approx(0.09)
    for name in LOSSES:
        if name == "nll" and output == "logits":
            continue
        value = build_loss(name, output, beta=2.0)(outputs, targets)
        assert value.shape == ()
        assert value.item() == pytest.approx(expected[name], abs=1e-12), name


def test_ccql_with_beta_zero_is_quadratic_and_beta_adds_the_correct_class_term():
    torch.manual_seed(0)
    outputs = torch.randn(5, 10, dtype=torch.float64)
    targets = torch.randint(0, 10, (5,))
    quadratic = build_loss("quadratic")(outputs, targets)
    assert build_loss("ccql", beta=0.0)(outputs, targets) == quadratic
    p_correct = torch.softmax(outputs, dim=1)[torch.arange(5), targets]
    expected = quadratic + 0.5 * 3.0 * ((1 - p_correct) ** 2).mean()
    torch.testing.assert_close(build_loss("ccql", beta=3.0)(outputs, targets), expected)


@pytest.mark.parametrize("name", ["cross_entropy", "quadratic", "ccql", "mse"])
def test_logits_and_log_probabilities_give_the_same_loss(name):
    torch.manual_seed(0)
    logits = torch.randn(6, 10, dtype=torch.float64) * 4
    targets = torch.randint(0, 10, (6,))
    from_logits = build_loss(name, "logits", beta=2.0)(logits, targets)
    from_log_probs = build_loss(name, "log_softmax", beta=2.0)(torch.log_softmax(logits, dim=1), targets)
    torch.testing.assert_close(from_logits, from_log_probs)


def test_loss_is_the_batch_mean():
    torch.manual_seed(0)
    outputs = torch.randn(4, 10)
    targets = torch.randint(0, 10, (4,))
    for name in ["cross_entropy", "quadratic", "ccql", "mse"]:
        loss = build_loss(name)
        per_sample = torch.stack([loss(outputs[i : i + 1], targets[i : i + 1]) for i in range(4)])
        torch.testing.assert_close(loss(outputs, targets), per_sample.mean())


def analytic_gradient(name: str, logits: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    """d loss / d logits by hand: chain dL/dp through the softmax Jacobian diag(p) - p p^T."""
    batch, classes = logits.shape
    p = torch.softmax(logits, dim=1)
    e = torch.nn.functional.one_hot(targets, classes).to(logits.dtype)
    if name == "cross_entropy":
        return (p - e) / batch
    r = p - e
    if name == "quadratic":
        dp = r / batch
    elif name == "ccql":
        dp = (r + beta * (r * e).sum(dim=1, keepdim=True) * e) / batch
    else:  # mse: mean over B*C of r^2
        dp = 2 * r / (batch * classes)
    return p * (dp - (p * dp).sum(dim=1, keepdim=True))


@pytest.mark.parametrize("name", ["cross_entropy", "quadratic", "ccql", "mse"])
def test_gradient_matches_the_analytic_formula(name):
    torch.manual_seed(1)
    logits = (torch.randn(5, 7, dtype=torch.float64) * 2).requires_grad_()
    targets = torch.randint(0, 7, (5,))
    build_loss(name, "logits", beta=2.0)(logits, targets).backward()
    torch.testing.assert_close(logits.grad, analytic_gradient(name, logits.detach(), targets, beta=2.0))


@pytest.mark.parametrize(
    "name, output",
    [(name, output) for name in LOSSES for output in ("logits", "log_softmax") if (name, output) != ("nll", "logits")],
)
def test_gradcheck(name, output):
    torch.manual_seed(2)
    outputs = torch.log_softmax(torch.randn(4, 5, dtype=torch.float64), dim=1).requires_grad_()
    targets = torch.randint(0, 5, (4,))
    loss = build_loss(name, output, beta=2.0)
    assert torch.autograd.gradcheck(lambda o: loss(o, targets), (outputs,))


@pytest.mark.parametrize("name", ["cross_entropy", "quadratic", "ccql", "mse"])
def test_huge_logits_stay_finite(name):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-3e4, 2e4, 2e4]], requires_grad=True)
    targets = torch.tensor([1, 2])
    value = build_loss(name)(logits, targets)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_nll_on_logits_raises_at_build_and_at_call():
    message = "loss 'nll' expects log-probabilities but the model outputs logits; use --output log_softmax"
    with pytest.raises(MlplabError, match=message):
        build_loss("nll", "logits")
    from mlplab.losses import nll

    with pytest.raises(MlplabError, match=message):
        nll(torch.randn(2, 3), torch.tensor([0, 1]), output="logits")


def test_custom_callable_is_returned_as_is():
    def custom(outputs, targets):
        return outputs.sum() * 0

    assert build_loss(custom) is custom
    assert build_loss(custom, "log_softmax", beta=5.0) is custom


def test_unknown_name_lists_choices():
    with pytest.raises(MlplabError, match="unknown loss 'hinge'; choose one of: cross_entropy, nll, quadratic, ccql, mse"):
        build_loss("hinge")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="ccql", beta=-1.0), r"beta must be a number in \[0, 1000000\]; got -1.0"),
        (dict(name="mse", output="probs"), "unknown model output 'probs'"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(MlplabError, match=message):
        build_loss(**kwargs)


@pytest.mark.parametrize("name", LOSSES)
def test_targets_must_be_int64_class_indices(name):
    loss = build_loss(name, "log_softmax")
    outputs = torch.log_softmax(torch.randn(3, 4), dim=1)
    with pytest.raises(MlplabError, match="targets must be int64 class indices; got dtype torch.float32"):
        loss(outputs, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(MlplabError, match="targets must be int64 class indices; got dtype torch.int32"):
        loss(outputs, torch.tensor([0, 1, 2], dtype=torch.int32))
    with pytest.raises(MlplabError, match=r"shape \(B, C\) and targets of shape \(B,\); got \(3, 4\) and \(3, 1\)"):
        loss(outputs, torch.tensor([[0], [1], [2]]))
