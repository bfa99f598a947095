"""Every number of every command has a declared range, checked before any work: a typo of a few
extra zeros gets one line, never minutes of work, gigabytes of memory or a traceback."""

from __future__ import annotations

import argparse
import math

import pytest

from helpers import cli_status
from mlplab.cli.flags import Number
from mlplab.cli.main import build_parser


def _actions(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, action) for every flag of every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        else:
            yield path, action


NUMBER_FLAGS = [(path, action) for path, action in _actions(build_parser())
                if action.type in (int, float) or isinstance(action.type, Number)
                or getattr(action, "bounds", None) is not None]


def _name(path, action):
    return " ".join((*path, action.option_strings[0] if action.option_strings else action.dest))


def test_the_commands_have_number_flags_to_check():
    names = {_name(path, action) for path, action in NUMBER_FLAGS}
    assert {"show samples --n", "show augment --count", "experiment symmetry --seeds", "experiment linreg --samples",
            "train --epochs", "serve --port", "tune --trials", "sweep --random"} <= names
    assert len(NUMBER_FLAGS) > 100  # train's, sweep's, tune's config flags and every command's own


@pytest.mark.parametrize("path, action", NUMBER_FLAGS, ids=[_name(*entry) for entry in NUMBER_FLAGS])
def test_every_number_flag_declares_a_finite_range(path, action):
    bounds = getattr(action, "bounds", None)
    assert bounds is not None and bounds.high is not None and math.isfinite(bounds.high), _name(path, action)
    assert action.default is None or bounds.admits(action.default)


PARSED = [(path, action) for path, action in NUMBER_FLAGS if isinstance(action.type, Number)]


@pytest.mark.parametrize("path, action", PARSED, ids=[_name(*entry) for entry in PARSED])
def test_a_number_past_its_range_is_one_line_as_it_is_parsed(path, action, capsys):
    bounds = action.type.bounds
    too_big = str(int(bounds.high) + 1 if action.type.kind is int else bounds.high * 10)
    assert cli_status([*path, action.option_strings[0], too_big]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"argument {action.option_strings[0]}: must be" in lines[0] and too_big in lines[0]


@pytest.mark.parametrize("argv, message", [
    (["show", "samples", "--n", "100000000"], "argument --n: must be a whole number in [1, 1000]"),
    (["show", "augment", "--count", "100000000"], "argument --count: must be a whole number in [1, 100]"),
    (["experiment", "symmetry", "--seeds", "100000000000"], "seeds must be a whole number in [1, 100000]"),
    (["experiment", "linreg", "--samples", "1000000000000"], "samples must be a whole number in [2, 100000000]"),
    (["train", "--hidden", "100000000", "--no-progress"], "needs about 3.1 TB of memory"),
    (["train", "--config", "/dev/zero"], "config file /dev/zero is not a regular file"),
])
def test_the_numbers_a_hostile_user_tried_are_refused_at_once(argv, message, tmp_path, capsys):
    assert cli_status([*argv, *(["--out", str(tmp_path / "out")] if argv[0] == "train" else [])]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_settings_files_that_are_not_small_text_files_are_one_line(tmp_path, capsys):
    import os

    pipe = tmp_path / "pipe.toml"
    os.mkfifo(pipe)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 1_000_000 + "\n")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe lr = 1")
    for path, message in [(pipe, "is not a regular file (a device or a pipe?); give a TOML file"),
                          (tmp_path, "is a folder; give a TOML file"),
                          (big, "is over 1,000,000 bytes: not a settings file; give a TOML file"),
                          (binary, "is not UTF-8 text (invalid start byte at byte 0)")]:
        assert cli_status(["train", "--config", str(path)]) == 2
        assert capsys.readouterr().err == f"mlplab: error: config file {path} {message}\n"
