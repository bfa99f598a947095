"""`mlplab gradcheck`: the scratch engine's backprop for a network, against autograd and finite differences."""

from __future__ import annotations

import argparse
import dataclasses
import math

from mlplab.cli.flags import add_field_flag, add_number
from mlplab.config import PRESETS, Bounds, ModelConfig, TrainConfig, resolve_config

AUTOGRAD_TOLERANCE = 1e-10  # relative, float64: what the tests hold the scratch engine to
_FLAGS = {"hidden", "activation", "output", "init", "init_range", "loss", "beta", "seed"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `gradcheck` command."""
    parser = subparsers.add_parser(
        "gradcheck",
        help="check the from-scratch engine's gradients against autograd and finite differences",
        description="Build the network in NumPy (mlplab.scratch) and in PyTorch with the same float64 weights, "
        "take one random batch, and compare every parameter's loss gradient: scratch vs autograd, "
        "and scratch vs central finite differences.",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a lab's recipe (see `mlplab presets`)")
    group = parser.add_argument_group("network and loss")
    for field in (*dataclasses.fields(ModelConfig), *dataclasses.fields(TrainConfig)):
        if field.name in _FLAGS:
            add_field_flag(group, field)
    add_number(parser, "--batch-size", int, Bounds(1, 1000), "random images in the batch", default=8)
    add_number(
        parser,
        "--entries",
        int,
        Bounds(0, 1_000_000),
        "finite-difference entries checked per parameter, drawn at random; 0 checks all",
        default=200,
    )
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Print one line per parameter; exit status 1 if any gradient disagrees."""
    from mlplab.engines import ENGINE_TABLE
    from mlplab.errors import MlplabError
    from mlplab.losses import build_loss
    from mlplab.models import build_model
    from mlplab.scratch.reference import check_gradients

    config = resolve_config(
        args.preset, flags={name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None}
    )
    if args.batch_size < 1 or args.entries < 0:
        raise MlplabError("--batch-size must be at least 1 and --entries at least 0")
    model, loss = config.model, config.train.loss
    reason = ENGINE_TABLE["scratch"].unsupported(model, build_loss(loss, model.output, config.train.beta), "sgd")
    if reason is not None:
        raise MlplabError(f"the scratch engine cannot build this network: {reason}")
    value, rows = check_gradients(
        model, loss, config.train.beta, batch_size=args.batch_size, entries=args.entries or None, seed=config.train.seed
    )
    print(
        f"{build_model(model).describe()}; loss {loss} = {value:.6f} on {args.batch_size} random images "
        f"(float64, seed {config.train.seed})"
    )
    print(f"{'parameter':<16} {'shape':>9}  {'vs autograd':>11}  vs finite differences")
    failed = False
    for row in rows:
        bad = row.vs_autograd > AUTOGRAD_TOLERANCE or not row.differences_ok
        failed |= bad
        print(
            f"{row.name:<16} {'x'.join(map(str, row.shape)):>9}  {row.vs_autograd:>11.1e}  {row.vs_differences:.1e} "
            f"({row.entries} of {math.prod(row.shape)} entries){'  FAILED' if bad else ''}"
        )
    if failed:
        print("FAILED: some gradients disagree")
        return 1
    print(f"ok: every gradient equals autograd's (relative error <= {AUTOGRAD_TOLERANCE:g}) and the finite differences")
    return 0
