"""Config: presets, overrides with checked types, TOML round-trip."""

import pytest

from mlplab.config import PRESETS, Config, apply_overrides, from_dict, from_preset, load_toml, to_dict, to_toml
from mlplab.errors import MlplabError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_toml(name, tmp_path):
    config = from_preset(name)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    assert load_toml(path) == config
    assert from_dict(to_dict(config)) == config


def test_lab_preset_is_the_mlp_lab_net():
    config = from_preset("lab")
    assert config.model.hidden == (16, 32, 24)
    assert config.model.output == "log_softmax" and config.train.loss == "nll"
    assert from_preset("logistic").model.hidden == ()


def test_overrides_coerce_strings_like_the_cli():
    config = apply_overrides(Config(), {"hidden": "64,32", "lr": "0.5", "epochs": "7", "nesterov": "true"})
    assert config.model.hidden == (64, 32)
    assert config.optim.lr == 0.5 and config.train.epochs == 7 and config.optim.nesterov is True
    assert apply_overrides(Config(), {"hidden": "none"}).model.hidden == ()


@pytest.mark.parametrize("overrides, fragment", [
    ({"lr": "fast"}, "lr must be a number"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"hidden": "16,x"}, "hidden must be a list"),
    ({"hidden": "16,0"}, "positive"),
    ({"loss": "hinge"}, "loss must be one of"),
    ({"colour": "red"}, "unknown config field"),
])
def test_bad_values_are_one_line_errors(overrides, fragment):
    with pytest.raises(MlplabError, match=fragment) as info:
        apply_overrides(Config(), overrides)
    assert "\n" not in str(info.value)


def test_unknown_preset_lists_choices():
    with pytest.raises(MlplabError, match="choose one of: lab, logistic"):
        from_preset("lab2")


def test_flat_toml_file_is_accepted(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('preset = "lab"\nlr = 0.2\nepochs = 1\n')
    config = load_toml(path)
    assert config.preset == "lab" and config.optim.lr == 0.2 and config.model.output == "log_softmax"


def test_broken_toml_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("lr = = 1\n")
    with pytest.raises(MlplabError, match="not valid TOML"):
        load_toml(path)


def test_switching_the_optimizer_drops_inherited_settings_it_cannot_take():
    adam = apply_overrides(Config(), {"optimizer": "adam", "lr": 1e-3})
    assert (adam.optim.momentum, adam.optim.nesterov) == (0.0, False)
    rmsprop = apply_overrides(Config(), {"optimizer": "rmsprop"})
    assert (rmsprop.optim.momentum, rmsprop.optim.nesterov) == (0.9, False)  # rmsprop takes momentum
    # What the same overrides ask for is kept, and refused later as the mistake it is.
    assert apply_overrides(Config(), {"optimizer": "adam", "momentum": 0.9}).optim.momentum == 0.9
    # Without a switch nothing is dropped, and a preset's own optimizer settings stand.
    assert apply_overrides(Config(), {"lr": 0.1}).optim.nesterov is True
    assert from_preset("lab").optim.momentum == 0.9 and from_preset("tutorial").optim.momentum == 0.0


def test_presets_do_not_depend_on_the_defaults():
    """Each lab recipe states its optimizer, schedule, batch and epochs: the default recipe's
    Nesterov momentum and one-cycle schedule never leak into a lab."""
    for name in PRESETS:
        config = from_preset(name)
        assert config.optim.scheduler == "none" and config.optim.nesterov is False, name
        assert config.train.batch_size == 64 and config.model.hidden != Config().model.hidden, name
