"""`mlplab export CHECKPOINT`: weights to safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export` command."""
    parser = subparsers.add_parser("export", help="export a checkpoint's weights to safetensors")
    parser.add_argument("checkpoint", help="a .pt file, or a run directory (its best.pt, else its last.pt)")
    parser.add_argument("--out", help="output file (default: model.safetensors beside the checkpoint)")
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Export and say where."""
    from mlplab.export import export_safetensors
    from mlplab.run import checkpoint_file

    path = checkpoint_file(args.checkpoint)  # a run directory means its best checkpoint (mlplab.run)
    out = Path(args.out) if args.out else path.parent / "model.safetensors"
    export_safetensors(path, out)
    print(f"wrote {out} ({out.stat().st_size} bytes) from {path}")
    return 0
