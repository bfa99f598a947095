"""`mlplab eval CHECKPOINT`: loss, accuracy and per-class accuracy of a saved model."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from mlplab.choices import DEVICES, SPLITS
from mlplab.cli.progress import per_class_table
from mlplab.config import Config, apply_overrides, from_dict

if TYPE_CHECKING:
    from torch import nn


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval` command."""
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint on the test (or val/train) split",
                                   description="Evaluate a checkpoint (a .pt file, or a run directory: its best.pt, "
                                               "else its last.pt before any best epoch was saved).")
    parser.add_argument("checkpoint", help="best.pt / last.pt, or a run directory")
    parser.add_argument("--split", choices=SPLITS, default="test", help="split to evaluate (default: test)")
    parser.add_argument("--data-dir", help="folder holding the dataset's IDX files (default: as in training)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="device (default: auto)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Evaluate and print."""
    from mlplab.run import checkpoint_file, model_from_checkpoint
    from mlplab.training import load_checkpoint

    path = checkpoint_file(args.checkpoint)  # a run directory means its best checkpoint (mlplab.run)
    checkpoint = load_checkpoint(path)
    model = model_from_checkpoint(checkpoint, path)
    overrides = {"device": args.device, "progress": False}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    config = apply_overrides(from_dict(checkpoint["config"]), overrides)
    result, classes = _evaluate(model, config, args.split)
    per_class = dict(zip(classes, result["per_class_accuracy"]))
    if args.json:
        print(json.dumps({"checkpoint": str(path), "split": args.split, "epoch": checkpoint["epoch"],
                          "loss": result["loss"], "accuracy": result["accuracy"], "count": result["count"],
                          "per_class_accuracy": per_class, "confusion": result["confusion"]}, indent=2))
        return 0
    print(f"{path} (epoch {checkpoint['epoch']}), {config.data.dataset} {args.split} split, {result['count']} images")
    print(f"{args.split} loss {result['loss']:.4f}  accuracy {100 * result['accuracy']:.2f}%")
    print("per-class accuracy:\n" + per_class_table(per_class))
    return 0


def _evaluate(model: nn.Module, config: Config, split: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """`evaluate` ``model`` on a split of the data its config names; returns the result and class names."""
    from mlplab.data import Batches, load_data
    from mlplab.errors import MlplabError
    from mlplab.losses import build_loss
    from mlplab.training import evaluate
    from mlplab.training.device import resolve_device

    loss_fn = build_loss(config.train.loss, config.model.output, config.train.beta)
    device = resolve_device(config.train.device)
    data = load_data(config.data, device=device, seed=config.train.seed, progress=False)
    images = {"test": data.test, "val": data.val, "train": data.train}[split]
    if images is None:
        raise MlplabError("this run has no validation split (--val-split none); use --split test or train")
    result = evaluate(model.to(device), Batches(images, config.train.eval_batch_size), loss_fn, len(data.spec.classes))
    return result, tuple(data.spec.classes)
