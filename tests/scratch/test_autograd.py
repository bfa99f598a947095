"""mlplab.scratch against PyTorch autograd: layers, losses, whole networks and optimizers, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlplab import scratch
from mlplab.choices import LOSSES
from mlplab.losses import build_loss
from mlplab.models import MLP

pytestmark = pytest.mark.usefixtures("one_thread")

TORCH_ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                     "leaky_relu": F.leaky_relu, "elu": F.elu}
CASES = [(output, loss) for output in ("logits", "log_softmax") for loss in LOSSES
         if not (loss == "nll" and output == "logits")]


def _relative_error(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def _batch(count=37, features=784, seed=0):
    generator = np.random.default_rng(seed)
    return generator.standard_normal((count, features)), generator.integers(0, 10, count)


@pytest.mark.parametrize("name", ["linear", "softmax", "log_softmax", *sorted(TORCH_ACTIVATIONS)])
def test_each_layer_matches_autograd(name):
    x, _ = _batch(count=9, features=12)
    grad_out_shape = (9, 5) if name == "linear" else x.shape
    grad_out = np.random.default_rng(1).standard_normal(grad_out_shape)
    x_t = torch.tensor(x, requires_grad=True)
    if name == "linear":
        W, b = np.random.default_rng(2).standard_normal((5, 12)), np.random.default_rng(3).standard_normal(5)
        layer = scratch.Linear(W.copy(), b.copy())
        W_t, b_t = torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)
        y_t = F.linear(x_t, W_t, b_t)
    else:
        layer = {"softmax": scratch.Softmax, "log_softmax": scratch.LogSoftmax}.get(name, scratch.ACTIVATION_LAYERS.get(name))()
        function = {"softmax": lambda t: torch.softmax(t, 1), "log_softmax": lambda t: torch.log_softmax(t, 1)}
        y_t = function.get(name, TORCH_ACTIVATIONS.get(name))(x_t)
    y = layer.forward(x)
    y_t.backward(torch.tensor(grad_out))
    assert _relative_error(y, y_t.detach()) <= 1e-14
    assert _relative_error(layer.backward(grad_out), x_t.grad) <= 1e-10
    if name == "linear":
        assert _relative_error(layer.dW, W_t.grad) <= 1e-10 and _relative_error(layer.db, b_t.grad) <= 1e-10


@pytest.mark.parametrize("loss_name", LOSSES)
def test_each_loss_matches_mlplab_losses_under_autograd(loss_name):
    output = "log_softmax" if loss_name == "nll" else "logits"
    z, labels = _batch(count=23, features=10, seed=4)
    if output == "log_softmax":
        z = scratch.log_softmax(z)
    loss = scratch.loss_for(loss_name, beta=0.7)
    z_t = torch.tensor(z, requires_grad=True)
    want = build_loss(loss_name, output, beta=0.7)(z_t, torch.tensor(labels))
    want.backward()
    assert abs(loss.forward(z, labels) - want.item()) <= 1e-12 * abs(want.item())
    assert _relative_error(loss.backward(), z_t.grad) <= 1e-10


@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
@pytest.mark.parametrize("output,loss_name", CASES)
def test_whole_network_gradients_equal_autograd(activation, output, loss_name):
    """The same weights and batch: the loss and every gradient agree to 1e-10 relative (float64)."""
    torch.manual_seed(0)
    model = MLP(hidden=(16, 32, 24), activation=activation, output=output).double()
    network = scratch.from_torch(model)
    x, labels = _batch()
    loss_fn, loss = build_loss(loss_name, output, beta=0.7), scratch.loss_for(loss_name, beta=0.7)
    want = loss_fn(model(torch.tensor(x)), torch.tensor(labels))
    want.backward()
    got = loss.forward(network.forward(x), labels)
    network.backward(loss.backward())
    assert abs(got - want.item()) <= 1e-12 * abs(want.item())
    for (name, torch_parameter), parameter in zip(model.named_parameters(), network.parameters()):
        assert _relative_error(parameter.grad, torch_parameter.grad) <= 1e-10, name


def test_weights_copy_both_ways_and_share_on_request():
    torch.manual_seed(0)
    model = MLP(hidden=(8, 6), output="log_softmax")
    network = scratch.from_torch(model, dtype=np.float64)
    assert network.widths == (784, 8, 6, 10) and network.dtype == np.float64
    assert isinstance(network.layers[-1], scratch.LogSoftmax)
    x = np.random.default_rng(0).standard_normal((5, 784)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(network.forward(x.astype(np.float64)), model(torch.tensor(x)), rtol=1e-5, atol=1e-6)
    for parameter in network.parameters():
        parameter.value[...] += 1.0  # a copy: the model is untouched ...
    assert not torch.equal(model.layers[0].bias, torch.tensor(network.linears()[0].b, dtype=torch.float32))
    scratch.to_torch(network, model)  # ... until copied back
    assert torch.equal(model.layers[0].bias, torch.tensor(network.linears()[0].b, dtype=torch.float32))
    shared = scratch.from_torch(model, share=True)
    shared.linears()[0].W[0, 0] = 42.0
    assert model.layers[0].weight[0, 0].item() == 42.0
    with pytest.raises(ValueError, match="share=True"):
        scratch.from_torch(model, dtype=np.float64, share=True)
    with pytest.raises(ValueError, match="dropout"):
        scratch.from_torch(MLP(hidden=(8,), dropout=0.5))
    with pytest.raises(ValueError, match="no parameter"):
        scratch.to_torch(scratch.mlp((784, 5, 10)), model)


def test_from_config_builds_the_configs_network():
    from mlplab.config import ModelConfig

    network = scratch.from_config(ModelConfig(hidden=(120, 256), activation="tanh", output="log_softmax"),
                                  dtype=np.float64, seed=3)
    assert network.widths == (784, 120, 256, 10) and network.dtype == np.float64
    assert [type(layer).__name__ for layer in network.layers] == [
        "Linear", "Tanh", "Linear", "Tanh", "Linear", "LogSoftmax"]
    with pytest.raises(ValueError, match="dropout"):
        scratch.from_config(ModelConfig(dropout=0.2))


@pytest.mark.parametrize("name,settings", [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("adam", dict(lr=1e-2)),
    ("adam", dict(lr=1e-2, weight_decay=1e-2)),
    ("adamw", dict(lr=1e-2, weight_decay=1e-1)),
], ids=["sgd", "sgd-momentum-decay", "sgd-nesterov", "adam", "adam-decay", "adamw"])
def test_optimizers_follow_torch_step_for_step(name, settings):
    """The same gradients for 25 steps: the same weights as torch.optim to 1e-12."""
    generator = np.random.default_rng(5)
    values = [generator.standard_normal((4, 3)), generator.standard_normal(4)]
    tensors = [torch.tensor(value, requires_grad=True) for value in values]
    parameters = [scratch.Parameter("p", value, np.zeros_like(value)) for value in values]
    kind = {"sgd": (scratch.SGD, torch.optim.SGD), "adam": (scratch.Adam, torch.optim.Adam),
            "adamw": (scratch.AdamW, torch.optim.AdamW)}[name]
    ours, theirs = kind[0](parameters, **settings), kind[1](tensors, foreach=False, **settings)
    for _ in range(25):
        for parameter, tensor in zip(parameters, tensors):
            parameter.grad[...] = generator.standard_normal(parameter.grad.shape)
            tensor.grad = torch.tensor(parameter.grad)
        ours.step()
        theirs.step()
    for parameter, tensor in zip(parameters, tensors):
        assert _relative_error(parameter.value, tensor.detach()) <= 1e-12
