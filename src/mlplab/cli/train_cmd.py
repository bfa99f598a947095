"""`mlplab train`: flags map one to one onto the config fields; a preset or a TOML file sets the base."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from mlplab.cli.flags import SECTION_TITLES, add_field_flag, check_run_dir, given_fields
from mlplab.cli.progress import TrainProgress
from mlplab.config import PRESETS, SECTION_TYPES, Config, from_dict, load_config, resolve_config, to_toml
from mlplab.errors import MlplabError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` command."""
    parser = subparsers.add_parser(
        "train",
        help="train an MLP and write a run directory",
        description="Train an MLP. Settings come from the defaults, then --preset, then --config, "
        "then the flags below (later wins).",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a lab's recipe (see `mlplab presets`)")
    parser.add_argument(
        "--config", metavar="FILE.toml", help="read settings from a TOML file (e.g. a run's config.toml)"
    )
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    for section, kind in SECTION_TYPES.items():
        group = parser.add_argument_group(SECTION_TITLES[section])
        for field in dataclasses.fields(kind):
            add_field_flag(group, field)
    parser.set_defaults(func=execute)


def config_of(args: argparse.Namespace) -> Config:
    """Defaults, then the resumed run's / preset's config, then --config, then flags
    (`mlplab.config.resolve_config`)."""
    if args.resume:
        from mlplab.runs.directory import last_checkpoint
        from mlplab.training import load_checkpoint

        config = from_dict(load_checkpoint(last_checkpoint(Path(args.resume)))["config"])
        if args.preset and args.preset != config.preset:
            # The checkpoint's config is the base of a resume: a preset would be ignored.
            saved = f"preset {config.preset}" if config.preset else "no preset"
            raise MlplabError(
                f"--preset cannot change a resumed run: {args.resume} continues with its "
                f"checkpoint's config ({saved}); drop --preset, or start a new run with another --out"
            )
    else:
        config = None
    flags = given_fields(args)
    if args.resume:
        if flags.get("out") not in (None, args.resume):
            raise MlplabError("--out cannot move a resumed run; it continues in the --resume directory")
        flags["out"] = args.resume
    file = load_config(args.config) if args.config else None
    return resolve_config(args.preset, file, flags, base=config)


def execute(args: argparse.Namespace) -> int:
    """Resolve the config, then train (or print it)."""
    config = config_of(args)
    if args.print_config:
        sys.stdout.write(to_toml(config))
        return 0
    from mlplab.runs.directory import check_startable
    from mlplab.threads import check_threads
    from mlplab.training.runner import prepare, train_prepared
    from mlplab.training.tracking import trackers

    # Refuse what would fail later before any data loads or anything is written.
    check_run_dir(Path(config.train.out or "runs"))
    if config.train.out is not None:
        check_startable(Path(config.train.out), bool(args.resume))  # in use, or holding a run
    if config.train.threads is not None:
        check_threads(config.train.threads)
    tracking = trackers(config)  # a missing extra fails before any data loads

    printer = TrainProgress(config, progress=config.train.progress)
    try:
        printer.setup = prepare(config)
        train_prepared(printer.setup, callbacks=[printer, *tracking], resume=bool(args.resume))
    except KeyboardInterrupt:
        printer.interrupted()
        return 130
    except OSError as error:
        # A write through an open file (a full disk) names no path: name the run directory.
        if error.filename is None and printer.run_dir is not None and not isinstance(error, BrokenPipeError):
            error.filename = str(printer.run_dir)
        raise
    return 0
