"""`mlplab plot RUN_DIR`, `mlplab show samples|augment` and `mlplab report RUN_DIR`: pictures of runs and data."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mlplab.choices import AUGMENTS, DATASETS, FIGURE_FORMATS, SPLITS
from mlplab.cli.flags import SEEDS, add_field_flag, add_number
from mlplab.cli.parser import FORMAT_HELP, figure_formats
from mlplab.config import Bounds, DataConfig
from mlplab.errors import MlplabError

# The DataConfig fields `mlplab show augment` takes as flags, besides --augment: the distortions' settings.
AUGMENT_SETTINGS = ("rotate", "scale", "shear", "translate", "elastic_alpha", "elastic_sigma", "stroke", "blur")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `plot`, `show` and `report` commands."""
    plot = subparsers.add_parser(
        "plot",
        help="draw every figure of a run into RUN_DIR/figures",
        description="Draw a run's figures from its files (history and test metrics from last.pt; "
        "the model figures from its best checkpoint, as `mlplab eval` reads it): "
        "training curves, per-batch loss, confusion matrix, per-class accuracy, "
        "first-layer weights, predictions and the most confident mistakes.",
    )
    plot.add_argument("run_dir", help="a directory written by `mlplab train`")
    plot.add_argument("--format", default="png", help=f"{FORMAT_HELP} (default: png)")
    plot.add_argument("--out", help="folder for the figures (default: RUN_DIR/figures)")
    add_number(
        plot,
        "--units",
        int,
        Bounds(1, 1024),
        "hidden units whose first-layer weights are drawn (default: 16; logistic regression: all 10)",
        default=16,
        hide_default=True,
    )
    plot.add_argument("--data-dir", help="folder holding the dataset's IDX files (default: as in training)")
    plot.set_defaults(func=execute_plot)

    show = subparsers.add_parser("show", help="draw a dataset's images: `mlplab show samples|augment`")
    what = show.add_subparsers(dest="what", metavar="WHAT")
    what.required = True
    samples = what.add_parser(
        "samples",
        help="a grid of images with their labels",
        description="Draw a grid of a dataset split's images with their labels.",
    )
    samples.add_argument("--dataset", default="mnist", choices=DATASETS, help="dataset (default: mnist)")
    samples.add_argument("--split", default="train", choices=SPLITS, help="split (default: train)")
    add_number(samples, "--n", int, Bounds(1, 1000), "number of images", default=40)
    samples.add_argument("--class", dest="label", help="only this class: a label (3) or a name (three, Trouser)")
    add_number(samples, "--seed", int, SEEDS, "draw the images at random with this seed (default: the first ones)")
    samples.add_argument("--data-dir", help="folder holding the IDX files (default: $MLPLAB_DATA_DIR, else the cache)")
    samples.add_argument("--out", default="samples.png", help="output .png or .svg (default: samples.png)")
    samples.set_defaults(func=execute_samples)
    _register_augment(what)

    report = subparsers.add_parser(
        "report",
        help="write one self-contained HTML page for a run or a sweep",
        description="Write RUN_DIR/report.html: config, metrics, per-class table and "
        "every figure embedded; for a folder written by `mlplab sweep`, "
        "SWEEP_DIR/report.html: every setting ranked and the sweep's figures. "
        "It opens offline in any browser.",
    )
    report.add_argument(
        "run_dir", metavar="RUN_DIR|SWEEP_DIR", help="a directory written by `mlplab train` or `mlplab sweep`"
    )
    report.add_argument("--out", help="output file (default: report.html in that directory)")
    report.add_argument("--data-dir", help="folder holding the dataset's IDX files (default: as in training)")
    report.set_defaults(func=execute_report)


def _register_augment(what: argparse._SubParsersAction) -> None:
    """Add `show augment`: its distortion flags are `mlplab train`'s, with --augment defaulting to both."""

    augment = what.add_parser(
        "augment",
        help="one training image and its random distortions",
        description="Draw one training image, then --count versions of it distorted as "
        "`mlplab train --augment` would, at optimizer steps 0, 1, ...",
    )
    augment.add_argument("--dataset", default="mnist", choices=DATASETS, help="dataset (default: mnist)")
    add_number(augment, "--index", int, Bounds(0, 59_999), "which training image", default=0)
    augment.add_argument(
        "--augment",
        default="both",
        choices=AUGMENTS,
        help="the geometric distortion: none, affine, elastic or both (affine, then elastic); "
        "--stroke and --blur apply with any (default: both)",
    )
    fields = {field.name: field for field in dataclasses.fields(DataConfig)}
    for name in AUGMENT_SETTINGS:
        add_field_flag(augment, fields[name])
    add_number(augment, "--seed", int, SEEDS, "the run's seed, as in `mlplab train`", default=0)
    add_number(augment, "--count", int, Bounds(1, 100), "number of distorted versions", default=19)
    augment.add_argument("--data-dir", help="folder holding the IDX files (default: $MLPLAB_DATA_DIR, else the cache)")
    augment.add_argument("--out", default="augment.png", help="output .png or .svg (default: augment.png)")
    augment.set_defaults(func=execute_augment)


def execute_plot(args: argparse.Namespace) -> int:
    """Draw and list the figures (and any that could not be drawn, with why)."""
    from mlplab.plots import plot_run

    figures = plot_run(
        args.run_dir, figure_formats(args.format), data_dir=args.data_dir, out_dir=args.out, weight_units=args.units
    )
    for name, paths in figures.written.items():
        print(f"{name:<12} {', '.join(map(str, paths))}")
    for name, reason in figures.skipped.items():
        print(f"{name:<12} not drawn: {reason}")
    return 0


def execute_samples(args: argparse.Namespace) -> int:
    """Draw the grid and say where it went."""
    from mlplab.config import DataConfig
    from mlplab.plots import sample_figure, save

    config = DataConfig(dataset=args.dataset, data_dir=args.data_dir)
    path = Path(args.out)
    _check_figure_path(path)
    save(sample_figure(config, args.split, args.n, args.label, args.seed), path)
    print(f"wrote {path}")
    return 0


def execute_augment(args: argparse.Namespace) -> int:
    """Check the settings as `mlplab train` does, draw the grid and say where it went."""
    from mlplab.config import Config, apply_overrides
    from mlplab.plots import augment_figure, save

    settings = {name: getattr(args, name) for name in AUGMENT_SETTINGS if getattr(args, name) is not None}
    settings.update(dataset=args.dataset, data_dir=args.data_dir, augment=args.augment, seed=args.seed)
    config = apply_overrides(Config(), settings)  # bounds checked: one-line errors
    path = Path(args.out)
    _check_figure_path(path)
    save(augment_figure(config.data, args.index, config.train.seed, args.count), path)
    print(f"wrote {path}")
    return 0


def _check_figure_path(path: Path) -> None:
    if path.suffix.lower().removeprefix(".") not in FIGURE_FORMATS:
        raise MlplabError(f"--out must name a .png or .svg file; got {path}")


def execute_report(args: argparse.Namespace) -> int:
    """Write the page (of a run, or of a sweep folder) and say where it went."""
    from mlplab.plots.report import write_report
    from mlplab.plots.sweep_report import is_sweep_dir, write_sweep_report

    if is_sweep_dir(args.run_dir):
        path = write_sweep_report(args.run_dir, out=args.out)
    else:
        path = write_report(args.run_dir, data_dir=args.data_dir, out=args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB, self-contained: open it in a browser)")
    return 0
