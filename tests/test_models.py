"""The MLP: shapes, parameter counts, activations, dropout, initialisation, validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlplab.config import PRESETS, ModelConfig, from_preset
from mlplab.errors import MlplabError
from mlplab.choices import ACTIVATIONS
from mlplab.models import MLP, build_model

ARCHITECTURES = [(16, 32, 24), (32, 16), (120, 256), (64, 64), ()]


def expected_parameters(widths: list[int]) -> int:
    """in * out weights plus out biases, summed over consecutive layer widths."""
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


@pytest.mark.parametrize("hidden", ARCHITECTURES, ids=lambda h: "-".join(map(str, (784, *h, 10))))
def test_shapes_and_parameter_count(hidden):
    torch.manual_seed(0)
    model = MLP(hidden=hidden)
    widths = [784, *hidden, 10]
    assert model.num_parameters == expected_parameters(widths)
    assert [(layer.in_features, layer.out_features) for layer in model.linears()] == list(
        zip(widths[:-1], widths[1:])
    )
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    assert model(torch.randn(3, 784)).shape == (3, 10)


def test_known_parameter_counts():
    assert MLP(hidden=(16, 32, 24)).num_parameters == 14_146
    assert MLP(hidden=()).num_parameters == 7_850
    assert "14,146 parameters" in MLP(hidden=(16, 32, 24)).describe()


def test_the_default_mlp_is_the_default_recipes_net():
    from mlplab.config import Config

    assert MLP().widths == build_model(Config().model).widths == (784, 512, 10)
    assert MLP().describe() == "784-512-10 relu MLP -> logits, 407,050 parameters"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_build(preset):
    config = from_preset(preset)
    model = build_model(config.model)
    assert model.widths == (784, *config.model.hidden, 10)
    assert model.output == config.model.output


def test_logistic_regression_is_one_linear():
    torch.manual_seed(0)
    model = MLP(hidden=())
    (layer,) = model.linears()
    x = torch.randn(4, 784)
    torch.testing.assert_close(model(x), x @ layer.weight.T + layer.bias)


def test_image_and_flat_inputs_agree():
    torch.manual_seed(0)
    model = MLP()
    images = torch.randn(6, 1, 28, 28)
    torch.testing.assert_close(model(images), model(images.reshape(6, 784)), rtol=0, atol=0)


def test_log_softmax_output_is_normalised_log_probabilities():
    torch.manual_seed(0)
    logits_model = MLP(output="logits")
    log_model = MLP(output="log_softmax")
    log_model.load_state_dict(logits_model.state_dict())
    x = torch.randn(8, 784) * 3
    log_probs = log_model(x)
    torch.testing.assert_close(log_probs.exp().sum(dim=1), torch.ones(8))
    torch.testing.assert_close(log_probs, torch.log_softmax(logits_model(x), dim=1))


REFERENCE_ACTIVATIONS = {
    "relu": nn.ReLU(),
    "sigmoid": nn.Sigmoid(),
    "tanh": nn.Tanh(),
    "gelu": nn.GELU(),
    "leaky_relu": nn.LeakyReLU(0.01),
    "elu": nn.ELU(1.0),
}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_each_activation_matches_a_sequential_reference(activation):
    assert set(REFERENCE_ACTIVATIONS) == set(ACTIVATIONS)
    torch.manual_seed(0)
    model = MLP(hidden=(16, 32), activation=activation)
    first, second, last = model.linears()
    act = REFERENCE_ACTIVATIONS[activation]
    reference = nn.Sequential(nn.Flatten(), first, act, second, act, last)
    x = torch.randn(5, 1, 28, 28)
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_unknown_activation_lists_choices():
    with pytest.raises(MlplabError, match="unknown activation 'swish'; choose one of: relu, sigmoid"):
        MLP(activation="swish")


def test_dropout_active_in_train_and_inactive_in_eval():
    torch.manual_seed(0)
    model = MLP(hidden=(64, 64), dropout=0.5)
    plain = MLP(hidden=(64, 64))
    plain.load_state_dict(model.state_dict())  # dropout adds no state
    x = torch.randn(16, 784)
    model.train()
    assert not torch.equal(model(x), model(x))  # fresh masks each call
    model.eval()
    torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)
    assert plain.dropout is None and isinstance(model.dropout, nn.Dropout)


def test_default_init_matches_pytorch_sequential_for_the_same_seed():
    torch.manual_seed(3)
    model = MLP(hidden=(16, 32, 24))
    torch.manual_seed(3)
    reference = [nn.Linear(784, 16), nn.Linear(16, 32), nn.Linear(32, 24), nn.Linear(24, 10)]
    for ours, theirs in zip(model.linears(), reference):
        assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)


def test_uniform_init_stays_within_range():
    torch.manual_seed(0)
    a = 0.05
    model = MLP(hidden=(120, 256), init="uniform", init_range=a)
    for parameter in model.parameters():
        assert parameter.abs().max() <= a
    weights = model.linears()[0].weight
    # Fills the whole range (PyTorch's default would stay within 1/sqrt(784) = 0.036).
    assert weights.max() > 0.95 * a and weights.min() < -0.95 * a


@pytest.mark.parametrize("init", ["xavier", "kaiming"])
def test_xavier_and_kaiming_zero_the_biases_and_scale_the_weights(init):
    torch.manual_seed(0)
    model = MLP(hidden=(120, 256), init=init)
    layer = model.linears()[1]  # 120 -> 256
    assert all(torch.count_nonzero(linear.bias) == 0 for linear in model.linears())
    expected_std = (2 / (120 + 256)) ** 0.5 if init == "xavier" else (2 / 120) ** 0.5
    assert layer.weight.std().item() == pytest.approx(expected_std, rel=0.05)


@pytest.mark.parametrize("init", ["default", "uniform", "xavier", "kaiming"])
def test_same_seed_gives_same_weights(init):
    def weights(seed):
        torch.manual_seed(seed)
        return MLP(init=init).state_dict()

    first, second, other = weights(7), weights(7), weights(8)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["layers.0.weight"], other["layers.0.weight"])


def test_reset_parameters_draws_new_weights_with_the_same_scheme():
    torch.manual_seed(0)
    model = MLP(init="uniform", init_range=0.2)
    before = model.linears()[0].weight.clone()
    model.reset_parameters()
    after = model.linears()[0].weight
    assert not torch.equal(before, after) and after.abs().max() <= 0.2


def test_state_dict_keys_are_stable():
    assert list(MLP(hidden=(16, 32)).state_dict()) == [
        "layers.0.weight", "layers.0.bias",
        "layers.1.weight", "layers.1.bias",
        "layers.2.weight", "layers.2.bias",
    ]


def test_build_model_carries_every_config_field():
    config = ModelConfig(hidden=(8,), activation="tanh", output="log_softmax", dropout=0.25,
                         init="uniform", init_range=0.3)
    model = build_model(config, in_features=20, num_classes=3)
    assert model.widths == (20, 8, 3)
    assert (model.activation, model.output, model.init, model.init_range) == ("tanh", "log_softmax", "uniform", 0.3)
    assert model.dropout.p == 0.25
    assert "20-8-3 tanh MLP (dropout 0.25) -> log_softmax" in model.describe()
    assert "widths=20-8-3" in repr(model)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(output="probs"), "unknown output 'probs'; choose one of: logits, log_softmax"),
        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\); got 1.0"),
        (dict(dropout=-0.1), r"dropout must be a number in \[0, 1\)"),
        (dict(init="he"), "unknown init 'he'; choose one of: default, uniform, xavier, kaiming"),
        (dict(init_range=0.0), r"init_range must be a number in \(0, 10\]; got 0.0"),
        (dict(hidden=(16, 0)), "layer widths must be positive integers; got 784-16-0-10"),
        (dict(hidden=(16.5,)), "layer widths must be positive integers"),
        (dict(num_classes=0), "layer widths must be positive integers"),
    ],
)
def test_bad_values_raise_one_line_errors(kwargs, message):
    with pytest.raises(MlplabError, match=message) as error:
        MLP(**kwargs)
    assert "\n" not in str(error.value)
