"""`mlplab experiment NAME`: the classic experiments, each a subcommand of its own module."""

from __future__ import annotations

import argparse

from mlplab.cli import linreg_cmd, symmetry_cmd


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `experiment` command and its subcommands."""
    parser = subparsers.add_parser(
        "experiment",
        help="run a classic experiment: linreg, symmetry",
        description="Classic experiments from the labs.",
    )
    experiments = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    experiments.required = True
    linreg_cmd.register(experiments)
    symmetry_cmd.register(experiments)
