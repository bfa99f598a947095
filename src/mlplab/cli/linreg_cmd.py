"""`mlplab experiment linreg`: linear regression by mini-batch SGD against closed-form least squares."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mlplab.cli.flags import add_field_flag, check_output_dir
from mlplab.cli.parser import FORMAT_HELP, figure_formats
from mlplab.experiments.linreg import LinregConfig, LinregResult


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `linreg` experiment."""
    parser = subparsers.add_parser(
        "linreg",
        help="linear regression: mini-batch SGD vs the closed-form least-squares optimum",
        description="Draw synthetic data y = X w + b + noise (X standard normal, w and b drawn from the seed), "
        "solve least squares in closed form, train torch.nn.Linear by mini-batch SGD on the MSE, and "
        "compare the loss curve with the optimum. Writes DIR/linreg.json and the figure DIR/linreg.png.",
    )
    group = parser.add_argument_group("data and SGD")
    for field in dataclasses.fields(LinregConfig):
        add_field_flag(group, field)
    parser.add_argument(
        "--out",
        default="runs/linreg",
        metavar="DIR",
        help="folder for linreg.json and the figure (default: runs/linreg)",
    )
    parser.add_argument("--format", default="png", help=f"figure format: {FORMAT_HELP} (default: png)")
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Run the experiment, write the JSON and the figure, and print a summary."""
    from mlplab.experiments.linreg import run as run_experiment
    from mlplab.files import atomic_write_text
    from mlplab.plots import save
    from mlplab.plots.linreg import loss_curve

    formats = figure_formats(args.format)
    check_output_dir(Path(args.out), "--out")
    config = LinregConfig(
        **{
            field.name: getattr(args, field.name)
            for field in dataclasses.fields(LinregConfig)
            if getattr(args, field.name) is not None
        }
    )
    result = run_experiment(config)
    out = Path(args.out)
    json_path = out / "linreg.json"
    atomic_write_text(json_path, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
    figures = save(loss_curve(result), *(out / f"linreg.{kind}" for kind in formats))
    _print_summary(result)
    print(f"wrote {', '.join(map(str, [json_path, *figures]))}")
    return 0


def _print_summary(result: LinregResult) -> None:
    config = result.config
    print(
        f"linear regression: {config.samples} samples, {config.features} features, "
        f"noise {config.noise:g}, seed {config.seed}"
    )
    print(f"least squares  MSE {result.least_squares_mse:.6f}")
    print(
        f"SGD (batch {config.batch_size}, lr {config.lr:g}, {config.epochs} epochs)  MSE {result.sgd_mse[-1]:.6f}  "
        f"({100 * result.excess:+.2g}% over least squares) in {result.sgd_seconds:.1f} s"
    )
    print(f"{'coefficient':<13} {'true':>9}  {'least squares':>13}  {'SGD':>9}")
    rows = zip(
        [f"w{i}" for i in range(config.features)] + ["b"],
        [*result.true_weights, result.true_bias],
        [*result.least_squares_weights, result.least_squares_bias],
        [*result.sgd_weights, result.sgd_bias],
        strict=True,
    )
    for name, true, exact, trained in rows:
        print(f"{name:<13} {true:>9.4f}  {exact:>13.4f}  {trained:>9.4f}")
