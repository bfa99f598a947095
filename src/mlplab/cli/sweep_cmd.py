"""`mlplab sweep`: train a grid (or a random part of one) as one vectorised program and write a sweep directory."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from mlplab.cli.flags import SEEDS, SECTION_TITLES, add_field_flag, add_number, given_fields
from mlplab.config import PRESETS, Bounds, SECTION_TYPES, Config, from_dict, read_toml, resolve_config
from mlplab.errors import MlplabError

NOT_BASE_FLAGS = ("out",)  # --out names the sweep's folder
TOP_SETTINGS = 5  # settings listed at the end


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `sweep` command."""
    parser = subparsers.add_parser(
        "sweep", help="train a grid of configurations together (vectorised) and write a sweep directory",
        description="Train every configuration of a grid over any config fields in vectorised programs: "
                    "configurations that share the data, the network, the loss, the optimizer, the batch size "
                    "and the epochs (differing in seed, lr, momentum, nesterov, weight_decay, scheduler, gamma, "
                    "step_size, patience) train as one batched program, the others in programs of their own. The base config comes "
                    "from the defaults, then --preset, then --config, then the flags below, as for mlplab train. "
                    "Writes DIR/results.csv (one row per configuration), DIR/settings.csv (mean +- std over seeds), "
                    "DIR/best.toml (rerun with mlplab train --config), DIR/sweep.toml and DIR/plan.json.")
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--grid", nargs="+", metavar="FIELD=VALUES",
                       help="swept fields, e.g. lr=0.01,0.03 seed=0-4 (a range includes both ends)")
    sweep.add_argument("--grid-file", metavar="FILE.toml", help="read the grid from a TOML file's [grid] table "
                                                                "(e.g. a sweep's sweep.toml)")
    add_number(sweep, "--random", int, Bounds(1, 1_000_000), "train a random N of the grid's configurations "
               "(whole settings: all seeds of each drawn setting)", metavar="N")
    add_number(sweep, "--random-seed", int, SEEDS, "seed of the --random draw", default=0, metavar="S")
    sweep.add_argument("--out", dest="sweep_dir", metavar="DIR", required=True,
                       help="the sweep's folder (refused if it already holds a sweep)")
    add_number(sweep, "--max-group-size", int, Bounds(1, 100_000), "train at most K members at once", metavar="K")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start the base config from a lab's recipe")
    parser.add_argument("--config", metavar="FILE.toml", help="read the base config from a TOML file "
                                                              "(a sweep.toml's [grid] and [random] are skipped)")
    for section, kind in SECTION_TYPES.items():
        group = parser.add_argument_group(f"base config: {SECTION_TITLES[section]}")
        for field in dataclasses.fields(kind):
            if field.name not in NOT_BASE_FLAGS:
                add_field_flag(group, field)
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Read the grid and the base config, print the plan, train with a bar, print the best settings."""
    from mlplab.threads import monitor

    monitor()  # the CPU load is read from now on: the thread choice then sees more than its shortest window
    from mlplab.sweep.directory import check_sweep_dir, run_sweep
    from mlplab.sweep.grid import expand, load_grid, parse_grid, random_subset, size

    if (args.grid is None) == (args.grid_file is None):
        raise MlplabError("give the grid with --grid field=values ... or --grid-file FILE.toml (one of the two)")
    grid = parse_grid(args.grid) if args.grid else load_grid(args.grid_file)
    base = base_config(args)
    out = Path(args.sweep_dir)
    check_sweep_dir(out)
    random = None
    if args.random is not None:
        random = (args.random, args.random_seed)
        combinations = random_subset(grid, args.random, args.random_seed)
        print(f"random search: {len(combinations)} of the grid's {size(grid)} configurations")
    else:
        combinations = expand(grid)
    progress = SweepProgress(base.train.progress)
    try:
        outcome = run_sweep(base, combinations, out, grid=grid, random=random, max_group_size=args.max_group_size,
                            on_plan=progress.start, on_epoch_end=[progress.on_epoch_end])
    finally:
        progress.close()
    print(f"trained {len(outcome.rows)} configurations in {outcome.seconds:.1f} s")
    print(settings_table(outcome.settings[:TOP_SETTINGS]))
    print("wrote " + ", ".join(str(path) for path in outcome.written))
    print(_figures(out))
    if outcome.best is not None:
        print(f"rerun the best: mlplab train --config {out / 'best.toml'}")
    return 0


def _figures(out: Path) -> str:
    """Draw the sweep's figures; a missing matplotlib is a note, not an error (the results are written)."""
    try:
        from mlplab.plots.sweep import plot_sweep

        paths = plot_sweep(out)
    except MlplabError as error:
        return f"no figures: {error}"
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

    def start(self, plan: Any) -> None:
        """Print the plan and open the bar (every group's epochs)."""
        from tqdm.auto import tqdm

        from mlplab.threads import active_governor

        print(plan.describe(), flush=True)
        governor = active_governor()  # the choice the plan was timed under, and the training runs under
        if governor is not None:
            print(f"threads: {governor.describe()}", flush=True)

        self.bar = tqdm(total=plan.group_epochs, desc="sweep", unit="epoch",
                        disable=None if self.show else True, mininterval=0.2)

    def on_epoch_end(self, report: Any) -> None:
        """Advance the bar by one group epoch, showing the group's best validation accuracy so far."""
        if self.bar is None:
            return
        accuracies = [r.get("val_accuracy") for r in report.records if r is not None]
        accuracies = [a for a in accuracies if a is not None]
        if accuracies:
            self.bar.set_postfix_str(f"group {report.group + 1} epoch {report.epoch} best val "
                                     f"{100 * max(accuracies):.2f}%", refresh=False)
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
        lines.append(f"{row['setting']:<{width}}  {row['seeds']:>5}  {cell(row, 'val'):>15}  "
                     f"{cell(row, 'test'):>15}{diverged}")
    return "\n".join(lines)
