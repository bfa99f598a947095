"""`mlplab sweep`: train a grid (or a random part of one) as one vectorised program and write a sweep directory."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from mlplab.cli.flags import SECTION_TITLES, SEEDS, add_field_flag, add_number, given_fields
from mlplab.config import PRESETS, SECTION_TYPES, Bounds, Config, from_dict, read_toml, resolve_config
from mlplab.errors import MlplabError, describe_os_error

NOT_BASE_FLAGS = ("out",)  # --out names the sweep's folder
TOP_SETTINGS = 5  # settings listed at the end


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `sweep` command."""
    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of configurations together (vectorised) and write a sweep directory",
        description="Train every configuration of a grid over any config fields in vectorised programs: "
        "configurations that share the data, the network, the loss, the optimizer, the batch size "
        "and the epochs (differing in seed, lr, momentum, nesterov, weight_decay, scheduler, gamma, "
        "step_size, patience) train as one batched program, the others in programs of their own. The base config comes "
        "from the defaults, then --preset, then --config, then the flags below, as for mlplab train. "
        "Writes DIR/results.csv (one row per configuration), DIR/settings.csv (mean +- std over seeds), "
        "DIR/best.toml (rerun with mlplab train --config), DIR/sweep.toml, DIR/plan.json and "
        "DIR/checkpoints/ (each group saved after every epoch). The same command run again on a sweep "
        "that was stopped resumes it: finished members are kept, the rest train to the results an "
        "unstopped sweep gives; on a finished sweep it shows the results.",
    )
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument(
        "--grid",
        nargs="+",
        metavar="FIELD=VALUES",
        help="swept fields, e.g. lr=0.01,0.03 seed=0-4 (a range includes both ends)",
    )
    sweep.add_argument(
        "--grid-file",
        metavar="FILE.toml",
        help="read the grid from a TOML file's [grid] table (e.g. a sweep's sweep.toml)",
    )
    add_number(
        sweep,
        "--random",
        int,
        Bounds(1, 1_000_000),
        "train a random N of the grid's configurations (whole settings: all seeds of each drawn setting)",
        metavar="N",
    )
    add_number(sweep, "--random-seed", int, SEEDS, "seed of the --random draw", default=0, metavar="S")
    sweep.add_argument(
        "--out",
        dest="sweep_dir",
        metavar="DIR",
        help="the sweep's folder (one that holds this same sweep, stopped, is resumed; one that holds "
        "another sweep is refused)",
    )
    sweep.add_argument(
        "--resume",
        metavar="DIR",
        help="finish (or show) the sweep in DIR with its own sweep.toml: its base config, grid and random draw",
    )
    add_number(sweep, "--max-group-size", int, Bounds(1, 100_000), "train at most K members at once", metavar="K")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start the base config from a lab's recipe")
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        help="read the base config from a TOML file (a sweep.toml's [grid] and [random] are skipped)",
    )
    for section, kind in SECTION_TYPES.items():
        group = parser.add_argument_group(f"base config: {SECTION_TITLES[section]}")
        for field in dataclasses.fields(kind):
            if field.name not in NOT_BASE_FLAGS:
                add_field_flag(group, field)
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Read the grid and the base config, print the plan, train with a bar (or resume), print the best settings."""
    from mlplab.threads import monitor

    monitor()  # the CPU load is read from now on: the thread choice then sees more than its shortest window
    base, grid, random, out = _resumed(args) if args.resume else _asked(args)
    combinations = _combinations(grid, random)
    progress = SweepProgress(base.train.progress)
    try:
        outcome = _run(base, combinations, out, grid, random, args.max_group_size, progress)
    except KeyboardInterrupt:
        from mlplab.sweep.folder import read_saved

        progress.close()
        print(f"interrupted: {read_saved(out).describe()}; run the same command again to continue", flush=True)
        return 130
    finally:
        progress.close()
    _report(outcome, out)
    return 0


def _run(
    base: Config,
    combinations: list[dict[str, Any]],
    out: Path,
    grid: Any,
    random: tuple[int, int] | None,
    max_group_size: int | None,
    progress: SweepProgress,
) -> Any:
    """`run_sweep` with the progress shown; a write that fails says what the folder keeps and how to go on."""
    from mlplab.sweep.directory import run_sweep
    from mlplab.sweep.folder import SWEEP_FILE, read_saved

    try:
        return run_sweep(
            base,
            combinations,
            out,
            grid=grid,
            random=random,
            max_group_size=max_group_size,
            on_plan=progress.start,
            on_resume=progress.resume,
            on_epoch_end=[progress.on_epoch_end],
        )
    except OSError as error:
        if isinstance(error, BrokenPipeError) or not (out / SWEEP_FILE).is_file():
            raise  # nothing of the sweep was saved: main's one line says what failed
        # A full disk, a quota: every file is written atomically, so what was saved before stays.
        raise MlplabError(
            f"{describe_os_error(error)}; the sweep in {out} keeps what it saved "
            f"({read_saved(out).describe()}): once that is mended, run the same command again "
            "to continue"
        ) from error


def _report(outcome: Any, out: Path) -> None:
    """What was trained (or that nothing was), the best settings, the files and figures."""
    if outcome.complete:
        print(f"the sweep in {out} is complete: {len(outcome.rows)} configurations, nothing to train")
    else:
        kept = f" ({outcome.kept} more kept from before)" if outcome.kept else ""
        print(f"trained {len(outcome.rows) - outcome.kept} configurations in {outcome.seconds:.1f} s{kept}")
    print(settings_table(outcome.settings[:TOP_SETTINGS]))
    print(("files: " if outcome.complete else "wrote ") + ", ".join(str(path) for path in outcome.written))
    print(_figures(out))
    if outcome.best is not None:
        print(f"rerun the best: mlplab train --config {out / 'best.toml'}")


def _asked(args: argparse.Namespace) -> tuple[Config, Any, tuple[int, int] | None, Path]:
    """The sweep the flags ask for: (base config, grid, random draw, folder)."""
    from mlplab.sweep.grid import load_grid, parse_grid

    if (args.grid is None) == (args.grid_file is None):
        raise MlplabError("give the grid with --grid field=values ... or --grid-file FILE.toml (one of the two)")
    if args.sweep_dir is None:
        raise MlplabError("give the sweep's folder with --out DIR (or --resume DIR to finish a sweep there)")
    grid = parse_grid(args.grid) if args.grid else load_grid(args.grid_file)
    random = (args.random, args.random_seed) if args.random is not None else None
    return base_config(args), grid, random, Path(args.sweep_dir)


def _resumed(args: argparse.Namespace) -> tuple[Config, Any, tuple[int, int] | None, Path]:
    """The sweep in --resume DIR, from its sweep.toml (base, grid, draw), with the flags given on top."""
    from mlplab.sweep.folder import SWEEP_FILE
    from mlplab.sweep.grid import load_grid

    given = [
        flag
        for flag, value in (
            ("--grid", args.grid),
            ("--grid-file", args.grid_file),
            ("--random", args.random),
            ("--preset", args.preset),
            ("--config", args.config),
        )
        if value is not None
    ]
    if given:
        raise MlplabError(
            f"--resume takes the grid and the base config from {args.resume}/{SWEEP_FILE}; drop {', '.join(given)}"
        )
    if args.sweep_dir not in (None, args.resume):
        raise MlplabError("--out cannot move a resumed sweep; it continues in the --resume folder")
    path = Path(args.resume) / SWEEP_FILE
    if not path.is_file():
        raise MlplabError(
            f"{args.resume} holds no sweep (no {SWEEP_FILE}); start one there with "
            f"`mlplab sweep --grid ... --out {args.resume}`"
        )
    drawn = read_toml(path, "sweep file").get("random")
    random = (drawn["count"], drawn["seed"]) if isinstance(drawn, dict) else None
    base = resolve_config(None, None, given_fields(args), base=_read_base(path))
    return base, load_grid(path), random, Path(args.resume)


def _combinations(grid: Any, random: tuple[int, int] | None) -> list[dict[str, Any]]:
    """The grid's configurations, or its random draw (saying how many were drawn)."""
    from mlplab.sweep.grid import expand, random_subset, size

    if random is None:
        return expand(grid)
    combinations = random_subset(grid, *random)
    print(f"random search: {len(combinations)} of the grid's {size(grid)} configurations")
    return combinations


def _figures(out: Path) -> str:
    """Draw the sweep's figures under its lock; a missing matplotlib or a failed write is a note, not an error
    (the results are written)."""
    try:
        from mlplab.plots.sweep import plot_sweep
        from mlplab.sweep.folder import sweep_lock

        with sweep_lock(out):  # also removes the temporary figure a killed process left
            paths = plot_sweep(out)
    except MlplabError as error:
        return f"no figures: {error}"
    except OSError as error:
        if isinstance(error, BrokenPipeError):
            raise
        return f"no figures: {describe_os_error(error)}"
    return "figures: " + ", ".join(str(path) for path in paths) if paths else "no figures (nothing swept but seed)"


def base_config(args: argparse.Namespace) -> Config:
    """Defaults, then --preset, then --config (its [grid] and [random] tables skipped), then the flags."""
    return resolve_config(args.preset, _read_base(Path(args.config)) if args.config else None, given_fields(args))


def _read_base(path: Path) -> Config:
    data = read_toml(path)
    data.pop("grid", None)
    data.pop("random", None)
    return from_dict(data)


class SweepProgress:
    """The plan printed before training, then one tqdm bar over every group's every epoch (terminal only)."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.bar: Any = None
        self.done = 0  # group epochs a resumed sweep had saved

    def start(self, plan: Any) -> None:
        """Print the plan and open the bar (every group's epochs)."""
        from tqdm.auto import tqdm

        from mlplab.threads import active_governor

        print(plan.describe(), flush=True)
        governor = active_governor()  # the choice the plan was timed under, and the training runs under
        if governor is not None:
            print(f"threads: {governor.describe()}", flush=True)

        self.bar = tqdm(
            total=plan.group_epochs,
            initial=self.done,
            desc="sweep",
            unit="epoch",
            disable=None if self.show else True,
            mininterval=0.2,
        )

    def resume(self, saved: Any) -> None:
        """Say what a stopped sweep kept and what is left (before its plan); the bar starts at its saved epochs."""
        left = "" if saved.members is None else f"; {saved.members - saved.kept} to train"
        print(f"resuming the sweep in {saved.out}: {saved.describe()}{left}", flush=True)
        self.done = saved.epochs_done

    def on_epoch_end(self, report: Any) -> None:
        """Advance the bar by one group epoch, showing the group's best validation accuracy so far."""
        if self.bar is None:
            return
        accuracies = [r.get("val_accuracy") for r in report.records if r is not None]
        accuracies = [a for a in accuracies if a is not None]
        if accuracies:
            self.bar.set_postfix_str(
                f"group {report.group + 1} epoch {report.epoch} best val {100 * max(accuracies):.2f}%", refresh=False
            )
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def settings_table(settings: list[dict[str, Any]]) -> str:
    """The settings, best first: seeds, validation and test accuracy as mean +- std (%)."""

    def cell(row: dict[str, Any], name: str) -> str:
        mean, std = row[f"{name}_accuracy_mean"], row[f"{name}_accuracy_std"]
        return "-" if mean is None else f"{100 * mean:6.2f} +- {100 * std:.2f}"

    width = max([len("setting"), *(len(row["setting"]) for row in settings)])
    lines = [f"{'setting':<{width}}  seeds  {'val accuracy %':>15}  {'test accuracy %':>15}"]
    for row in settings:
        diverged = f" ({row['diverged']} diverged)" if row["diverged"] else ""
        lines.append(
            f"{row['setting']:<{width}}  {row['seeds']:>5}  {cell(row, 'val'):>15}  {cell(row, 'test'):>15}{diverged}"
        )
    return "\n".join(lines)
