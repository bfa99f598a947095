"""`mlplab tune`: one worker of an Optuna study; the training flags are `mlplab train`'s."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from mlplab.choices import PRUNERS
from mlplab.cli.flags import SECTION_TITLES, add_field_flag, add_number, check_run_dir
from mlplab.cli.train_cmd import config_of
from mlplab.config import PRESETS, SECTION_TYPES, Bounds
from mlplab.errors import MlplabError

# Training flags tune does not take: --out names the study's folder, and trials print lines, not bars.
NOT_TRIAL_FLAGS = ("out", "progress")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tune` command."""
    parser = subparsers.add_parser(
        "tune",
        help="search hyperparameters with Optuna: one study, any number of workers and machines",
        description="Run trials of an Optuna study until it has --trials finished trials. Every worker "
        "started with the same --storage and --study shares the study (one machine with the "
        "default SQLite file or a journal file; many with postgresql://...). A killed worker's "
        "running trial is run again; a study started again goes on. Each trial trains the base "
        "config (the training flags, as for mlplab train) with the sampled settings on top. "
        'Needs pip install "mlplab[tune]".',
    )
    study = parser.add_argument_group("study")
    study.add_argument(
        "--study", metavar="NAME", help="the study's name (required); workers with the same storage and name share it"
    )
    add_number(
        study,
        "--trials",
        int,
        Bounds(1, 1_000_000),
        "finished trials (complete or pruned) the study ends at, counted over all its workers; required",
        metavar="N",
    )
    study.add_argument(
        "--space",
        metavar="FILE.toml",
        help="search space, one table per setting "
        "(default: lr, depth, width, weight_decay, batch_size; "
        "see --print-space)",
    )
    study.add_argument(
        "--storage",
        metavar="URL|FILE.log",
        help="where the study lives: sqlite:///FILE.db (default: sqlite:///STUDY_DIR/study.db); "
        "a journal file FILE.log for many workers on one machine (journal: STUDY_DIR/study.log); "
        "postgresql://user:password@host/database for workers on many machines",
    )
    study.add_argument(
        "--out",
        dest="study_dir",
        metavar="DIR",
        help="the study's folder: trials/NNNN run directories and best.toml (default: runs/tune-NAME)",
    )
    study.add_argument(
        "--pruner",
        choices=PRUNERS,
        default="median",
        metavar="PRUNER",
        help="how a trial behind the others is stopped early: median (below the median of "
        "earlier trials at the same epoch, once 5 trials have completed) | hyperband "
        "(default: median)",
    )
    add_number(
        study,
        "--heartbeat",
        int,
        Bounds(1, 3600),
        "a running trial's heartbeat; one silent for 3 "
        "heartbeats is run again (every worker of a study takes the same)",
        default=10,
        metavar="SECONDS",
    )
    add_number(
        study,
        "--batch",
        int,
        Bounds(1, 1024),
        "trains up to K trials at once: trials that can share a "
        "vectorised program (the same network shape, loss, optimizer, batch size and epochs, as mlplab sweep "
        "takes) train together as one batched program, the others one by one",
        default=1,
        metavar="K",
    )
    add_number(
        study,
        "--sampler-seed",
        int,
        Bounds(0, 2**32 - 1),
        "seeds this worker's sampler: a study run by one worker draws the same settings "
        "every time (workers sharing a study should each take their own)",
        default=None,
        metavar="N",
    )
    study.add_argument("--print-space", action="store_true", help="print the search space as TOML and exit")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start the base config from a lab's recipe")
    parser.add_argument("--config", metavar="FILE.toml", help="read the base config from a TOML file")
    for section, kind in SECTION_TYPES.items():
        group = parser.add_argument_group(f"training: {SECTION_TITLES[section]}")
        for field in dataclasses.fields(kind):
            if field.name not in NOT_TRIAL_FLAGS:
                add_field_flag(group, field)
    parser.set_defaults(func=execute, resume=None)


def execute(args: argparse.Namespace) -> int:
    """Resolve the base config and the space, then run trials until the study is done."""
    from mlplab.tune.space import default_space, load_space

    space = load_space(args.space) if args.space else default_space()
    if args.print_space:
        sys.stdout.write(space.to_toml())
        return 0
    missing = [flag for flag, value in (("--study NAME", args.study), ("--trials N", args.trials)) if value is None]
    if missing:
        raise MlplabError(f"mlplab tune needs {' and '.join(missing)} (see mlplab tune --help)")
    config = config_of(args)
    from mlplab.tune.objective import describe
    from mlplab.tune.storage import dashboard_command
    from mlplab.tune.study import TuneConfig, tune

    settings = TuneConfig(
        study=args.study,
        trials=args.trials,
        storage=args.storage,
        out=args.study_dir,
        space=args.space,
        pruner=args.pruner,
        heartbeat=args.heartbeat,
        batch=args.batch,
        sampler_seed=args.sampler_seed,
    )
    check_run_dir(settings.study_dir)
    if config.train.threads is not None:
        from mlplab.threads import check_threads

        check_threads(config.train.threads)
    _quiet_optuna()  # after the base config is checked, before the study opens
    result = tune(config, settings, space=space, say=_say)
    _say(
        f"study {args.study} done: {result.complete + result.pruned} trials finished "
        f"({result.complete} complete, {result.pruned} pruned)"
    )
    _say(f"browse it: {dashboard_command(settings.storage_url)}")
    if result.best_trial is None:
        _say("no trial completed, so there is no best config; try another space or --pruner")
        return 0
    _say(f"best: trial {result.best_trial}, val accuracy {result.best_value:.4f}: {describe(result.best_params)}")
    _say(f"best config: {result.best_path} (train it: mlplab train --config {result.best_path})")
    return 0


def _say(line: str) -> None:
    print(line, flush=True)  # workers' lines reach a log or a pipe as they happen


def _quiet_optuna() -> None:
    """Optuna's own INFO lines repeat ours; keep its warnings. A missing extra is one line here."""
    from mlplab.tune.storage import require_optuna

    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
