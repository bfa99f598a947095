"""`mlplab experiment symmetry`: the 1986 back-propagation paper's symmetry experiment, many seeds at once."""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

from mlplab.cli.flags import add_field_flag, check_output_dir
from mlplab.experiments.symmetry_config import SymmetryConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `symmetry` experiment."""
    parser = subparsers.add_parser(
        "symmetry",
        help="Rumelhart, Hinton & Williams (1986), experiment 1: a 6-2-1 net detects mirror symmetry",
        description="Train many 6-2-1 logistic networks at once on the 64 six-bit vectors (target 1 if the vector "
        "is mirror-symmetric), with the paper's summed error and full-batch momentum rule, and report "
        "how many solve the task, how fast, and whether they find the paper's 1:2:4 weights.",
    )
    for field in dataclasses.fields(SymmetryConfig):
        add_field_flag(parser, field)
    parser.add_argument(
        "--report",
        metavar="DIR",
        help="also train the workarounds and write DIR/report.md, report.html, results.json and the figures",
    )
    parser.add_argument("--no-workarounds", action="store_true", help="with --report: only the configuration given")
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Check the settings, the memory and the report's folder, train, print the summary, write the report."""
    from mlplab.experiments.symmetry import train
    from mlplab.experiments.symmetry_analysis import summarize
    from mlplab.memory import check_memory

    given = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(SymmetryConfig)
        if getattr(args, field.name) is not None
    }
    config = SymmetryConfig(**given)
    config.check()
    if args.report:
        from mlplab.experiments.symmetry_report import WORKAROUNDS, run_suite, write_report

        check_output_dir(Path(args.report), "--report")  # before minutes of training, not after
    trainings = 1 + (len(WORKAROUNDS) if args.report and not args.no_workarounds else 0)
    check_memory(
        trainings * config.bytes_needed(),
        f"--seeds {config.seeds} with --long-sweeps "
        f"{config.long_sweeps}" + (f" ({trainings} trainings for the report)" if trainings > 1 else ""),
        "use fewer --seeds or --long-sweeps",
    )
    if args.report:
        runs = run_suite(config, workarounds=not args.no_workarounds)
    else:
        runs = [("base configuration", train(config))]
    for name, training in runs:
        _print_summary(name, summarize(training))
    if args.report:
        paths = write_report(args.report, runs)
        print("wrote " + ", ".join(str(path) for path in paths.values()))
    return 0


def _print_summary(name: str, summary: dict) -> None:
    config = summary["config"]
    within, long = summary["within"]["paper_budget"], summary["within"]["long_budget"]
    rule = (
        f"sgd eps {config['eps']:g} alpha {config['alpha']:g}"
        if config["optimizer"] == "sgd"
        else f"adam lr {config['eps']:g}"
    )
    print(
        f"{name}: {summary['seeds']} seeds, {config['activation']} hidden units, {rule}, init ±{config['init_range']:g}"
        + (f", {config['scheduler']} schedule" if config["scheduler"] != "none" else "")
        + f" ({summary['seconds']:.1f} s)"
    )
    print(
        f"  solved within {within['sweeps']:,} sweeps: {100 * within['solved']:.0f}% (strict 0.2/0.8: "
        f"{100 * within['strict']:.0f}%); within {long['sweeps']:,}: {100 * long['solved']:.0f}% "
        f"(strict {100 * long['strict']:.0f}%)"
    )
    steps = summary["sweeps_to_solve"]
    if steps:
        found = summary["structure"]
        print(f"  sweeps to solve: median {statistics.median(steps):,.0f}, fastest {steps[0]:,}, slowest {steps[-1]:,}")
        print(
            f"  paper's structure (mirror weights opposite, sizes 1:2:4): {found['matching']} of {found['checked']} "
            "solved seeds; median ratios 1 : {:.2f} : {:.2f}".format(*found["median_ratios"])
        )
    for kind, count in summary["unsolved"]["kinds"].items():
        print(f"  not solved: {count} x {kind}")
