"""`mlplab export CHECKPOINT`: weights to safetensors, or the model to ONNX (--format onnx)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlplab.choices import EXPORT_FORMATS
from mlplab.cli.flags import add_number
from mlplab.config import Bounds
from mlplab.errors import MlplabError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export` command."""
    parser = subparsers.add_parser("export", help="export a checkpoint's weights to safetensors, or its model to ONNX")
    parser.add_argument("checkpoint", help="a .pt file, or a run directory (its best.pt, else its last.pt)")
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="safetensors",
        help="safetensors: the weights, for PyTorch; onnx: the model, for any ONNX runtime "
        '(needs pip install "mlplab[onnx]") (default: safetensors)',
    )
    parser.add_argument("--out", help="output file (default: model.safetensors or model.onnx beside the checkpoint)")
    add_number(
        parser,
        "--opset",
        int,
        Bounds(1, 100),
        "--format onnx: the ONNX operator set, up to the newest the installed onnx knows (default: torch's)",
    )
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Export and say where."""
    from mlplab.runs.reader import checkpoint_file

    if args.opset is not None and args.format != "onnx":
        raise MlplabError("--opset applies to --format onnx only")
    path = checkpoint_file(args.checkpoint)  # a run directory means its best checkpoint (mlplab.runs.reader)
    out = Path(args.out) if args.out else path.parent / f"model.{args.format}"
    if args.format == "onnx":
        from mlplab.export.onnx_file import export_onnx

        export_onnx(path, out, opset=args.opset)
    else:
        from mlplab.export import export_safetensors

        export_safetensors(path, out)
    print(f"wrote {out} ({out.stat().st_size} bytes) from {path}")
    return 0
