"""Config: presets, overrides with checked types, TOML round-trip."""

import dataclasses

import pytest

from mlplab.config import (PRESETS, SECTION_TYPES, Bounds, Config, DataConfig, ModelConfig, OptimConfig, TrainConfig,
                           apply_overrides, field_types, from_dict, from_preset, load_config, to_dict,
                           to_toml)
from mlplab.errors import MlplabError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_toml(name, tmp_path):
    config = from_preset(name)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    assert load_config(path) == config
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
    ({"hidden": "16,,32"}, "hidden has an empty entry in '16,,32'"),
    ({"hidden": [16.5]}, "hidden must be a list"),
    ({"lr": True}, "lr must be a number"),
    ({"momentum": 2}, r"momentum must be a number in \[0, 1\); got 2.0"),
    ({"seed": -1}, r"seed must be a whole number in \[0, 2\*\*63 - 1\]; got -1"),
    ({"epochs": "0"}, r"epochs must be a whole number in \[1, 1000000\]; got 0"),
    ({"lr": "nan"}, r"lr must be a number in \(0, 1000000\]"),
    ({"init_range": 1e308}, r"init_range must be a number in \(0, 10\]"),
    ({"stroke": 2.5}, r"stroke must be a number in \[0, 2\]; got 2.5"),
    ({"blur": -1}, r"blur must be a number in \[0, 3\]; got -1.0"),
])
def test_bad_values_are_one_line_errors(overrides, fragment):
    with pytest.raises(MlplabError, match=fragment) as info:
        apply_overrides(Config(), overrides)
    assert "\n" not in str(info.value)


def test_unknown_preset_lists_choices():
    with pytest.raises(MlplabError, match="choose one of: best, digits, fast, fast99, lab, logistic"):
        from_preset("lab2")


def test_flat_toml_file_is_accepted(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('preset = "lab"\nlr = 0.2\nepochs = 1\n')
    config = load_config(path)
    assert config.preset == "lab" and config.optim.lr == 0.2 and config.model.output == "log_softmax"


def test_a_config_written_before_stroke_and_blur_reads_them_as_off(tmp_path):
    """Run directories and checkpoints saved before the two fields existed still load, with both off."""
    saved = to_dict(from_preset("best"))
    for name in ("stroke", "blur"):
        del saved["data"][name]
    assert from_dict(saved).data.stroke == 0.0 and from_dict(saved).data.blur == 0.0
    path = tmp_path / "config.toml"
    path.write_text("\n".join(line for line in to_toml(Config()).splitlines()
                               if not line.startswith(("stroke =", "blur ="))))
    assert "stroke" not in path.read_text() and load_config(path) == Config()


def test_broken_toml_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("lr = = 1\n")
    with pytest.raises(MlplabError, match="not valid TOML"):
        load_config(path)


def test_switching_the_optimizer_drops_inherited_settings_it_cannot_take():
    adam = apply_overrides(Config(), {"optimizer": "adam", "lr": 1e-3})
    assert (adam.optim.momentum, adam.optim.nesterov) == (0.0, False)
    rmsprop = apply_overrides(Config(), {"optimizer": "rmsprop"})
    assert (rmsprop.optim.momentum, rmsprop.optim.nesterov) == (0.9, False)  # rmsprop takes momentum
    # What the same overrides ask for is kept, and refused as the mistake it is.
    with pytest.raises(MlplabError, match="momentum applies only to sgd and rmsprop, not adam"):
        apply_overrides(Config(), {"optimizer": "adam", "momentum": 0.9})
    # Without a switch nothing is dropped, and a preset's own optimizer settings stand.
    assert apply_overrides(Config(), {"lr": 0.1}).optim.nesterov is True
    assert from_preset("lab").optim.momentum == 0.9 and from_preset("tutorial").optim.momentum == 0.0


def test_presets_do_not_depend_on_the_defaults():
    """Each lab recipe states its optimizer, schedule, batch and epochs: the default recipe's
    Nesterov momentum and one-cycle schedule never leak into a lab. mlplab's own recipes (fast,
    best) state every setting they rely on, so they too stay what they are if the defaults change."""
    own = {"fast", "fast99", "best", "digits"}
    for name in set(PRESETS) - own:
        config = from_preset(name)
        assert config.optim.scheduler == "none" and config.optim.nesterov is False, name
        assert config.train.batch_size == 64 and config.model.hidden != Config().model.hidden, name
    relied_on = ("hidden", "optimizer", "lr", "momentum", "nesterov", "scheduler", "batch_size", "epochs", "loss",
                 "label_smoothing", "augment", "val_split", "precision")
    for name in own:
        assert set(relied_on) <= set(PRESETS[name]), name
        # The split's size is a setting only where something is held out (best trains on all 60,000).
        assert ("val_size" in PRESETS[name]) == (PRESETS[name]["val_split"] != "none"), name


def test_every_number_field_states_its_bounds_and_its_default_meets_them():
    """One definition of each range: the metadata, which the CLI help and `apply_overrides` both read."""
    for name, field in field_types().items():
        if name != "hidden" and ("int" in str(field.type) or "float" in str(field.type)):
            bounds = field.metadata["bounds"]
            assert isinstance(bounds, Bounds), name
            assert field.default is None or bounds.admits(field.default), name


def test_bounds_read_like_the_maths():
    assert str(Bounds(0, 1, high_open=True)) == "in [0, 1)" and str(Bounds(0, low_open=True)) == "> 0"
    assert str(Bounds(0, 2**63 - 1)) == "in [0, 2**63 - 1]" and str(Bounds(1)) == ">= 1"
    assert str(Bounds(1, 1_000_000)) == "in [1, 1000000]" and str(Bounds(0, 0.5)) == "in [0, 0.5]"
    unit = Bounds(0, 1, high_open=True)
    assert unit.admits(0.0) and unit.admits(0.99) and not unit.admits(1.0) and not unit.admits(float("nan"))
    assert not Bounds(0).admits(float("inf"))


def test_an_unknown_toml_section_names_the_known_ones(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[optimizer]\nlr = 0.1\n")
    with pytest.raises(MlplabError) as info:
        load_config(path)
    assert str(info.value) == ("unknown config section [optimizer] (did you mean [optim]?); "
                               "the sections are [data], [model], [optim], [train]")


def test_hidden_accepts_spaces_and_none_but_no_empty_entry():
    assert apply_overrides(Config(), {"hidden": " 16 , 32 "}).model.hidden == (16, 32)
    assert apply_overrides(Config(), {"hidden": []}).model.hidden == ()
    for text in ("16,", ",16", "16,,32", ""):
        with pytest.raises(MlplabError, match="hidden"):
            apply_overrides(Config(), {"hidden": text})


def test_resolve_config_layers_defaults_preset_file_and_flags():
    from mlplab.config import Config, apply_overrides, changed_fields, from_preset, resolve_config

    file = apply_overrides(Config(), {"lr": 0.05, "epochs": 7})
    assert changed_fields(file) == {"lr": 0.05, "epochs": 7}
    assert resolve_config() == Config()
    assert resolve_config(file=file) == file  # without a preset a file is the whole config
    over_preset = resolve_config("lab", file)  # over a preset, the fields the file changes
    assert (over_preset.optim.lr, over_preset.train.epochs) == (0.05, 7)
    assert over_preset.model.hidden == from_preset("lab").model.hidden and over_preset.preset == "lab"
    flagged = resolve_config("lab", file, {"lr": 0.2})
    assert (flagged.optim.lr, flagged.train.epochs) == (0.2, 7)  # the flags win
    resumed = apply_overrides(from_preset("fast"), {"seed": 3})
    assert resolve_config(flags={"epochs": 4}, base=resumed) == apply_overrides(resumed, {"epochs": 4})


@pytest.mark.parametrize("build, message", [
    (lambda: OptimConfig(optimizer="lion"), "optimizer must be one of: sgd, adam, adamw, rmsprop, adagrad; got 'lion'"),
    (lambda: OptimConfig(lr=0.0), r"lr must be a number in \(0, 1000000\]; got 0.0"),
    (lambda: OptimConfig(lr=float("nan")), r"lr must be a number in \(0, 1000000\]; got nan"),
    (lambda: OptimConfig(lr="fast"), "lr must be a number; got 'fast'"),
    (lambda: OptimConfig(momentum=1.0), r"momentum must be a number in \[0, 1\); got 1.0"),
    (lambda: OptimConfig(optimizer="adam"), "momentum applies only to sgd and rmsprop, not adam"),
    (lambda: OptimConfig(momentum=0.0), "nesterov needs momentum > 0"),
    (lambda: DataConfig(normalize="minmax"), "normalize must be one of: standard, unit, symmetric; got 'minmax'"),
    (lambda: DataConfig(val_size=0), r"val_size must be a whole number in \[1, 1000000\]; got 0"),
    (lambda: DataConfig(download="yes"), "download must be true or false; got 'yes'"),
    (lambda: ModelConfig(hidden=(16, 0)), r"hidden layer widths must be positive; got \(16, 0\)"),
    (lambda: ModelConfig(hidden=(16.5,)), "hidden must be a list of layer widths"),
    (lambda: ModelConfig(dropout=1.0), r"dropout must be a number in \[0, 1\); got 1.0"),
    (lambda: ModelConfig(activation="swish"), "activation must be one of: relu, sigmoid"),
    (lambda: TrainConfig(epochs=0), r"epochs must be a whole number in \[1, 1000000\]; got 0"),
    (lambda: TrainConfig(epochs=2.5), "epochs must be an integer; got 2.5"),
    (lambda: TrainConfig(epochs=None), "epochs needs a value"),
    (lambda: TrainConfig(batch_size=2**63), r"batch_size must be a whole number in \[1, 1000000\]; got 9223372036854775808"),
    (lambda: TrainConfig(loss="mse", label_smoothing=0.1), "label smoothing applies to the cross_entropy and nll"),
    (lambda: TrainConfig(engine="scratch", device="cuda"), "--engine scratch computes in NumPy on the CPU, not on cuda"),
    (lambda: Config(train=TrainConfig(loss="nll")), "loss 'nll' expects log-probabilities but the model outputs logits"),
    (lambda: Config(preset="lab2"), "unknown preset 'lab2'; choose one of: best, digits, fast, fast99, lab"),
    (lambda: dataclasses.replace(OptimConfig(), lr=-1.0), r"lr must be a number in \(0, 1000000\]; got -1.0"),
])
def test_a_config_built_in_python_checks_itself_in_one_line(build, message):
    with pytest.raises(MlplabError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("flags, build", [
    ({"optimizer": "lion"}, lambda: OptimConfig(optimizer="lion")),
    ({"lr": "0"}, lambda: OptimConfig(lr=0.0)),
    ({"momentum": "1"}, lambda: OptimConfig(momentum=1.0)),
    ({"val_size": "0"}, lambda: DataConfig(val_size=0)),
    ({"hidden": "16,0"}, lambda: ModelConfig(hidden=(16, 0))),
    ({"loss": "mse", "label_smoothing": "0.1"}, lambda: TrainConfig(loss="mse", label_smoothing=0.1)),
    ({"loss": "nll"}, lambda: Config(train=TrainConfig(loss="nll"))),
])
def test_flags_and_python_get_the_same_message(flags, build):
    """apply_overrides only converts the strings; the sections refuse them, as they refuse values from Python."""
    with pytest.raises(MlplabError) as from_flags:
        apply_overrides(Config(), flags)
    with pytest.raises(MlplabError) as from_python:
        build()
    assert str(from_flags.value) == str(from_python.value)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_section_by_section(name):
    config = from_preset(name)
    rebuilt = Config(preset=name, **{section: kind(**dataclasses.asdict(getattr(config, section)))
                                     for section, kind in SECTION_TYPES.items()})
    assert rebuilt == config == dataclasses.replace(config)


def test_builders_given_a_config_trust_it(monkeypatch):
    """Once a config is built, turning it into a loss, engine, device, optimizer, schedule, data and
    augmentation checks none of its values again: no module but the config calls check_choice or check_setting."""
    import sys

    import torch

    from mlplab.augment import Augmentation, background_value
    from mlplab.data import load_data
    from mlplab.device import config_device
    from mlplab.engines import config_engine
    from mlplab.losses import config_loss
    from mlplab.optim import build_optimizer, build_schedule

    config = apply_overrides(from_preset("lab"), {"augment": "both", "val_split": "random", "download": False})
    calls = []
    for module in [m for name, m in sys.modules.items() if name.startswith("mlplab.") and name != "mlplab.config"]:
        for check in ("check_choice", "check_setting"):
            if hasattr(module, check):
                monkeypatch.setattr(module, check, lambda *args, check=check: calls.append((check, args)))

    loss = config_loss(config)
    config_engine(config, loss)
    config_device(config)
    optimizer = build_optimizer([torch.zeros(2, requires_grad=True)], config.optim)
    build_schedule(optimizer, config.optim, config.train.epochs, steps_per_epoch=10)
    data = load_data(config.data, seed=config.train.seed)
    Augmentation(config.data, config.train.seed, background_value(config.data, data.spec))
    assert calls == []
