"""A sweep's configurations: a grid (or a random part of one) over any config fields.

On the command line, one ``field=values`` per swept field::

    lr=0.003,0.01,0.03            three values (commas separate the values of a field)
    hidden=16,32,24/64,64         two layer lists (slashes separate the values of ``hidden``)
    seed=0-4                      a range of whole numbers, both ends included: 0, 1, 2, 3, 4
    activation=relu,tanh          choices, by name

or in a TOML file, one key per field, each a list (``seed`` may also be ``"0-4"``)::

    [grid]
    lr = [0.003, 0.01, 0.03]
    hidden = [[16, 32, 24], [64, 64]]
    seed = "0-4"

Every value is checked as ``mlplab train`` checks its flag, so a mistake is one line naming
the field. The grid is the product of the fields' values, in the order given, the last field
varying fastest; `random_subset` keeps a random part of it. Configurations that differ only
in ``seed`` are one *setting* of the sweep (`setting_key`): its results are reported as the
mean and spread over the seeds.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

from mlplab.config import field_owner, read_toml, setting_value
from mlplab.errors import MlplabError

Grid = dict[str, list[Any]]  # field -> its values, in the order given
# Fields a sweep cannot vary: where the runs are written, and how they are shown.
NOT_SWEPT = {"out": "each member's run directory is chosen by the sweep", "progress": "a sweep shows one bar"}


def parse_grid(tokens: list[str]) -> Grid:
    """The grid of ``field=values`` tokens (see the module docstring), checked; one-line errors."""
    grid: Grid = {}
    for token in tokens:
        name, sep, text = token.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not text.strip():
            raise MlplabError(f"a grid entry is field=values, like lr=0.01,0.03 or seed=0-4; got {token!r}")
        if name in grid:
            raise MlplabError(f"the grid names {name} twice; give all its values in one entry, comma-separated")
        grid[name] = _values(name, _split(name, text.strip()))
    return _checked(grid)


def load_grid(path: str | Path) -> Grid:
    """The grid of a TOML file's ``[grid]`` table (see the module docstring), checked."""
    path = Path(path)
    table = read_toml(path, "grid file")
    if not isinstance(table.get("grid"), dict) or not table["grid"]:
        raise MlplabError(f"{path} needs a [grid] table with one list per swept field, like lr = [0.01, 0.03]")
    grid: Grid = {}
    for name, values in table["grid"].items():
        name = name.replace("-", "_")
        if isinstance(values, str):
            values = _split(name, values)
        elif not isinstance(values, list) or not values:
            raise MlplabError(f'{path}: grid.{name} must be a non-empty list of values (or a range like "0-4")')
        grid[name] = _values(name, values)
    return _checked(grid)


def _split(name: str, text: str) -> list[Any]:
    """The values of one field as written on the command line: a range ``a-b``, or a list."""
    if name == "hidden":
        return [part.strip() for part in text.split("/")]
    parts = [part.strip() for part in text.split(",")]
    if "" in parts:
        raise MlplabError(f"{name} has an empty value in {text!r}")
    if len(parts) == 1 and _is_range(parts[0]):
        low, high = (int(end) for end in parts[0].split("-"))
        if high < low:
            raise MlplabError(f"the range {parts[0]} of {name} runs backwards; write it low-high, like 0-4")
        if high - low >= 10_000:
            raise MlplabError(f"the range {parts[0]} of {name} has more than 10,000 values")
        return list(range(low, high + 1))
    return parts


def _is_range(text: str) -> bool:
    low, sep, high = text.partition("-")
    return bool(sep) and low.isdigit() and high.isdigit()


def _values(name: str, raw: list[Any]) -> list[Any]:
    """Each value converted and checked as its config field is; duplicates refused."""
    if name not in field_owner():
        raise MlplabError(f"unknown config field {name!r} in the grid; see `mlplab train --help` for the fields")
    if name in NOT_SWEPT:
        raise MlplabError(f"{name} cannot be swept: {NOT_SWEPT[name]}")
    values = [setting_value(name, value) for value in raw]
    if len(set(map(repr, values))) != len(values):
        raise MlplabError(f"{name} lists a value twice: {', '.join(map(str, raw))}")
    return values


def _checked(grid: Grid) -> Grid:
    if not grid:
        raise MlplabError("the grid is empty; give at least one field=values, like lr=0.01,0.03")
    return grid


def expand(grid: Grid) -> list[dict[str, Any]]:
    """Every combination of the grid's values as ``{field: value}`` overrides, the last field fastest."""
    names = list(grid)
    return [dict(zip(names, combination, strict=True)) for combination in itertools.product(*(grid[n] for n in names))]


def size(grid: Grid) -> int:
    """How many configurations the grid holds."""
    count = 1
    for values in grid.values():
        count *= len(values)
    return count


def random_subset(grid: Grid, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` distinct combinations of the grid, drawn at random (by ``seed``), in grid order.

    Whole settings are drawn: when ``seed`` is swept, a drawn setting keeps all its seeds, so
    its spread over seeds can still be reported.
    """
    if count < 1:
        raise MlplabError(f"a random search needs at least 1 configuration; got {count}")
    combinations = expand(grid)
    keys = list(dict.fromkeys(setting_key(c) for c in combinations))
    per_setting = len(combinations) // len(keys)
    wanted = -(-count // per_setting)  # settings to draw, rounding up
    if wanted >= len(keys):
        return combinations
    chosen = set(random.Random(seed).sample(keys, wanted))
    return [c for c in combinations if setting_key(c) in chosen]


def setting_key(overrides: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """What a configuration is apart from its seed: configurations with one key are one setting."""
    return tuple((name, value) for name, value in overrides.items() if name != "seed")


def describe(overrides: dict[str, Any]) -> str:
    """``lr=0.01 hidden=16,32,24``: a configuration as the command line writes it."""

    def text(value: Any) -> str:
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    return " ".join(f"{name}={text(value)}" for name, value in overrides.items())
