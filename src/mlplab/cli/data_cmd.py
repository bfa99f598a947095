"""``mlplab data info``: load a dataset as training would and print what it holds."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlplab import choices
from mlplab.cli.flags import add_number, field_bounds
from mlplab.config import DataConfig

_DEFAULTS = DataConfig()


def register(subparsers: Any) -> None:
    """Add the ``data`` command (subcommand ``info``) to the main CLI's subparsers."""
    parser = subparsers.add_parser("data", help="inspect datasets", description="Inspect datasets.")
    commands = parser.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    info = commands.add_parser(
        "info",
        help="sizes, value ranges, mean/std and class counts of each split",
        description="Load a dataset as training would (download, verify, split, normalise) and "
        "print sizes, value ranges, mean/std and class counts of each split.",
    )
    info.add_argument(
        "--dataset",
        default=_DEFAULTS.dataset,
        metavar="NAME",
        help=f"{choices.listing(choices.DATASETS)} (default: {_DEFAULTS.dataset})",
    )
    info.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="folder holding the four IDX files, raw or .gz (default: $MLPLAB_DATA_DIR, then the cache, "
        "then the copy bundled with mlplab for MNIST, then the mirrors)",
    )
    info.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="download cache (default: $MLPLAB_CACHE_DIR or ~/.cache/mlplab)",
    )
    info.add_argument(
        "--normalize",
        default=_DEFAULTS.normalize,
        metavar="KIND",
        help=f"{choices.listing(choices.NORMALIZATIONS, choices.NORMALIZATION_NOTES)} (default: {_DEFAULTS.normalize})",
    )
    info.add_argument(
        "--val-split",
        default=_DEFAULTS.val_split,
        metavar="KIND",
        help=f"{choices.listing(choices.VAL_SPLITS, choices.VAL_SPLIT_NOTES)} (default: {_DEFAULTS.val_split})",
    )
    add_number(
        info,
        "--val-size",
        int,
        field_bounds("val_size"),
        "training images held out for validation",
        default=_DEFAULTS.val_size,
        metavar="N",
    )
    add_number(info, "--seed", int, field_bounds("seed"), "seed of the random validation split", default=0, metavar="N")
    info.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="never touch the network; fail if no local copy is found",
    )
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=execute_info)


def execute_info(args: argparse.Namespace) -> int:
    """Handler of ``mlplab data info``: prints the summary; errors are raised as MlplabError."""
    from mlplab.data import bundle_statistics, get_spec, load_data  # imported here: keeps `mlplab --help` fast

    # The dataset by name or alias (FashionMNIST), as `load_data` takes one; the config checks the rest.
    config = DataConfig(
        dataset=get_spec(args.dataset).name,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        download=args.download,
        normalize=args.normalize,
        val_split=args.val_split,
        val_size=args.val_size,
    )
    summary = bundle_statistics(load_data(config, device="cpu", seed=args.seed, progress=True))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def format_summary(summary: dict[str, Any]) -> str:
    """The summary from `bundle_statistics` as a readable table."""
    lines = [
        f"{summary['title']} from {summary['source']} ({summary['origin_description']})",
        f"normalize: {summary['normalize']}; {len(summary['classes'])} classes: {', '.join(summary['classes'])}",
        "",
        f"{'split':<6} {'size':>6}  {'shape':<16} {'min':>8} {'max':>8} {'mean':>8} {'std':>8}"
        f" {'raw mean':>9} {'raw std':>8}",
    ]
    for name, split in summary["splits"].items():
        shape = "x".join(str(d) for d in split["shape"])
        lines.append(
            f"{name:<6} {split['size']:>6}  {shape:<16} {split['min']:>8.4f} {split['max']:>8.4f}"
            f" {split['mean']:>8.4f} {split['std']:>8.4f} {split['raw_mean']:>9.4f} {split['raw_std']:>8.4f}"
        )
    lines += ["", "class counts:", f"{'split':<6} " + " ".join(f"{i:>6}" for i in range(len(summary["classes"])))]
    for name, split in summary["splits"].items():
        lines.append(f"{name:<6} " + " ".join(f"{count:>6}" for count in split["class_counts"]))
    return "\n".join(lines)
