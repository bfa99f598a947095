"""`mlplab eval CHECKPOINT`: loss, accuracy and per-class accuracy of a saved model."""

from __future__ import annotations

import argparse
import json

from mlplab.choices import DEVICES, SPLITS
from mlplab.cli.progress import per_class_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval` command."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint on the test (or val/train) split",
        description="Evaluate a checkpoint (a .pt file, or a run directory: its best.pt, "
        "else its last.pt before any best epoch was saved).",
    )
    parser.add_argument("checkpoint", help="best.pt / last.pt, or a run directory")
    parser.add_argument("--split", choices=SPLITS, default="test", help="split to evaluate (default: test)")
    parser.add_argument("--data-dir", help="folder holding the dataset's IDX files (default: as in training)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="device (default: auto)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Evaluate and print."""
    from mlplab.runs import SavedModel

    saved = SavedModel(args.checkpoint)  # a run directory means its best checkpoint
    result = saved.evaluate(args.split, data_dir=args.data_dir, device=args.device)
    path = saved.path
    per_class = dict(zip(result["classes"], result["per_class_accuracy"], strict=True))
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": str(path),
                    "split": args.split,
                    "epoch": result["epoch"],
                    "loss": result["loss"],
                    "accuracy": result["accuracy"],
                    "count": result["count"],
                    "per_class_accuracy": per_class,
                    "confusion": result["confusion"],
                },
                indent=2,
            )
        )
        return 0
    config = saved.config
    assert config is not None  # evaluate refused a user-defined module's checkpoint, which has none
    dataset = config.data.dataset
    print(f"{path} (epoch {result['epoch']}), {dataset} {args.split} split, {result['count']} images")
    print(f"{args.split} loss {result['loss']:.4f}  accuracy {100 * result['accuracy']:.2f}%")
    print("per-class accuracy:\n" + per_class_table(per_class))
    return 0
