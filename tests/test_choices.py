"""The choice lists of `mlplab.choices`: every implementation covers exactly its list, and the
config, its help and the CLI read them from there."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from mlplab import choices
from mlplab.cli.main import main
from mlplab.cli.parser import figure_formats
from mlplab.config import SECTION_TYPES, Config, ModelConfig, apply_overrides
from mlplab.errors import MlplabError

# Every choice list, by name (the names are module constants: tuples of str).
LISTS = {name: value for name, value in vars(choices).items() if name.isupper() and isinstance(value, tuple)}
NOTES = {name: value for name, value in vars(choices).items() if name.endswith("_NOTES")}


def choice_fields() -> list[dataclasses.Field]:
    """The config fields that take one of a list of names."""
    return [f for kind in SECTION_TYPES.values() for f in dataclasses.fields(kind) if f.metadata["choices"]]


def notes_of(names: tuple[str, ...]) -> dict[str, str]:
    """The notes `mlplab.choices` gives the names of a list (``INITS`` has ``INIT_NOTES``), or none."""
    list_name = next(name for name, listed in LISTS.items() if listed is names)
    return NOTES.get(list_name.removesuffix("S") + "_NOTES", {})


# --- the lists themselves ---------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LISTS))
def test_each_list_is_distinct_names(name):
    names = LISTS[name]
    assert names and len(set(names)) == len(names) and all(isinstance(n, str) and n for n in names)


@pytest.mark.parametrize("name", sorted(NOTES))
def test_notes_gloss_names_of_their_list(name):
    listed = LISTS[name.removesuffix("_NOTES") + "S"]
    assert set(NOTES[name]) <= set(listed)


def test_listing_writes_names_with_their_notes():
    assert choices.listing(("a", "b", "c"), {"b": "the second"}) == "a | b (the second) | c"
    assert choices.listing(choices.OUTPUTS) == "logits | log_softmax"


# --- each implementation covers exactly its list -----------------------------------------

def test_torch_activation_functions_are_the_activations():
    from mlplab.models import ACTIVATION_FUNCTIONS

    assert set(ACTIVATION_FUNCTIONS) == set(choices.ACTIVATIONS)


def test_scratch_activation_layers_are_some_of_the_activations():
    from mlplab.scratch import ACTIVATION_LAYERS

    assert set(ACTIVATION_LAYERS) <= set(choices.ACTIVATIONS)


@pytest.mark.parametrize("output", choices.OUTPUTS)
@pytest.mark.parametrize("init", choices.INITS)
def test_every_output_and_init_builds_an_mlp(output, init):
    from mlplab.models import MLP

    model = MLP(hidden=(4,), output=output, init=init)
    assert model(torch.zeros(2, 784)).shape == (2, 10)


def test_every_loss_has_a_function():
    from mlplab import losses

    assert set(losses._FUNCTIONS) == set(choices.LOSSES)


@pytest.mark.parametrize("name", choices.LOSSES)
def test_every_loss_is_built_for_torch_and_for_the_scratch_engine(name):
    from mlplab.losses import NamedLoss, build_loss
    from mlplab.scratch import loss_for

    loss = build_loss(name, output="log_softmax")
    assert isinstance(loss, NamedLoss) and loss.name == name
    assert torch.isfinite(loss(torch.log_softmax(torch.randn(3, 10), dim=1), torch.tensor([0, 1, 2])))
    assert loss_for(name) is not None


def test_every_optimizer_has_a_torch_class():
    from mlplab import optim

    assert set(optim._CLASSES) == set(choices.OPTIMIZERS)


@pytest.mark.parametrize("scheduler", choices.SCHEDULERS)
@pytest.mark.parametrize("optimizer", choices.OPTIMIZERS)
def test_every_optimizer_and_schedule_is_built(optimizer, scheduler):
    from mlplab.optim import build_optimizer, build_schedule

    config = apply_overrides(Config(), {"optimizer": optimizer, "scheduler": scheduler}).optim
    parameters = [torch.nn.Parameter(torch.zeros(3))]
    built = build_optimizer(parameters, config)
    assert type(built).__name__.lower() == optimizer
    assert build_schedule(built, config, epochs=2, steps_per_epoch=3).name == scheduler


def test_every_dataset_has_a_registry_spec():
    from mlplab.data.registry import DATASET_SPECS, get_spec

    assert set(DATASET_SPECS) == set(choices.DATASETS)
    assert all(get_spec(name).name == name for name in choices.DATASETS)


@pytest.mark.parametrize("kind", choices.NORMALIZATIONS)
def test_every_normalization_scales_pixels(kind):
    from mlplab.data.loading import normalize
    from mlplab.data.registry import get_spec

    images = normalize(torch.tensor([[0, 255]], dtype=torch.uint8), kind, get_spec("mnist"))
    assert images.dtype == torch.float32 and images[0, 0] < images[0, 1]


@pytest.mark.parametrize("val_split", choices.VAL_SPLITS)
def test_every_val_split_splits(val_split):
    from mlplab.data.loading import split_indices

    train, val = split_indices(100, val_split, 10, seed=0)
    assert len(train) + (0 if val is None else len(val)) == 100


def test_every_split_is_a_split_of_the_data():
    from mlplab.data.loading import DataBundle

    assert set(choices.SPLITS) <= {f.name for f in dataclasses.fields(DataBundle)}


@pytest.mark.parametrize("engine", choices.ENGINES)
def test_every_engine_is_resolved(engine):
    from mlplab.losses import build_loss
    from mlplab.engines import ENGINE_TABLE, resolve_engine

    resolved = resolve_engine(engine, ModelConfig(), build_loss("cross_entropy"), "sgd")
    assert resolved is ENGINE_TABLE[resolved.name] and resolved.name in choices.ENGINES


@pytest.mark.parametrize("name", choices.DEVICES)
def test_every_device_is_known(name):
    from mlplab.device import resolve_device

    try:
        assert isinstance(resolve_device(name), torch.device)
    except MlplabError as error:  # an accelerator this machine lacks: known, but missing
        assert "unknown device" not in str(error)


def test_every_figure_format_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    from mlplab.plots.backend import pyplot, save

    paths = [tmp_path / f"figure.{kind}" for kind in figure_formats(",".join(choices.FIGURE_FORMATS))]
    save(pyplot().figure(), *paths)
    assert all(path.stat().st_size > 0 for path in paths)


def test_every_symmetry_choice_is_accepted():
    from mlplab.experiments.symmetry_config import SymmetryConfig

    for field, names in (("activation", choices.SYMMETRY_ACTIVATIONS), ("optimizer", choices.SYMMETRY_OPTIMIZERS),
                         ("scheduler", choices.SYMMETRY_SCHEDULERS)):
        for name in names:
            SymmetryConfig(**{field: name}).check()


# --- the config and the CLI read the lists -----------------------------------------------

@pytest.mark.parametrize("field", choice_fields(), ids=lambda f: f.name)
def test_config_choices_and_help_come_from_the_lists(field):
    names = field.metadata["choices"]
    assert any(names is listed for listed in LISTS.values()), f"{field.name} spells its own list"
    assert field.default in names
    listed_in_help = [part.split(" (")[0] for part in field.metadata["help"].split(":")[0].split(" | ")]
    assert listed_in_help == list(names)
    assert field.metadata["help"].startswith(choices.listing(names, notes_of(names)))


def test_only_choice_fields_list_choices_in_their_help():
    plain = [f.name for kind in SECTION_TYPES.values() for f in dataclasses.fields(kind)
             if not f.metadata["choices"] and " | " in f.metadata["help"]]
    assert plain == []


def test_help_keeps_the_notes_of_each_choice():
    fields = {f.name: f.metadata["help"] for f in choice_fields()}
    assert fields["normalize"] == "standard (dataset mean/std) | unit ([0, 1]) | symmetric ([-1, 1])"
    assert fields["val_split"] == "last (last val_size of train) | random (seeded) | none"
    assert fields["init"] == "default (PyTorch's) | uniform (U(-init_range, init_range)) | xavier | kaiming"
    assert fields["engine"].startswith("auto | autograd | manual | scratch: how gradients are computed; ")


def test_train_help_lists_each_choice_list_once(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for field in choice_fields():
        names = field.metadata["choices"]
        flag = "--" + field.name.replace("_", "-")
        assert f"{flag} {field.name.upper()} " in text
        assert text.count(choices.listing(names, notes_of(names))) == 1, field.name
        assert "{" + ",".join(names) + "}" not in text, f"argparse lists {flag}'s choices again"


@pytest.mark.parametrize("field", choice_fields(), ids=lambda f: f.name)
def test_a_bad_choice_is_one_line_listing_the_choices(field, capsys):
    flag = "--" + field.name.replace("_", "-")
    with pytest.raises(SystemExit) as stopped:
        main(["train", flag, "no-such-choice", "--print-config"])
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "invalid choice: 'no-such-choice'" in lines[0]
    assert all(repr(name) in lines[0] for name in field.metadata["choices"])


@pytest.mark.parametrize("args, names", [
    (["eval", "run", "--device", "tpu"], choices.DEVICES),
    (["eval", "run", "--split", "dev"], choices.SPLITS),
    (["show", "samples", "--dataset", "cifar10"], choices.DATASETS),
])
def test_other_commands_refuse_a_bad_choice_in_one_line(args, names, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and all(repr(name) in lines[0] for name in names)


def test_a_bad_choice_in_a_config_file_lists_the_choices(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[model]\nactivation = "swish"\n')
    assert main(["train", "--config", str(path), "--print-config"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"activation must be one of: {', '.join(choices.ACTIVATIONS)}; "
                                                 "got 'swish'")


def test_the_docs_show_the_same_lists():
    """The flags table of the training how-to lists every choice flag with its choices; no page shows a stale list."""
    docs = Path(__file__).parents[1] / "docs"
    pages = {path: path.read_text() for path in [docs.parent / "README.md", *sorted(docs.rglob("*.md"))]}
    for path, text in pages.items():
        shown = re.findall(r"--[a-z-]+ \{([^}]*)\}", text)
        assert all(tuple(names.split(",")) in LISTS.values() for names in shown), path
    train = pages[docs / "how-to" / "train.md"]
    for field in choice_fields():
        flag = "--" + field.name.replace("_", "-")
        assert f"`{flag} {{{','.join(field.metadata['choices'])}}}`" in train


def test_the_engine_table_is_the_engine_choices_but_auto():
    from mlplab.engines import AUTO_ORDER, ENGINE_TABLE

    assert set(ENGINE_TABLE) == set(choices.ENGINES) - {"auto"}
    assert set(AUTO_ORDER) <= set(ENGINE_TABLE)
