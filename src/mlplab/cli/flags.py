"""What the commands that take a config share: one flag per config field, the flags given, the --out check."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from mlplab.config import INT64_MAX, Bounds, field_types
from mlplab.errors import MlplabError

SECTION_TITLES = {"data": "data", "model": "model", "optim": "optimizer and schedule", "train": "training loop"}


def add_field_flag(group: argparse._ArgumentGroup, field: dataclasses.Field) -> None:
    """Add the flag of one config field (``lr`` -> ``--lr``), typed, with its help, choices and default."""
    flag = "--" + field.name.replace("_", "-")
    default = field.default
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    notes = [str(field.metadata["bounds"])] if field.metadata.get("bounds") else []
    notes += [f"default: {shown}"] if default is not None else []
    help_text = field.metadata.get("help", "") + (f" ({'; '.join(notes)})" if notes else "")
    if isinstance(default, bool):
        group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        return
    kind: Any = str
    if field.name != "hidden" and isinstance(default, int):
        kind = int
    elif isinstance(default, float):
        kind = float
    choices = field.metadata.get("choices")
    # The help already lists a choice field's names: the metavar keeps argparse from listing them again.
    metavar = "W1,W2,..." if field.name == "hidden" else field.name.upper() if choices else None
    action: Any = group.add_argument(  # an argparse.Action, given a `bounds` attribute of its own
        flag, dest=field.name, type=kind, default=None, metavar=metavar, choices=choices, help=help_text
    )
    action.bounds = field.metadata.get("bounds")  # checked by the config section the value goes into


class Number:
    """An argparse ``type``: a whole number (``int``) or a number (``float``) within declared bounds.

    A value outside them gets argparse's one line, stating the range: ``argument --n: must be a
    whole number in [1, 1000]; got 100000000``.
    """

    def __init__(self, kind: type, bounds: Bounds) -> None:
        self.kind, self.bounds = kind, bounds
        self.__name__ = "whole number" if kind is int else "number"  # argparse names a type by it

    def __call__(self, text: str) -> int | float:
        try:
            value = self.kind(text)
        except ValueError:
            requirement = self.bounds.requirement(self.kind is int)
            raise argparse.ArgumentTypeError(f"must be {requirement}; got {text!r}") from None
        if not self.bounds.admits(value):
            raise argparse.ArgumentTypeError(f"must be {self.bounds.requirement(self.kind is int)}; got {text}")
        return value


def add_number(
    parser: Any, flag: str, kind: type, bounds: Bounds, help: str, *, hide_default: bool = False, **options: Any
) -> argparse.Action:
    """Add a number flag whose declared range is checked as it is parsed and stated in its help, with
    its default (``hide_default=True`` leaves the default to ``help``'s own words)."""
    default = options.get("default")
    notes = f"{bounds}" + (f"; default: {default}" if default is not None and not hide_default else "")
    action = parser.add_argument(flag, type=Number(kind, bounds), help=f"{help} ({notes})", **options)
    action.bounds = bounds
    return action


def field_bounds(name: str) -> Bounds:
    """The declared range of the config field ``name``: a command's flag for the same number takes the same."""
    return field_types()[name].metadata["bounds"]


# Seeds, wherever a command takes one: what `mlplab train --seed` takes.
SEEDS = Bounds(0, INT64_MAX)


def given_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields set on the command line, ``{field: value}`` (flags left out are None)."""
    return {name: getattr(args, name) for name in field_types() if getattr(args, name, None) is not None}


def check_run_dir(path: Path) -> None:
    """Refuse an --out that cannot become a run directory: a file, or a place that cannot be written."""
    check_output_dir(path, "--out")


def check_output_dir(path: Path, flag: str) -> None:
    """Refuse a folder flag (``--out``, ``--report``) that names a file or a place that cannot be written,
    before any work is done.

    Nothing is created: the nearest folder that exists must be writable (a read-only file
    system counts). Places the kernel refuses anyway (/proc) fail at creation, as one line.
    """
    existing = next(folder for folder in (path, *path.parents) if folder.exists() or folder == Path("."))
    if existing == path and not path.is_dir():
        raise MlplabError(f"{flag} {path} is a file, not a folder; choose another {flag}")
    if not existing.is_dir():
        raise MlplabError(f"{flag} {path} cannot be created: {existing} is a file, not a folder; choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MlplabError(
            f"{flag} {path} cannot be written: {existing} is read-only or not yours to write; choose another {flag}"
        )
