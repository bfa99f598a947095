"""The search space of `mlplab tune`: which settings a study samples, and from what.

A space is a TOML file with one table per setting, named as the config field (the
``mlplab train`` flag without its dashes), plus ``depth`` and ``width``::

    [lr]                  # a number from low to high; log = true samples on a log scale
    low = 0.001
    high = 0.3
    log = true

    [hidden]              # one of a list: the layer widths, as --hidden takes them
    choices = ["16,32,24", "64,64"]

    [depth]               # whole numbers (the field's type decides); step = 2 takes every other one
    low = 1
    high = 3

    [width]               # depth and width go together: depth hidden layers of width units
    low = 16
    high = 256
    log = true

    [batch_size]
    choices = [64, 128, 256, 512]

A table takes either ``choices`` (a list; any field) or ``low`` and ``high`` (number fields),
with ``log`` or ``step`` optionally. Every value is checked as ``mlplab train`` checks the
field, and every mistake is one line naming the file and the table. Settings that say where
a run goes or what it is compared on (out, device, the data and its validation split, the
seed) cannot be tuned.

Nothing here imports Optuna or torch: a trial is anything with Optuna's ``suggest_int``,
``suggest_float`` and ``suggest_categorical``.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.config import COUNT, INT64_MAX, Bounds, field_types, setting_value
from mlplab.errors import MlplabError

# mlplab tune's space when no --space is given: the settings that matter most for an MLP.
DEFAULT_SPACE = """\
# The default search space of mlplab tune (mlplab tune --print-space shows it).

# Learning rate on a log scale (the peak rate of the default onecycle schedule).
[lr]
low = 0.001
high = 0.5
log = true

# depth hidden layers of width units each (together they replace --hidden).
[depth]
low = 1
high = 3

[width]
low = 16
high = 512
log = true

# L2 penalty on a log scale.
[weight_decay]
low = 1e-06
high = 0.01
log = true

[batch_size]
choices = [64, 128, 256, 512]
"""

# The two settings that are not config fields, with their bounds: `depth` hidden layers of
# `width` units each make `hidden` (depth 0 is logistic regression).
SHAPE = {"depth": Bounds(0, 100), "width": COUNT}

# Fields a study cannot tune, with the reason the error gives.
_WHERE = "it says where or how a run is written or shown, not what it learns"
_DATA = "it picks the data the trials learn from and are compared on"
FIXED = {
    "out": "each trial gets its own run directory in the study's folder",
    "progress": _WHERE,
    "log_batches": _WHERE,
    "tensorboard": _WHERE,
    "wandb": _WHERE,
    "wandb_project": _WHERE,
    "device": "it is the machine, not the model: set it with --device",
    "threads": "it is the machine, not the model: set it with --threads",
    "dataset": _DATA,
    "data_dir": _DATA,
    "cache_dir": _DATA,
    "download": _DATA,
    "val_split": _DATA,
    "val_size": _DATA,
    "seed": "the best seed is luck, not a setting; every trial trains with the same --seed",
}

TABLE_KEYS = ("low", "high", "log", "step", "choices")


@dataclass(frozen=True)
class Dimension:
    """One sampled setting: ``choices``, or numbers from ``low`` to ``high`` (ints when ``whole``)."""

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    whole: bool = False  # sample integers

    def sample(self, trial: Any) -> Any:
        """Draw this setting's value from an Optuna trial (a retried trial gets its stored value back)."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        low, high = self.low, self.high
        if low is None or high is None:
            raise ValueError(f"the dimension {self.name!r} needs choices, or a low and a high")
        if self.whole:
            return trial.suggest_int(self.name, int(low), int(high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, low, high, step=self.step, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        """The table of this setting, as the TOML file gives it (builtins only)."""
        if self.choices is not None:
            return {"choices": list(self.choices)}
        table: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            table["log"] = True
        if self.step is not None:
            table["step"] = self.step
        return table


@dataclass(frozen=True)
class Space:
    """A search space: the dimensions in file order. Build one with `parse_space`, `load_space` or `default_space`."""

    dimensions: tuple[Dimension, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The sampled settings, in order (``("lr", "depth", "width", ...)``)."""
        return tuple(dimension.name for dimension in self.dimensions)

    def sample(self, trial: Any) -> dict[str, Any]:
        """One value per dimension, drawn from ``trial``: the trial's params."""
        return {dimension.name: dimension.sample(trial) for dimension in self.dimensions}

    def overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """Config overrides (``{field: value}``) for sampled ``params``: depth and width become ``hidden``."""
        fields = {name: value for name, value in params.items() if name not in SHAPE}
        if "depth" in params:
            fields["hidden"] = (params["width"],) * params["depth"]
        return fields

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{setting: table}``, as the TOML file gives it."""
        return {dimension.name: dimension.to_dict() for dimension in self.dimensions}

    def to_toml(self) -> str:
        """The space as a TOML file that `parse_space` reads back to the same space."""
        lines: list[str] = []
        for name, table in self.to_dict().items():
            lines.append(f"[{name}]")
            lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
            lines.append("")
        return "\n".join(lines)


def default_space() -> Space:
    """mlplab's default space: lr, depth and width, weight decay and batch size (`DEFAULT_SPACE`)."""
    return parse_space(DEFAULT_SPACE, "(default)")


def load_space(path: str | Path) -> Space:
    """Read a search space TOML file (see the module docstring for the format)."""
    from mlplab.files import read_settings_text

    return parse_space(read_settings_text(path, "search space file"), str(path))


def parse_space(text: str, source: str = "(text)") -> Space:
    """Parse and check a search space given as TOML text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MlplabError(f"search space {source} is not valid TOML: {error}") from None
    if not data:
        raise MlplabError(f"search space {source} has no settings; add a table like [lr] low = 0.001 high = 0.3")
    try:
        dimensions = tuple(_dimension(name, table) for name, table in data.items())
        _check_shape(dimensions)
    except MlplabError as error:
        raise MlplabError(f"search space {source}: {error}") from None
    return Space(dimensions)


def _dimension(name: str, table: Any) -> Dimension:
    """One checked table of the file."""
    _check_name(name)
    if not isinstance(table, dict):
        raise MlplabError(f"{name} must be a table like [{name}] with low and high, or choices; got {table!r}")
    unknown = [key for key in table if key not in TABLE_KEYS]
    if unknown:
        raise MlplabError(f"[{name}] has unknown key {unknown[0]!r}; a table takes {', '.join(TABLE_KEYS)}")
    if "choices" in table:
        extra = [key for key in ("low", "high", "log", "step") if key in table]
        if extra:
            raise MlplabError(f"[{name}] gives both choices and {extra[0]}; give choices, or low and high")
        return Dimension(name, choices=_choices(name, table["choices"]))
    return _range(name, table)


def _check_name(name: str) -> None:
    """Refuse a setting that is not a config field, depth or width, or that cannot be tuned."""
    if name in FIXED:
        raise MlplabError(f"[{name}] cannot be tuned: {FIXED[name]}")
    if name in SHAPE or name in field_types():
        return
    names = [*SHAPE, *(field for field in field_types() if field not in FIXED)]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean [{close[0]}]?)" if close else ""
    raise MlplabError(
        f"unknown setting [{name}]{hint}; a table is named as a config field "
        "(see mlplab train --help), or depth or width"
    )


def _choices(name: str, values: Any) -> tuple[Any, ...]:
    """The choices of a table, each checked as the field checks it; hidden's as ``"16,32"`` strings."""
    if not isinstance(values, list) or not values:
        raise MlplabError(f"[{name}] choices must be a non-empty list like choices = [64, 128]; got {values!r}")
    if name == "hidden":
        checked = [_hidden_text(value) for value in values]
    else:
        checked = [_checked(name, value, "a choice") for value in values]
    for index, value in enumerate(checked):
        if value in checked[:index]:
            raise MlplabError(f"[{name}] lists the choice {value!r} twice")
    return tuple(checked)


def _hidden_text(value: Any) -> str:
    """Layer widths as one canonical string (``"16,32,24"``, ``"none"``): choices Optuna can store."""
    widths = _checked("hidden", value, "a choice")
    return ",".join(map(str, widths)) if widths else "none"


def _range(name: str, table: dict[str, Any]) -> Dimension:
    """A low/high table: ints or floats as the field is, with log or step."""
    whole = _whole(name)
    if "low" not in table or "high" not in table:
        raise MlplabError(f"[{name}] needs low and high (or choices = [...])")
    low, high = (_bound(name, key, table[key], whole) for key in ("low", "high"))
    if not low < high:
        raise MlplabError(f"[{name}] low must be below high; got low = {low}, high = {high}")
    log = table.get("log", False)
    if not isinstance(log, bool):
        raise MlplabError(f"[{name}] log must be true or false; got {log!r}")
    if log and low <= 0:
        raise MlplabError(f"[{name}] log = true needs low > 0; got low = {low}")
    step = table.get("step")
    if step is not None:
        if log:
            raise MlplabError(f"[{name}] takes log or step, not both")
        step = _number(name, "step", step, whole)
        if step <= 0 or step > high - low:
            raise MlplabError(f"[{name}] step must be above 0 and at most high - low; got {step}")
    return Dimension(name, low=low, high=high, log=log, step=step, whole=whole)


def _whole(name: str) -> bool:
    """Whether a number table samples integers; a field that is not a number takes choices only."""
    if name in SHAPE:
        return True
    kind = str(field_types()[name].type)
    if name == "hidden" or "bool" in kind or not ("int" in kind or "float" in kind):
        raise MlplabError(f"[{name}] takes choices = [...], not low and high")
    return "float" not in kind


def _bound(name: str, key: str, value: Any, whole: bool) -> float:
    """``low`` or ``high``: a number of the field's kind that the field accepts."""
    number = _number(name, key, value, whole)
    _checked(name, number, key)
    return number


def _number(name: str, key: str, value: Any, whole: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MlplabError(f"[{name}] {key} must be a number; got {value!r}")
    if whole:
        if isinstance(value, float) and not value.is_integer():
            raise MlplabError(f"[{name}] {key} must be a whole number; got {value!r}")
        return int(value)
    if not math.isfinite(value):
        raise MlplabError(f"[{name}] {key} must be a finite number; got {value!r}")
    return float(value)


def _checked(name: str, value: Any, what: str) -> Any:
    """``value`` as the field takes it (checked as ``mlplab train`` checks it); ``what`` names it in errors."""
    if name in SHAPE:
        bounds: Bounds = SHAPE[name]
        if isinstance(value, bool) or not isinstance(value, int) or not bounds.admits(value) or value > INT64_MAX:
            raise MlplabError(f"[{name}] {what} must be {bounds.requirement(whole=True)}; got {value!r}")
        return value
    try:
        return setting_value(name, value)
    except MlplabError as error:
        raise MlplabError(f"[{name}] {what}: {error}") from None


def _check_shape(dimensions: tuple[Dimension, ...]) -> None:
    """depth and width come as a pair, and replace hidden."""
    names = {dimension.name for dimension in dimensions}
    if ("depth" in names) != ("width" in names):
        given, missing = ("depth", "width") if "depth" in names else ("width", "depth")
        raise MlplabError(f"[{given}] needs [{missing}] too: the net gets depth hidden layers of width units")
    if "depth" in names and "hidden" in names:
        raise MlplabError("[hidden] and [depth]/[width] both set the hidden layers; keep one of them")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
