"""mlplab.sweep.grid: the grid syntax, its TOML form, its errors, random parts and settings."""

from __future__ import annotations

import pytest

from mlplab.errors import MlplabError
from mlplab.sweep import grid as sweep_grid


def test_the_command_line_syntax():
    grid = sweep_grid.parse_grid(["lr=0.003,0.01,0.03", "hidden=16,32,24/64,64", "seed=0-4", "activation=relu,tanh"])
    assert grid == {"lr": [0.003, 0.01, 0.03], "hidden": [(16, 32, 24), (64, 64)], "seed": [0, 1, 2, 3, 4],
                    "activation": ["relu", "tanh"]}
    combinations = sweep_grid.expand(grid)
    assert len(combinations) == sweep_grid.size(grid) == 3 * 2 * 5 * 2
    assert combinations[0] == {"lr": 0.003, "hidden": (16, 32, 24), "seed": 0, "activation": "relu"}
    assert combinations[1]["activation"] == "tanh" and combinations[2]["seed"] == 1  # the last field fastest
    assert sweep_grid.describe(combinations[0]) == "lr=0.003 hidden=16,32,24 seed=0 activation=relu"


def test_the_toml_form_equals_the_command_line(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('[grid]\nlr = [0.003, 0.01]\nhidden = [[16, 32, 24], [64, 64]]\nseed = "0-2"\n')
    assert sweep_grid.load_grid(path) == sweep_grid.parse_grid(["lr=0.003,0.01", "hidden=16,32,24/64,64", "seed=0-2"])


@pytest.mark.parametrize("tokens, fragment", [
    (["lr"], "a grid entry is field=values"),
    (["lr="], "a grid entry is field=values"),
    (["learning_rate=0.1"], "unknown config field 'learning_rate'"),
    (["lr=0.1,,0.2"], "empty value"),
    (["lr=0.1,-1"], r"lr must be a number in \(0, 1000000\]"),
    (["lr=0.1", "lr=0.2"], "names lr twice"),
    (["lr=0.1,0.1"], "lists a value twice"),
    (["seed=4-0"], "runs backwards"),
    (["seed=0-20000"], "more than 10,000"),
    (["hidden=16,0"], "must be positive"),
    (["activation=relu,swish"], "activation must be one of"),
    (["out=a,b"], "out cannot be swept"),
    ([], "the grid is empty"),
])
def test_mistakes_are_one_line(tokens, fragment):
    with pytest.raises(MlplabError, match=fragment) as caught:
        sweep_grid.parse_grid(tokens)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text, fragment", [
    ("lr = [0.1]\n", r"needs a \[grid\] table"),
    ("[grid]\nlr = 0.1\n", "must be a non-empty list"),
    ("[grid\n", "not valid TOML"),
])
def test_toml_mistakes_are_one_line(tmp_path, text, fragment):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(MlplabError, match=fragment):
        sweep_grid.load_grid(path)
    with pytest.raises(MlplabError, match="grid file .* does not exist"):
        sweep_grid.load_grid(tmp_path / "missing.toml")


def test_a_random_part_keeps_whole_settings_in_grid_order():
    grid = sweep_grid.parse_grid(["lr=0.001,0.003,0.01,0.03,0.1", "momentum=0,0.9", "seed=0-2"])
    part = sweep_grid.random_subset(grid, 7, seed=1)
    settings = {sweep_grid.setting_key(c) for c in part}
    assert len(settings) == 3 and len(part) == 9  # 7 rounded up to whole settings of 3 seeds
    everything = sweep_grid.expand(grid)
    assert part == [c for c in everything if sweep_grid.setting_key(c) in settings]
    assert part == sweep_grid.random_subset(grid, 7, seed=1)  # reproducible
    assert part != sweep_grid.random_subset(grid, 7, seed=2)
    assert sweep_grid.random_subset(grid, 1000) == everything
    with pytest.raises(MlplabError, match="at least 1"):
        sweep_grid.random_subset(grid, 0)


def test_settings_ignore_only_the_seed():
    a = {"lr": 0.01, "seed": 0}
    b = {"lr": 0.01, "seed": 3}
    c = {"lr": 0.03, "seed": 0}
    assert sweep_grid.setting_key(a) == sweep_grid.setting_key(b) != sweep_grid.setting_key(c)
