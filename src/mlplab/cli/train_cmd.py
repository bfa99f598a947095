"""`mlplab train`: flags map one to one onto the config fields; a preset or a TOML file sets the base."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from mlplab.cli.progress import TrainProgress
from mlplab.config import (PRESETS, SECTION_TYPES, Config, apply_overrides, field_types, from_dict,
                           from_preset, load_config, to_toml)
from mlplab.errors import MlplabError

SECTION_TITLES = {"data": "data", "model": "model", "optim": "optimizer and schedule", "train": "training loop"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` command."""
    parser = subparsers.add_parser(
        "train", help="train an MLP and write a run directory",
        description="Train an MLP. Settings come from the defaults, then --preset, then --config, "
                    "then the flags below (later wins).",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a lab's recipe (see `mlplab presets`)")
    parser.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file (e.g. a run's config.toml)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    for section, kind in SECTION_TYPES.items():
        group = parser.add_argument_group(SECTION_TITLES[section])
        for field in dataclasses.fields(kind):
            add_field_flag(group, field)
    parser.set_defaults(func=execute)


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
    group.add_argument(flag, dest=field.name, type=kind, default=None, metavar=metavar, choices=choices,
                       help=help_text)


def resolve_config(args: argparse.Namespace) -> Config:
    """Defaults, then the resumed run's / preset's config, then --config, then flags."""
    if args.resume:
        from mlplab.training import load_checkpoint
        from mlplab.training.rundir import last_checkpoint

        config = from_dict(load_checkpoint(last_checkpoint(Path(args.resume)))["config"])
        if args.preset and args.preset != config.preset:
            # The checkpoint's config is the base of a resume: a preset would be ignored.
            saved = f"preset {config.preset}" if config.preset else "no preset"
            raise MlplabError(f"--preset cannot change a resumed run: {args.resume} continues with its "
                              f"checkpoint's config ({saved}); drop --preset, or start a new run with another --out")
    elif args.preset:
        config = from_preset(args.preset)
    else:
        config = Config()
    if args.config:
        file_config = load_config(args.config)
        config = apply_overrides(config, _changed_fields(file_config)) if args.preset else file_config
    flags = {name: getattr(args, name) for name in field_types() if getattr(args, name, None) is not None}
    if args.resume:
        if flags.get("out") not in (None, args.resume):
            raise MlplabError("--out cannot move a resumed run; it continues in the --resume directory")
        flags["out"] = args.resume
    return apply_overrides(config, flags)


def _changed_fields(config: Config) -> dict[str, Any]:
    """The fields of ``config`` that differ from the defaults (a file layered over a preset)."""
    default = Config()
    return {f.name: getattr(getattr(config, s), f.name) for s, kind in SECTION_TYPES.items()
            for f in dataclasses.fields(kind)
            if getattr(getattr(config, s), f.name) != getattr(getattr(default, s), f.name)}


def execute(args: argparse.Namespace) -> int:
    """Resolve the config, then train (or print it)."""
    config = resolve_config(args)
    if args.print_config:
        sys.stdout.write(to_toml(config))
        return 0
    from mlplab.threads import check_threads
    from mlplab.training.runner import prepare, train_prepared
    from mlplab.training.tracking import trackers

    # Refuse what would fail later before any data loads or anything is written.
    check_run_dir(Path(config.train.out or "runs"))
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


def check_run_dir(path: Path) -> None:
    """Refuse an --out that cannot become a run directory: a file, or a place that cannot be written.

    Nothing is created: the nearest folder that exists must be writable (a read-only file
    system counts). Places the kernel refuses anyway (/proc) fail at creation, as one line.
    """
    existing = next(folder for folder in (path, *path.parents) if folder.exists() or folder == Path("."))
    if existing == path and not path.is_dir():
        raise MlplabError(f"--out {path} is a file, not a folder; choose another --out")
    if not existing.is_dir():
        raise MlplabError(f"--out {path} cannot be created: {existing} is a file, not a folder; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MlplabError(f"--out {path} cannot be written: {existing} is read-only or not yours to write; "
                          "choose another --out")
