"""`mlplab experiment symmetry`: the 1986 back-propagation paper's symmetry experiment, many seeds at once."""

from __future__ import annotations

import argparse
import dataclasses
import statistics

from mlplab.choices import SYMMETRY_ACTIVATIONS, SYMMETRY_OPTIMIZERS, SYMMETRY_SCHEDULERS
from mlplab.experiments.symmetry_config import SymmetryConfig

HELP = {
    "seeds": "networks trained at once (default: 100)",
    "first_seed": "seed of the first network; the others follow (default: 0)",
    "sweeps": "the paper's budget of sweeps, one weight change each (default: 1425)",
    "long_sweeps": "a longer budget, to see which failures are only slow (default: 20000)",
    "eps": "learning rate epsilon (default: 0.1)",
    "alpha": "momentum alpha, for --optimizer sgd (default: 0.9)",
    "init_range": "initial weights and biases uniform in [-r, r] (default: 0.3)",
    "activation": "hidden units: logistic (the paper) or tanh (default: logistic)",
    "optimizer": "sgd (the paper's rule: dw = -eps dE/dw + alpha dw_prev) or adam with lr eps (default: sgd)",
    "scheduler": "none, cosine (eps to 0 over the long budget) or exponential (eps x gamma per sweep) (default: none)",
    "gamma": "per-sweep decay for --scheduler exponential (default: 0.9999)",
}
CHOICES = {"activation": SYMMETRY_ACTIVATIONS, "optimizer": SYMMETRY_OPTIMIZERS, "scheduler": SYMMETRY_SCHEDULERS}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `symmetry` experiment."""
    parser = subparsers.add_parser(
        "symmetry", help="Rumelhart, Hinton & Williams (1986), experiment 1: a 6-2-1 net detects mirror symmetry",
        description="Train many 6-2-1 logistic networks at once on the 64 six-bit vectors (target 1 if the vector "
                    "is mirror-symmetric), with the paper's summed error and full-batch momentum rule, and report "
                    "how many solve the task, how fast, and whether they find the paper's 1:2:4 weights.")
    for field in dataclasses.fields(SymmetryConfig):
        kind = type(field.default)
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=kind, default=field.default,
                            choices=CHOICES.get(field.name), help=HELP[field.name])
    parser.add_argument("--report", metavar="DIR", help="also train the workarounds and write DIR/report.md, "
                                                         "report.html, results.json and the figures")
    parser.add_argument("--no-workarounds", action="store_true", help="with --report: only the configuration given")
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Train, print the summary, and write the report if asked."""
    from mlplab.experiments.symmetry import train
    from mlplab.experiments.symmetry_analysis import summarize

    config = SymmetryConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(SymmetryConfig)})
    config.check()
    if args.report:
        from mlplab.experiments.symmetry_report import run_suite, write_report

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
    rule = (f"sgd eps {config['eps']:g} alpha {config['alpha']:g}" if config["optimizer"] == "sgd"
            else f"adam lr {config['eps']:g}")
    print(f"{name}: {summary['seeds']} seeds, {config['activation']} hidden units, {rule}, init ±{config['init_range']:g}"
          + (f", {config['scheduler']} schedule" if config["scheduler"] != "none" else "")
          + f" ({summary['seconds']:.1f} s)")
    print(f"  solved within {within['sweeps']:,} sweeps: {100 * within['solved']:.0f}% (strict 0.2/0.8: "
          f"{100 * within['strict']:.0f}%); within {long['sweeps']:,}: {100 * long['solved']:.0f}% "
          f"(strict {100 * long['strict']:.0f}%)")
    steps = summary["sweeps_to_solve"]
    if steps:
        found = summary["structure"]
        print(f"  sweeps to solve: median {statistics.median(steps):,.0f}, fastest {steps[0]:,}, slowest {steps[-1]:,}")
        print(f"  paper's structure (mirror weights opposite, sizes 1:2:4): {found['matching']} of {found['checked']} "
              "solved seeds; median ratios 1 : {:.2f} : {:.2f}".format(*found["median_ratios"]))
    for kind, count in summary["unsolved"]["kinds"].items():
        print(f"  not solved: {count} x {kind}")
