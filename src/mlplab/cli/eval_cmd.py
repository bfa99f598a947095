"""`mlplab eval CHECKPOINT`: loss, accuracy and per-class accuracy of a saved model."""

from __future__ import annotations

import argparse
import json

from mlplab.choices import DEVICES, SPLITS
from mlplab.cli.report import per_class_table
from mlplab.config import apply_overrides, from_dict


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval` command."""
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint on the test (or val/train) split",
                                   description="Evaluate a checkpoint (a .pt file, or a run directory: its best.pt).")
    parser.add_argument("checkpoint", help="best.pt / last.pt, or a run directory")
    parser.add_argument("--split", choices=SPLITS, default="test", help="split to evaluate (default: test)")
    parser.add_argument("--data-dir", help="folder holding the dataset's IDX files (default: as in training)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="device (default: auto)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print."""
    from mlplab.data import Batches
    from mlplab.errors import MlplabError
    from mlplab.training import evaluate, load_checkpoint, prepare
    from mlplab.training.rundir import best_checkpoint

    path = best_checkpoint(args.checkpoint)
    checkpoint = load_checkpoint(path)
    overrides = {"device": args.device, "progress": False}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    config = apply_overrides(from_dict(checkpoint["config"]), overrides)
    run = prepare(config)
    run.model.load_state_dict(checkpoint["model"])
    batches = {"test": run.test_batches, "val": run.val_batches,
               "train": Batches(run.data.train, config.train.eval_batch_size)}[args.split]
    if batches is None:
        raise MlplabError("this run has no validation split (--val-split none); use --split test or train")
    result = evaluate(run.model, batches, run.loss_fn, run.num_classes)
    per_class = dict(zip(run.data.spec.classes, result["per_class_accuracy"]))
    if args.json:
        print(json.dumps({"checkpoint": str(path), "split": args.split, "epoch": checkpoint["epoch"],
                          "loss": result["loss"], "accuracy": result["accuracy"], "count": result["count"],
                          "per_class_accuracy": per_class, "confusion": result["confusion"]}, indent=2))
        return 0
    print(f"{path} (epoch {checkpoint['epoch']}), {config.data.dataset} {args.split} split, {result['count']} images")
    print(f"{args.split} loss {result['loss']:.4f}  accuracy {100 * result['accuracy']:.2f}%")
    print("per-class accuracy:\n" + per_class_table(per_class))
    return 0
