"""The `mlplab` command: subcommands, and one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from mlplab._version import __version__
from mlplab.cli import (
    data_cmd,
    eval_cmd,
    experiment_cmd,
    export_cmd,
    gradcheck_cmd,
    notebooks_cmd,
    plot_cmd,
    predict_cmd,
    serve_cmd,
    studio_cmd,
    sweep_cmd,
    train_cmd,
    tune_cmd,
)
from mlplab.cli.parser import EXIT_USER_ERROR, Parser
from mlplab.errors import MlplabError, describe_os_error


def build_parser() -> Parser:
    """The whole command line."""
    parser = Parser(prog="mlplab", description="Train, inspect and understand MLPs on MNIST-family data.")
    parser.add_argument("--version", action="version", version=f"mlplab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    train_cmd.register(subparsers)
    tune_cmd.register(subparsers)
    sweep_cmd.register(subparsers)
    eval_cmd.register(subparsers)
    export_cmd.register(subparsers)
    predict_cmd.register(subparsers)
    data_cmd.register(subparsers)
    gradcheck_cmd.register(subparsers)
    plot_cmd.register(subparsers)
    experiment_cmd.register(subparsers)
    serve_cmd.register(subparsers)
    studio_cmd.register(subparsers)
    notebooks_cmd.register(subparsers)
    presets = subparsers.add_parser(
        "presets", help="list mlplab's default recipe and the lab recipes usable with --preset"
    )
    presets.set_defaults(func=_list_presets)
    return parser


# What `mlplab presets` lists of each recipe, in this order; switched-off settings are left out.
_RECIPE_FIELDS = (
    "hidden",
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "scheduler",
    "batch_size",
    "epochs",
    "output",
    "loss",
    "label_smoothing",
    "normalize",
    "val_split",
    "val_size",
    "augment",
    "ema",
    "max_norm",
    "patience",
    "rotate",
    "scale",
    "shear",
    "translate",
    "elastic_alpha",
    "elastic_sigma",
    "stroke",
    "blur",
    "precision",
)
_OFF = (False, 0.0, "none", None, "32-true")


def _list_presets(args: argparse.Namespace) -> int:
    from mlplab.config import PRESETS, Config, field_owner, from_preset

    owner = field_owner()
    for name, config in [("(default)", Config()), *((n, from_preset(n)) for n in sorted(PRESETS))]:
        values = {field: getattr(getattr(config, owner[field]), field) for field in _RECIPE_FIELDS}
        shown = [f"{field}={_show(values[field])}" for field in _RECIPE_FIELDS if _said(field, values)]
        print(f"{name:<9} " + " ".join(shown))
    return 0


def _said(field: str, values: dict[str, object]) -> bool:
    """Whether `mlplab presets` names ``field``: always the layers; never a switched-off setting, nor a default
    that goes unsaid (the validation split and its size, the same for most recipes, and the distortions' sizes)."""
    from mlplab.config import DataConfig

    value = values[field]
    if field == "hidden":
        return True
    if field == "val_split":
        return value != DataConfig.val_split  # "none" too: all 60,000 images train
    if field == "val_size" and values["val_split"] == "none":
        return False
    return value not in _OFF and not (field in ("val_size", *_DISTORTIONS) and value == getattr(DataConfig, field))


# The sizes of the distortions, said only where a recipe changes them.
_DISTORTIONS = ("rotate", "scale", "shear", "translate", "elastic_alpha", "elastic_sigma")


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "more_positionals") or any(text.startswith("-") for text in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        # `mlplab predict RUN --top 2 seven.png`: argparse gives a command's positionals only the first group
        # of words; the command names where later ones go
        getattr(args, args.more_positionals).extend(extra)
    try:
        return args.func(args)
    except MlplabError as error:
        print(f"mlplab: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("mlplab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mlplab train | head`): stop quietly, as Unix tools do. Every
        # finished epoch is already in last.pt; point stdout at devnull so that Python's
        # final flush at exit cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    except OSError as error:
        # The disk is full, a path is read-only or names a file where a folder belongs: the
        # user can fix these, so they get one line, not a traceback.
        print(f"mlplab: error: {describe_os_error(error)}", file=sys.stderr)
        return EXIT_USER_ERROR


def console(argv: list[str] | None = None) -> int:
    """The ``mlplab`` executable (and ``python -m mlplab``): `main`, then the process's end.

    Once the command has returned, its work is saved; a Ctrl-C while the interpreter shuts down
    (joining threads, flushing) then ends the process quietly, as Ctrl-C ends any Unix tool,
    instead of a KeyboardInterrupt traceback from Python's shutdown code.
    """
    status = main(argv)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return status
